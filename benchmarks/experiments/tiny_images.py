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

import numpy as np
import torch
from tqdm.auto import tqdm

from glyphkit import preprocess
from glyphkit.data import load_config_split
from glyphkit.inference import load_predictor
from glyphkit.results import command_line, default_result_path, write_result
from glyphkit.rundir import BEST, checkpoint_config, load_checkpoint
from glyphkit.scans import CONDITION_NAMES, render_condition

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
    config = checkpoint_config(load_checkpoint(run / BEST))
    data = load_config_split(config.replace(data_dir=args.data_dir))
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(data.val_labels), size=min(args.count, len(data.val_labels)), replace=False)
    glyphs, labels = data.val_images.numpy()[chosen], data.val_labels.numpy()[chosen]
    drawn = {c: [render_condition(g, c, rng) for g in tqdm(glyphs, desc=c, leave=False)] for c in CONDITIONS}
    predictor = load_predictor(run)

    def accuracy(images: np.ndarray) -> float:
        return float((predictor.probabilities(torch.from_numpy(images)).argmax(1).numpy() == labels).mean())

    def glyph(image) -> np.ndarray:
        """The image's glyph as predict reads it; a refused image (no handwriting found) is a blank glyph, which
        counts as read wrong as the paper test counts it."""
        try:
            return preprocess.glyphs_from_image(image)[0].image
        except preprocess.ImageError:
            return np.zeros((28, 28), np.uint8)

    shipped = preprocess.TINY_IMAGE
    rows = [{"tiny_image": "28x28 arrays", "shipped": "", **{c: accuracy(glyphs) for c in CONDITIONS}}]
    for size in [int(s) for s in args.sizes.split(",")]:
        preprocess.TINY_IMAGE = size
        row = {"tiny_image": f"{size} px" if size else "never enlarged", "shipped": "yes" if size == shipped else ""}
        for condition, images in drawn.items():
            read = np.stack([glyph(image) for image in images])
            row[condition] = accuracy(read)
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
        data=f"{config.split} validation glyphs, {len(chosen):,}, each drawn under {len(CONDITIONS)} conditions",
        summary={"glyphs": int(len(chosen)), "run": str(run)},
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
