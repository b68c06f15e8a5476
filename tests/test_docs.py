"""The docs site, the front page and the results they quote stay true to the code and to the results files."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from markdown.extensions.toc import slugify

import glyphkit
from glyphkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
RENDER = ROOT / "benchmarks" / "render_results.py"


def _help(*command: str) -> str:
    """What `glyphkit [COMMAND] --help` prints (argparse prints the help and exits)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return out.getvalue()


def _subcommands() -> list[str]:
    """The subcommands as `glyphkit --help` lists them, one per line under COMMAND."""
    return re.findall(r"^    ([a-z][\w-]*)\s{2,}\S", _help(), flags=re.M)


@pytest.mark.slow
def test_cli_reference_lists_every_subcommand_and_flag_of_the_help():
    reference = runpy.run_path(str(ROOT / "docs" / "gen_cli_reference.py"))["cli_reference"]()
    commands = _subcommands()
    assert {"train", "evaluate", "predict", "export"} <= set(commands)
    for command in commands:
        assert f"## `glyphkit {command}`" in reference
        section = reference.split(f"## `glyphkit {command}`")[1].split("\n## ")[0]
        flags = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", _help(command))) - {"--help"}
        assert flags, command
        missing = [flag for flag in flags if f"`{flag}" not in section]
        assert not missing, f"glyphkit {command}: {missing} are not in the CLI reference"


def test_every_flag_has_a_help_text():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    bare = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if not (action.help or "").strip()
    ]
    assert not bare, f"flags without help: {bare}"


def _anchors(page: Path) -> set[str]:
    """The heading anchors MkDocs gives a page (Python-Markdown's own slugify, as mkdocs.yml's toc uses)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slugify(h, "-") for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)}


def _pointers() -> list[tuple[Path, str, str]]:
    files = [*ROOT.glob("glyphkit/*.py"), *ROOT.glob("benchmarks/**/*.py"), *ROOT.glob("notebooks/*.ipynb")]
    found = []
    for path in files:
        for page, anchor in re.findall(r"docs/([\w/-]+\.md)(?:#([\w-]+))?", path.read_text(encoding="utf-8")):
            found.append((path, page, anchor))
    return found


def test_every_docs_pointer_in_the_code_names_a_page_and_heading_that_exist():
    pointers = _pointers()
    assert len(pointers) >= 5  # the code does point into the docs
    for path, page, anchor in pointers:
        target = ROOT / "docs" / page
        assert target.is_file(), f"{path.relative_to(ROOT)} points at docs/{page}, which does not exist"
        if anchor:
            assert anchor in _anchors(target), f"{path.relative_to(ROOT)}: docs/{page} has no heading #{anchor}"


def test_the_code_no_longer_points_into_readme_sections():
    stale = [
        str(p.relative_to(ROOT))
        for p in [*ROOT.glob("glyphkit/*.py"), *ROOT.glob("notebooks/*.ipynb")]
        if re.search(r"\(README\b|see README\b|README,\s*[\"']", p.read_text(encoding="utf-8"))
    ]
    assert not stale, f"pointers into README sections (name a docs page instead): {stale}"


@pytest.mark.slow
def test_rendered_tables_match_the_results_files():
    result = subprocess.run([sys.executable, str(RENDER), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_a_changed_results_file_makes_the_rendered_page_stale(tmp_path):
    """The check above can fail: change one number in a copy of the results, and the page no longer matches."""
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "benchmarks.md", tmp_path / "docs" / "benchmarks.md")
    names = re.findall(r"<!-- results: ([\w.-]+) -->", (tmp_path / "docs" / "benchmarks.md").read_text())
    name = next(n for n in names if n != "presets")
    path = tmp_path / "benchmarks" / "results" / f"{name}.json"
    record = json.loads(path.read_text())
    row, column = record["rows"][0], next(c for c in record["columns"] if c.get("format", "text") != "text")
    row[column["key"]] = (row.get(column["key"]) or 0) + 1
    path.write_text(json.dumps(record))
    check = [sys.executable, str(RENDER), "--check", "--root", str(tmp_path)]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 1
    subprocess.run([sys.executable, str(RENDER), "--root", str(tmp_path)], check=True, capture_output=True)
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "results").glob("*.json")), ids=lambda p: p.name)
def test_each_results_file_says_what_ran_where(path):
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["command"] and re.fullmatch(r"[0-9a-f]{7,40}(\+dirty)?", record["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", record["date"])
    assert record["machine"]["cpu"] and "native_bf16" in record["machine"]
    keys = {c["key"] for c in record["columns"]}
    assert record["rows"] and all(set(row) <= keys for row in record["rows"])


def test_readme_is_a_short_front_page_without_dated_history():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    dated = [line for line in lines if re.search(r"\b20\d\d-\d\d-\d\d\b|\buntil 20\d\d\b", line)]
    assert not dated, dated


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [link for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in link]
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_version_is_kept_in_one_place():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "glyphkit.__version__"}
    assert importlib.metadata.version("glyphkit") == glyphkit.__version__ == "0.2.0"


def test_license_and_changelog_are_there():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{glyphkit.__version__}]" in changelog
