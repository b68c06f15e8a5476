"""How wide is one character? The width prior that cuts touching letters apart (glyphkit.preprocess).

For every training glyph of a split, the width of its ink (pixels at half intensity or more) is taken as a share of
its long side: EMNIST frames each glyph by its long side, so this is a character's width in letter heights. The
geometric mean and the standard deviation of its log are `CHARACTER_WIDTH` and `WIDTH_SPREAD` in
glyphkit/preprocess.py; the record also gives each class's geometric mean, narrowest and widest first.

    python benchmarks/experiments/glyph_width.py --data-dir ../shared/emnist [--split proxy47] [--results PATH]

Writes benchmarks/results/glyph_width-SPLIT.json (`--results` to choose).
"""

from __future__ import annotations

import argparse

import numpy as np

from glyphkit.config import Config
from glyphkit.data import load_config_split
from glyphkit.results import command_line, default_result_path, write_result
from glyphkit.scans import ink_extents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="proxy47")
    parser.add_argument("--results", default=None, help="the record's path (default: glyph_width-SPLIT.json)")
    args = parser.parse_args()
    data = load_config_split(Config(split=args.split, data_dir=args.data_dir))
    images, labels = data.train_images.numpy(), data.train_labels.numpy()
    height, width = ink_extents(images >= 128)
    keep = (width > 0) & (height > 0)
    log_width = np.log(width[keep] / np.maximum(width, height)[keep])
    labels = labels[keep]
    mean, spread = float(np.exp(log_width.mean())), float(log_width.std())
    print(
        f"{args.split} training glyphs: {keep.sum():,}; width / long side: geometric mean {mean:.3f}, "
        f"standard deviation of its log {spread:.3f}"
    )
    rows = [{"class": "all", "glyphs": int(keep.sum()), "width": mean, "spread": spread}]
    per_class = []
    for index, character in enumerate(data.classes):
        mine = log_width[labels == index]
        if len(mine):
            per_class.append(
                {
                    "class": character,
                    "glyphs": len(mine),
                    "width": float(np.exp(mine.mean())),
                    "spread": float(mine.std()),
                }
            )
    rows += sorted(per_class, key=lambda row: row["width"])
    path = args.results or default_result_path("glyph_width", args.split)
    write_result(
        path,
        what="The width of a character's ink as a share of its long side (its width in letter heights), EMNIST "
        "training glyphs at half intensity: the geometric mean and the standard deviation of its log, for all "
        "glyphs and for each class.",
        command=command_line(),
        columns=[
            {"key": "class", "header": "class"},
            {"key": "glyphs", "header": "glyphs", "format": "int"},
            {"key": "width", "header": "width (geometric mean)", "format": "float2"},
            {"key": "spread", "header": "standard deviation of log width", "format": "float2"},
        ],
        rows=rows,
        data=f"{args.split} training split, {keep.sum():,} glyphs",
        summary={"character_width": mean, "width_spread": spread},
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
