"""An imbalanced glyph set of your own: which `--balance`, and which `--class-prior`, reads it best?

The glyph set: proxy62's 26 lowercase letters (real EMNIST handwriting) as the PNG folders a user would make, with
10 to 200 training images per letter (counts spaced geometrically, assigned to the letters at random) and the same
number of test images for every letter (class-balanced, so accuracy and balanced accuracy agree). The same network
is trained with each `--balance` option over several seeds and evaluated with both class priors; the table gives
the median over the seeds (and each seed's number in the record).

    python benchmarks/experiments/class_balance.py --data-dir ../shared/emnist [--out runs/class_balance]
        [--seeds 0,1,2] [--epochs 20] [--results benchmarks/results/class-balance-glyph-set.json]

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
from glyphkit.results import command_line, write_result

BALANCES = ("none", "reweight", "logit-adjust")
COLUMNS = [
    {"key": "balance", "header": "trained with --balance"},
    {"key": "class_prior", "header": "--class-prior"},
    {"key": "balanced_accuracy", "header": "balanced accuracy (median)", "format": "percent"},
    {"key": "seeds", "header": "each seed"},
]


def write_glyph_set(data_dir: str, out: Path, fewest: int, most: int, test_per_class: int, seed: int = 0) -> dict:
    """Write train/<letter>/ and test/<letter>/ PNGs (dark ink on white, 56x56); return the training counts."""
    data = load_split("proxy62", data_dir, val_split=0.1, seed=seed)
    rng = np.random.default_rng(seed)
    letters = [c for c in data.classes if c.islower()]
    counts = dict(zip(rng.permutation(letters), np.geomspace(most, fewest, len(letters)).round().astype(int)))
    for part, images, labels in (
        ("train", data.train_images.numpy(), data.train_labels.numpy()),
        ("test", data.test_images.numpy(), data.test_labels.numpy()),
    ):
        for char in letters:
            members = np.flatnonzero(labels == data.classes.index(char))
            wanted = counts[char] if part == "train" else test_per_class
            folder = out / part / char
            folder.mkdir(parents=True, exist_ok=True)
            for i in rng.choice(members, size=min(wanted, len(members)), replace=False):
                Image.fromarray(255 - images[i]).resize((56, 56), Image.BICUBIC).save(folder / f"{i}.png")
    return {str(k): int(v) for k, v in counts.items()}


def train_and_evaluate(letters: Path, run: Path, balance: str, seed: int, epochs: int) -> dict[str, float]:
    """Balanced accuracy of one training run under each class prior."""
    train = ["train", "--data-dir", str(letters), "--output-dir", str(run), "--model", "glyphnet"]
    train += ["--batch-size", "32", "--epochs", str(epochs), "--scheduler", "onecycle", "--lr", "3e-3"]
    train += ["--balance", balance, "--seed", str(seed), "--skip-eval", "--no-progress", "--overwrite"]
    if cli.main(train) != 0:
        raise SystemExit(f"error: training {run} failed")
    found = {}
    for prior in ("train", "uniform"):
        evaluate = ["evaluate", str(run), "--data-dir", str(letters), "--class-prior", prior, "--no-progress"]
        if cli.main(evaluate) != 0:
            raise SystemExit(f"error: evaluating {run} failed")
        found[prior] = json.loads((run / "metrics.json").read_text())["balanced_accuracy"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with proxy62's EMNIST files")
    parser.add_argument("--out", default="runs/class_balance", help="where the glyph set and the runs go")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (default: 0,1,2)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run (default: 20)")
    parser.add_argument("--results", help="write a results record here")
    args = parser.parse_args()
    out, seeds = Path(args.out), [int(s) for s in args.seeds.split(",")]
    letters = out / "lowercase"
    counts = write_glyph_set(args.data_dir, letters, fewest=10, most=200, test_per_class=40)
    found = {
        (balance, seed): train_and_evaluate(letters, out / f"{balance}-{seed}", balance, seed, args.epochs)
        for balance in BALANCES
        for seed in seeds
    }
    rows = []
    for balance in BALANCES:
        for prior in ("train", "uniform"):
            each = [found[(balance, seed)][prior] for seed in seeds]
            rows.append(
                {
                    "balance": balance,
                    "class_prior": prior,
                    "balanced_accuracy": float(np.median(each)),
                    "seeds": ", ".join(f"{100 * v:.2f}%" for v in each),
                }
            )
            print(f"--balance {balance}, --class-prior {prior}: median {np.median(each):.2%} ({rows[-1]['seeds']})")
    if args.results:
        write_result(
            args.results,
            what="An imbalanced glyph set (image folders): balanced accuracy of each --balance option under each "
            "--class-prior, median over training seeds.",
            command=command_line(),
            columns=COLUMNS,
            rows=rows,
            data=f"proxy62's 26 lowercase letters as PNG folders: {sum(counts.values()):,} training images "
            f"({min(counts.values())} to {max(counts.values())} per letter), 40 test images per letter; "
            f"glyphnet, {args.epochs} epochs, seeds {args.seeds}",
            summary={
                "train_images": sum(counts.values()),
                "fewest": min(counts.values()),
                "most": max(counts.values()),
            },
        )
        print(f"results record: {args.results}")


if __name__ == "__main__":
    main()
