"""Render the measured results (benchmarks/results/*.json) into the docs' and the README's tables.

A results table in a Markdown page is a block between two markers; everything between them is generated:

    <!-- results: time_to_90-fast-preset -->
    (the table and a line saying what ran where, written by this script)
    <!-- /results -->

A single number in prose is an inline marker around the value, taken from the file's `summary`:

    ... <!-- value: evaluate-fp32-intel-xeon/median_s -->75.3 s<!-- /value --> ...

`python benchmarks/render_results.py` rewrites every block in README.md and docs/*.md from the files;
`--check` changes nothing and exits with status 1 when a page no longer matches them (the test suite runs it), so
a number reaches the docs only through a results file. The headline table in README.md (`<!-- results: presets
-->`) shows each preset with the results file named beside it in `glyphkit.config.PRESET_RESULTS`.

Hand-written rather than a template engine: the whole job is two regular expressions and a few formats.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the glyphkit of this checkout (its presets name their results files)

from glyphkit.config import PRESET_RESULTS, PRESETS  # noqa: E402
from glyphkit.results import ResultError, format_value, load_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PAGES = ("README.md", "docs/*.md")

# A marker counts at the start of a line (a block) or outside inline code (a value), so pages can show examples.
BLOCK = re.compile(r"^(<!-- results: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S | re.M)
VALUE = re.compile(
    r"(?<!`)(<!-- value: (?P<name>[\w.-]+)/(?P<key>\w+)(?: (?P<format>\w+))? -->)(?P<body>.*?)(<!-- /value -->)"
)


def load(path: Path) -> dict:
    """One results file, checked against the schema; a bad file stops the rendering with its name."""
    try:
        return load_result(path)
    except ResultError as error:
        raise SystemExit(f"error: {error}") from None


def machine_line(record: dict) -> str:
    """Where and how it ran, in one line: the CPU (or GPU), cores, native bf16, torch."""
    machine = record["machine"]
    where = machine.get("gpu") or machine.get("cpu", "unknown CPU")
    cores = f", {machine['cores']} cores" if machine.get("cores") else ""
    bf16 = {True: ", native bf16", False: ", no native bf16"}.get(machine.get("native_bf16"), "")
    torch = f", torch {machine['torch']}" if machine.get("torch") else ""
    return f"{where}{cores}{bf16}{torch}"


def _time_to_90(claim: dict) -> str:
    """A claim without the key was not measured for it; a null one was measured and never reached."""
    if "time_to_90_s" not in claim:
        return "not measured"
    return format_value(claim["time_to_90_s"], "minutes") or "not reached"


class Renderer:
    """Renders pages from the results files of one folder (each file read once)."""

    def __init__(self, results: Path = RESULTS):
        self.results = results
        self._records: dict[str, dict] = {}

    def record(self, name: str) -> dict:
        if name not in self._records:
            self._records[name] = load(self.results / f"{name}.json")
        return self._records[name]

    def table(self, name: str) -> str:
        record = self.record(name)
        columns = record["columns"]
        lines = ["| " + " | ".join(c["header"] for c in columns) + " |", "|" + "---|" * len(columns)]
        for row in record["rows"]:
            cells = (format_value(row.get(c["key"]), c.get("format", "text")) for c in columns)
            lines.append("| " + " | ".join(cells) + " |")
        data = f" Data: {record['data']}." if record.get("data") else ""
        lines += [
            "",
            f"<small>`{record['command']}` · {machine_line(record)} · commit `{record['commit']}`, "
            f"{record['date']}.{data} Source: `benchmarks/results/{name}.json`.</small>",
        ]
        return "\n".join(lines) + "\n"

    def presets(self) -> str:
        """README's headline: each preset, what it trains, and the measured claim of its results file, one row per
        precision it was measured in (the summary's `headline_<precision>_*` values)."""
        lines = [
            "| preset | network, epochs | precision | proxy47 test accuracy (TTA) | time to 90% | whole run | "
            "measured on |",
            "|---|---|---|---|---|---|---|",
        ]
        for preset, settings in PRESETS.items():
            what = f"`{settings['model']}`, {settings['epochs']}"
            name = PRESET_RESULTS.get(preset)
            if name is None:
                lines.append(f"| `{preset}` | {what} | | not measured | | | |")
                continue
            record = self.record(name)
            summary = record["summary"]
            for precision in ("bf16", "fp32"):
                claim = {
                    k.removeprefix(f"headline_{precision}_"): v
                    for k, v in summary.items()
                    if k.startswith(f"headline_{precision}_")
                }
                if claim:
                    lines.append(
                        f"| `{preset}` | {what} | {precision} | {format_value(claim['test_acc_tta'], 'percent')} | "
                        f"{_time_to_90(claim)} | {format_value(claim['total_s'], 'minutes')} | "
                        f"{machine_line(record)}, `{name}.json` |"
                    )
        return "\n".join(lines) + "\n"

    def value(self, name: str, key: str, fmt: str | None) -> str:
        summary = self.record(name).get("summary", {})
        if key not in summary:
            raise SystemExit(f"error: benchmarks/results/{name}.json has no summary value {key!r}")
        return format_value(summary[key], fmt or "text")

    def page(self, text: str) -> str:
        """The page with every results block and inline value regenerated."""

        def block(match: re.Match) -> str:
            body = self.presets() if match["name"] == "presets" else self.table(match["name"])
            return match.group(1) + body + match.group(4)

        def value(match: re.Match) -> str:
            return match.group(1) + self.value(match["name"], match["key"], match["format"]) + match.group(6)

        return VALUE.sub(value, BLOCK.sub(block, text))


def pages(root: Path = ROOT) -> list[Path]:
    return [path for pattern in PAGES for path in sorted(root.glob(pattern))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a page is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose pages and results to use")
    args = parser.parse_args(argv)
    renderer = Renderer(args.root / "benchmarks" / "results")
    stale = []
    for path in pages(args.root):
        text = path.read_text(encoding="utf-8")
        rendered = renderer.page(text)
        if rendered != text:
            stale.append(path.relative_to(args.root))
            if not args.check:
                path.write_text(rendered, encoding="utf-8")
    if args.check and stale:
        print(
            "error: out of date with benchmarks/results/: "
            + ", ".join(map(str, stale))
            + "; run python benchmarks/render_results.py",
            file=sys.stderr,
        )
        return 1
    for path in stale:
        print(f"rendered {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
