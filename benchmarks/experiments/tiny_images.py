"""Should a tiny image be read enlarged? glyphkit.preprocess.TINY_IMAGE, measured on validation glyphs.

A glyph 14-20 px high (the paper test's jpeg condition: JPEG quality 30) is thresholded and cropped at its own
pixels unless it is first enlarged (bicubic) to TINY_IMAGE pixels on its long side. The run's **validation** glyphs
(the paper test reads the test glyphs; a setting must not be chosen on them) are drawn under the jpeg condition, on
plain paper, and cropped to their ink (the other condition whose images can be that small), and each image is read
under every TINY_IMAGE setting (0: never enlarged). Every setting reads the same images, so the differences are
paired.

    python benchmarks/experiments/tiny_images.py RUN --data-dir ../shared/emnist [--count 2000] [--sizes 0,64,128]
        [--results PATH]

Writes benchmarks/results/tiny_images-RUN.json (`--results` to choose). The renderings are held in memory: they are
derived from EMNIST and never committed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from validation_reads import draw_validation  # beside this script: the validation glyphs drawn and read

from glyphkit import preprocess
from glyphkit.results import command_line, default_result_path, write_result
from glyphkit.scans import CONDITION_NAMES

CONDITIONS = ("plain", "jpeg", "cropped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--count", type=int, default=2000, help="validation glyphs drawn (default: 2,000)")
    parser.add_argument("--sizes", default="0,64,128", help="TINY_IMAGE settings, comma-separated (0: never)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--results", default=None, help="the record's path (default: tiny_images-RUN.json)")
    args = parser.parse_args()
    run = Path(args.run_dir)
    sample = draw_validation(run, args.data_dir, CONDITIONS, args.count, args.seed)
    shipped = preprocess.TINY_IMAGE
    arrays = sample.accuracy(sample.glyphs)  # the same glyphs under every condition: read once
    rows = [{"tiny_image": "28x28 arrays", "shipped": "", **dict.fromkeys(CONDITIONS, arrays)}]
    for size in [int(s) for s in args.sizes.split(",")]:
        preprocess.TINY_IMAGE = size
        row = {"tiny_image": f"{size} px" if size else "never enlarged", "shipped": "yes" if size == shipped else ""}
        for condition in CONDITIONS:
            read = sample.read(condition)
            row[condition] = sample.accuracy(read)
            row[f"{condition}_refused"] = int((read.max((1, 2)) == 0).sum())
        print(row, flush=True)
        rows.append(row)
    preprocess.TINY_IMAGE = shipped
    path = args.results or default_result_path("tiny_images", run.name)
    write_result(
        path,
        what="Validation glyphs drawn tiny in a poor JPEG, on plain paper, and cropped to their ink, read with "
        "images under TINY_IMAGE pixels on their long side enlarged to it first (or never): accuracy (an image refused "
        "as blank counts as read wrong), and how many were refused.",
        command=command_line(),
        columns=[
            {"key": "tiny_image", "header": "tiny images read at"},
            {"key": "shipped", "header": "glyphkit's"},
            *({"key": c, "header": CONDITION_NAMES[c], "format": "percent1"} for c in CONDITIONS),
            *({"key": f"{c}_refused", "header": f"{c}: refused", "format": "int"} for c in CONDITIONS),
        ],
        rows=rows,
        data=f"{sample.split} validation glyphs, {len(sample.labels):,}, each drawn under {len(CONDITIONS)} conditions",
        summary={"glyphs": int(len(sample.labels)), "run": str(run)},
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
