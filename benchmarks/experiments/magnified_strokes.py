"""How should a magnified glyph's strokes be toned? glyphkit.preprocess.SOFT_EDGE and SOFT_CORE, on validation glyphs.

A glyph brought up more than SOFT_UPSCALE times to NIST's scale (small writing in a photo, a tiny JPEG) has soft
strokes: a blurred edge that would thicken them, and a ridge where EMNIST's strokes are flat-topped. Ink under
SOFT_EDGE of a stroke is dropped and ink at SOFT_CORE or more counts as full stroke. The run's **validation** glyphs
(the paper test reads the test glyphs; a setting must not be chosen on them) are drawn under the paper test's plain,
jpeg, small and cropped conditions, and each image is read under every (SOFT_EDGE, SOFT_CORE) setting. Every setting
reads the same images, so the differences are paired.

    python benchmarks/experiments/magnified_strokes.py RUN --data-dir ../shared/emnist [--count 2000]
        [--settings 0.2:1.0,0.2:0.8,...] [--results PATH]

Writes benchmarks/results/magnified_strokes-RUN.json (`--results` to choose). The renderings are held in memory: they
are derived from EMNIST and never committed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from validation_reads import draw_validation  # beside this script: the validation glyphs drawn and read

from glyphkit import preprocess
from glyphkit.results import command_line, default_result_path, write_result
from glyphkit.scans import CONDITION_NAMES

CONDITIONS = ("plain", "jpeg", "small", "cropped")
SETTINGS = "0.2:1.0,0.2:0.8,0.2:0.7,0.2:0.6,0.3:0.8"  # SOFT_EDGE:SOFT_CORE; 0.2:1.0 is glyphkit before SOFT_CORE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--count", type=int, default=2000, help="validation glyphs drawn (default: 2,000)")
    parser.add_argument("--settings", default=SETTINGS, help=f"SOFT_EDGE:SOFT_CORE pairs (default: {SETTINGS})")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--results", default=None, help="the record's path (default: magnified_strokes-RUN.json)")
    args = parser.parse_args()
    run = Path(args.run_dir)
    sample = draw_validation(run, args.data_dir, CONDITIONS, args.count, args.seed)
    shipped = preprocess.SOFT_EDGE, preprocess.SOFT_CORE
    arrays = sample.accuracy(sample.glyphs)  # the same glyphs under every condition: read once
    rows = [{"soft_edge": "28x28 arrays", "soft_core": "", "shipped": "", **dict.fromkeys(CONDITIONS, arrays)}]
    for setting in args.settings.split(","):
        edge, core = (float(v) for v in setting.split(":"))
        preprocess.SOFT_EDGE, preprocess.SOFT_CORE = edge, core
        row = {"soft_edge": f"{edge:g}", "soft_core": f"{core:g}", "shipped": "yes" if (edge, core) == shipped else ""}
        for condition in CONDITIONS:
            row[condition] = sample.accuracy(sample.read(condition))
        print(row, flush=True)
        rows.append(row)
    preprocess.SOFT_EDGE, preprocess.SOFT_CORE = shipped
    path = args.results or default_result_path("magnified_strokes", run.name)
    write_result(
        path,
        what="Validation glyphs drawn on plain paper, tiny in a poor JPEG, as small writing in a photo and cropped to "
        "their ink, read with a magnified glyph's ink under SOFT_EDGE of a stroke dropped and ink at SOFT_CORE or more "
        "counted as full stroke: accuracy (an image refused as blank counts as read wrong).",
        command=command_line(),
        columns=[
            {"key": "soft_edge", "header": "SOFT_EDGE"},
            {"key": "soft_core", "header": "SOFT_CORE"},
            {"key": "shipped", "header": "glyphkit's"},
            *({"key": c, "header": CONDITION_NAMES[c], "format": "percent1"} for c in CONDITIONS),
        ],
        rows=rows,
        data=f"{sample.split} validation glyphs, {len(sample.labels):,}, each drawn under {len(CONDITIONS)} conditions",
        summary={"glyphs": int(len(sample.labels)), "run": str(run)},
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
