"""Accuracy and balanced accuracy of trained runs under both class priors, `train` and `uniform`.

Each run is evaluated on the split's test images twice, the way a user would (`glyphkit evaluate RUN
--class-prior train`, then `uniform`); its metrics.json is left as the last evaluation wrote it. A run trained with
`--balance logit-adjust` or `reweight` answers class-balanced by itself; `train` then adds its prior back.

    python benchmarks/experiments/class_prior.py RUN [RUN ...] --data-dir ../shared/emnist [--split proxy47]
        [--results benchmarks/results/class-prior-proxy47.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from glyphkit import cli
from glyphkit.results import command_line, write_result

COLUMNS = [
    {"key": "run", "header": "run"},
    {"key": "seed", "header": "seed"},
    {"key": "balance", "header": "trained with --balance"},
    {"key": "class_prior", "header": "--class-prior"},
    {"key": "accuracy", "header": "accuracy", "format": "percent"},
    {"key": "balanced_accuracy", "header": "balanced accuracy", "format": "percent"},
    {"key": "tta_accuracy", "header": "accuracy with TTA", "format": "percent"},
    {"key": "tta_balanced_accuracy", "header": "balanced accuracy with TTA", "format": "percent"},
]
MEASURES = ("accuracy", "balanced_accuracy", "tta_accuracy", "tta_balanced_accuracy")


def evaluate(run: Path, split: str, data_dir: str, prior: str) -> dict:
    args = ["evaluate", str(run), "--split", split, "--data-dir", data_dir, "--class-prior", prior, "--no-progress"]
    if cli.main(args) != 0:
        raise SystemExit(f"error: evaluating {run} with --class-prior {prior} failed")
    return json.loads((run / "metrics.json").read_text())


def line_of(row: dict) -> str:
    return (
        f"{row['run']} ({row['balance']}), {row['class_prior']}: accuracy {row['accuracy']:.2%}, "
        f"balanced accuracy {row['balanced_accuracy']:.2%}"
    )


def median_of(rows: list[dict], key: str) -> float | None:
    """The median of a measure over runs, or None when a run lacks it (one evaluated without TTA)."""
    values = [r.get(key) for r in rows]
    return None if None in values else statistics.median(values)


def median_rows(rows: list[dict]) -> list[dict]:
    """For each (--balance, --class-prior) measured on two or more runs (seeds): the median of each measure."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["balance"], row["class_prior"]), []).append(row)
    return [
        {
            "run": f"median of {len(group)}",
            "seed": ", ".join(str(r["seed"]) for r in group),
            "balance": balance,
            "class_prior": prior,
            **{key: median_of(group, key) for key in MEASURES},
        }
        for (balance, prior), group in groups.items()
        if len(group) > 1
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="trained run folders")
    parser.add_argument("--data-dir", required=True, help="folder with the split's EMNIST files")
    parser.add_argument("--split", default="proxy47", help="the split evaluated on (default: proxy47)")
    parser.add_argument("--results", help="write a results record here")
    args = parser.parse_args()
    rows = []
    for run in map(Path, args.runs):
        config = json.loads((run / "config.json").read_text())
        balance = config.get("balance", "none")
        for prior in ("train", "uniform"):
            metrics = evaluate(run, args.split, args.data_dir, prior)
            rows.append(
                {
                    "run": run.name,
                    "seed": str(config.get("seed")),
                    "balance": balance,
                    "class_prior": prior,
                    "accuracy": metrics["accuracy"],
                    "balanced_accuracy": metrics["balanced_accuracy"],
                    # with the run's --tta (the presets set it): the five-view average, as its report gives it
                    "tta_accuracy": metrics.get("tta_metrics", {}).get("accuracy"),
                    "tta_balanced_accuracy": metrics.get("tta_metrics", {}).get("balanced_accuracy"),
                }
            )
            print(line_of(rows[-1]))
    medians = median_rows(rows)
    for row in medians:
        print(line_of(row))
    rows += medians
    if args.results:
        test_images = metrics["num_test_images"]
        write_result(
            args.results,
            what="Accuracy and balanced accuracy (mean per-class recall) of trained runs under both class priors.",
            command=command_line(),
            columns=COLUMNS,
            rows=rows,
            data=f"{args.split} test, {test_images:,} images (natural class frequencies)",
        )
        print(f"results record: {args.results}")


if __name__ == "__main__":
    main()
