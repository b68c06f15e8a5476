"""A small glyph set of your own, learnt from scratch and from a trained run (--init-from).

The glyph set: proxy62's 26 lowercase letters (real EMNIST handwriting), 20 training images per letter from its
training split and up to 100 per letter from its test split, written as PNG files (dark ink on white, 56x56) in
the `train/<letter>/`, `test/<letter>/` layout a user would make. Both runs train the same network with the same
settings; the second starts from RUN's best model (all layers but the classifier). RUN must be a `glyphnet` run
on proxy47 (trained on images disjoint from proxy62's).

    python benchmarks/experiments/glyph_folder_init.py RUN --data-dir ../shared/emnist [--out runs/glyph_folder_init]

The PNGs are derived from EMNIST: they are written under --out (git-ignored `runs/` by default), never committed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from glyphkit import cli
from glyphkit.data import load_split


def write_letters(data_dir: str, out: Path, per_class: int, test_per_class: int, seed: int = 0) -> Path:
    data = load_split("proxy62", data_dir, val_split=0.1, seed=seed)
    rng = np.random.default_rng(seed)
    for part, images, labels, count in (
        ("train", data.train_images, data.train_labels, per_class),
        ("test", data.test_images, data.test_labels, test_per_class),
    ):
        images, labels = images.numpy(), labels.numpy()
        for label, char in enumerate(data.classes):
            if not char.islower():
                continue
            members = np.flatnonzero(labels == label)
            folder = out / part / char
            folder.mkdir(parents=True, exist_ok=True)
            for i in rng.choice(members, size=min(count, len(members)), replace=False):
                Image.fromarray(255 - images[i]).resize((56, 56), Image.BICUBIC).save(folder / f"{i}.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="runs/glyph_folder_init")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    out = Path(args.out)
    letters = write_letters(args.data_dir, out / "letters", args.per_class, 100)
    common = [
        "train",
        "--data-dir",
        str(letters),
        "--model",
        "glyphnet",
        "--batch-size",
        "32",
        "--epochs",
        str(args.epochs),
        "--scheduler",
        "onecycle",
        "--lr",
        "3e-3",
        "--no-progress",
        "--overwrite",
    ]
    rows = {}
    for name, extra in (("from scratch", []), (f"--init-from {args.run_dir}", ["--init-from", args.run_dir])):
        run = out / ("scratch" if not extra else "init_from")
        assert cli.main([*common, "--output-dir", str(run), *extra]) == 0
        rows[name] = json.loads((run / "metrics.json").read_text())
    tested = next(iter(rows.values()))["num_test_images"]
    print(
        f"\n| {args.per_class} training images per lowercase letter | accuracy on {tested} test images | "
        "balanced accuracy |\n|---|---|---|"
    )
    for name, m in rows.items():
        print(f"| {name} | {100 * m['accuracy']:.2f}% | {100 * m['balanced_accuracy']:.2f}% |")


if __name__ == "__main__":
    main()
