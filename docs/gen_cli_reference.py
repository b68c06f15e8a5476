"""Generate the command-line reference (reference/cli.md) from glyphkit's own argparse parser at build time.

mkdocs-gen-files runs this while the site is built, so the page can never drift from `glyphkit --help`:
it is never written by hand and never committed. tests/test_docs.py checks that every subcommand and flag is in it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glyphkit.cli import build_parser  # noqa: E402


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    value = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
    return ", ".join(f"`{flag}{value}`" for flag in action.option_strings)


def _choices(action: argparse.Action) -> str:
    return ", ".join(f"`{c}`" for c in action.choices) if action.choices else ""


def _table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | choices | what it does |", "|---|---|---|"]
    for action in parser._actions:  # argparse has no public way to list a parser's arguments
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        text = (action.help or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {_flags(action)} | {_choices(action)} | {text} |")
    return rows


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of `glyphkit`, by name, in the order `--help` lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """The whole page as Markdown: the usage line, then one section per subcommand with a table of its flags."""
    parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated from `glyphkit.cli.build_parser()` when the site is built: it lists exactly what "
        "`glyphkit COMMAND --help` prints. `glyphkit ...` and `python -m glyphkit ...` are the same; without a "
        "command, glyphkit trains.",
        "",
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
    ]
    for name, sub in subcommands(parser).items():
        lines += [
            f"## `glyphkit {name}`",
            "",
            (sub.description or "").strip(),
            "",
            "```text",
            sub.format_usage().strip(),
            "```",
            "",
            *_table(sub),
            "",
        ]
    return "\n".join(lines)


try:
    import mkdocs_gen_files
except ImportError:  # imported by the tests, outside a docs build
    mkdocs_gen_files = None

if mkdocs_gen_files is not None and __name__ in ("__main__", "<run_path>"):
    with mkdocs_gen_files.open("reference/cli.md", "w") as page:
        page.write(cli_reference())
