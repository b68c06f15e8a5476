"""Which recipe should the `best` preset train? Trained runs compared on their validation images, which choose.

For each run: accuracy as trained (class prior `train`) and balanced accuracy with the training prior taken out
(`--class-prior uniform`), on the run's validation images and on the test images, which only show what the choice
gives. Plain logits (no test-time augmentation), the network's training time (history.json: the epochs' summed
time) and its recipe from config.json. Runs trained with the same seed and `val_split` share their validation images.

    python benchmarks/experiments/best_preset.py RUN [RUN ...] --data-dir ../shared/emnist [--split proxy47]
        [--results benchmarks/results/best_preset-proxy47.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prior_strength import logits_and_labels, scores  # the sibling experiment: logits read once, sklearn's scores

from glyphkit.config import Config
from glyphkit.results import command_line, write_result

COLUMNS = [
    {"key": "run", "header": "run"},
    {"key": "recipe", "header": "recipe"},
    {"key": "train_s", "header": "training", "format": "minutes"},
    {"key": "val_accuracy", "header": "validation accuracy", "format": "percent"},
    {"key": "val_balanced_uniform", "header": "validation balanced accuracy, uniform", "format": "percent"},
    {"key": "test_accuracy", "header": "test accuracy", "format": "percent"},
    {"key": "test_balanced_uniform", "header": "test balanced accuracy, uniform", "format": "percent"},
]


def recipe(config: Config) -> str:
    """The settings that tell the compared recipes apart, in the words of the train command's flags."""
    return (
        f"{config.model}, {config.epochs} epochs, lr {config.lr:g}, label smoothing {config.label_smoothing:g}, "
        f"EMA {config.ema_decay:g}, dropout {config.dropout_rate:g}, augment share {config.augment_share:g}"
    )


def run_row(run: Path, data_dir: str, split: str) -> dict:
    parts, log_prior = logits_and_labels(str(run), data_dir, split)
    history = json.loads((run / "history.json").read_text())
    row = {"run": run.name, "recipe": recipe(Config.load(run / "config.json")), "train_s": sum(history["epoch_time"])}
    for part, (logits, labels) in parts.items():
        row[f"{part}_accuracy"] = scores(logits, labels)[0]
        row[f"{part}_balanced_uniform"] = scores(logits - log_prior, labels)[1]
    print(
        f"{run.name}: validation {row['val_accuracy']:.2%} / {row['val_balanced_uniform']:.2%} balanced (uniform); "
        f"test {row['test_accuracy']:.2%} / {row['test_balanced_uniform']:.2%}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="trained run folders (--balance none)")
    parser.add_argument("--data-dir", required=True, help="folder with the split's EMNIST files")
    parser.add_argument("--split", default="proxy47", help="the split evaluated on (default: proxy47)")
    parser.add_argument("--results", help="write a results record here")
    args = parser.parse_args()
    rows = [run_row(Path(run), args.data_dir, args.split) for run in args.runs]
    if args.results:
        write_result(
            args.results,
            what="Trained runs of candidate recipes: accuracy (prior `train`) and balanced accuracy (prior `uniform`) "
            "on their validation and test images, without TTA.",
            command=command_line(),
            columns=COLUMNS,
            rows=rows,
            data=f"{args.split}: each run's validation images (the same ones: seed 42, val_split 0.1) and the test "
            "images (natural class frequencies)",
        )
        print(f"results record: {args.results}")


if __name__ == "__main__":
    main()
