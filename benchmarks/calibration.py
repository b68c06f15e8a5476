"""How well do a run's probabilities match how often it is right? Calibration methods compared on the test split.

For each run: the logits of its validation images (where a calibration is fitted, as training does) and of its
test split (where it is measured). Methods: none; temperature scaling (one number); temperature scaling fitted on
the test split itself (the best any temperature can do: a bound, not a method); vector scaling (a scale and a
bias per class, what glyphkit fits). Expected calibration error (15 bins) and accuracy on the test split.

    python benchmarks/calibration.py RUN [RUN ...] --data-dir ../shared/emnist [--out runs/calibration]
        [--results PATH] [--quick]

Writes calibration.json and calibration.md under --out (git-ignored `runs/` by default), and the results record
benchmarks/results/calibration-RUNS.json (RUNS: the run folders' names joined by '+'; `--results` to choose).
`--quick`: the first 256 validation and test images, a smoke test that writes a record only where --results is
given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from glyphkit.inference import (
    Calibrator,
    expected_calibration_error,
    fit_temperature,
    fit_vector_scaling,
    load_trained_run,
)
from glyphkit.results import command_line, result_path, write_result
from glyphkit.rundir import write_results


def measure_run(run_dir: str, data_dir: str | None, limit: int | None = None) -> dict:
    test = load_trained_run(run_dir, data_dir=data_dir, limit_test=limit)
    val = load_trained_run(run_dir, data_dir=data_dir, part="val", limit_test=limit)
    val_logits, test_logits = val.predictor.logits(val.images), test.predictor.logits(test.images)
    methods = {
        "none": Calibrator.identity(),
        "temperature scaling": Calibrator.from_temperature(fit_temperature(val_logits, val.labels)),
        "temperature fitted on the test split (bound)": Calibrator.from_temperature(
            fit_temperature(test_logits, test.labels)
        ),
        "vector scaling": fit_vector_scaling(val_logits, val.labels),
    }
    row = {
        "run": run_dir,
        "split": test.split,
        "model": test.config.model,
        "preset": test.config.preset,
        "epochs": test.config.epochs,
        "images": len(test.labels),
        "methods": {},
    }
    for name, calibrator in methods.items():
        calibrated = calibrator(test_logits)
        row["methods"][name] = {
            "ece": expected_calibration_error(calibrated.softmax(1).numpy(), test.labels.numpy()),
            "accuracy": float((calibrated.argmax(1) == test.labels).float().mean()),
            "calibration": calibrator.describe(),
        }
        print(f"{run_dir} {name}: {row['methods'][name]}", flush=True)
    return row


def describe(row: dict) -> str:
    """A run as the tables name it: its network, preset and epochs."""
    return f"{row['model']}" + (f", `{row['preset']}` settings" if row["preset"] else "") + f", {row['epochs']} epochs"


def markdown(rows: list[dict]) -> str:
    lines = ["| run | method | expected calibration error | accuracy |", "|---|---|---|---|"]
    for r in rows:
        lines += [
            f"| {describe(r)} | {name} | {100 * m['ece']:.2f}% | {100 * m['accuracy']:.2f}% |"
            for name, m in r["methods"].items()
        ]
    return "\n".join(lines) + "\n"


COLUMNS = [
    {"key": "run", "header": "run"},
    {"key": "method", "header": "method"},
    {"key": "images", "header": "test images", "format": "int"},
    {"key": "ece", "header": "expected calibration error", "format": "percent"},
    {"key": "accuracy", "header": "accuracy", "format": "percent"},
    {"key": "calibration", "header": "fitted calibration"},
]


def record_rows(rows: list[dict]) -> list[dict]:
    """One row per run and method; `run` says which network and settings."""
    return [
        {
            "run": describe(r),
            "method": name,
            "images": r["images"],
            "ece": m["ece"],
            "accuracy": m["accuracy"],
            "calibration": m["calibration"],
        }
        for r in rows
        for name, m in r["methods"].items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders")
    parser.add_argument("--data-dir", default=None, help="folder with the runs' split (default: each run's own)")
    parser.add_argument("--out", default="runs/calibration", help="where calibration.json and .md go")
    parser.add_argument(
        "--results",
        metavar="PATH",
        help="the results record (default: benchmarks/results/"
        "calibration-RUNS.json, RUNS the run folders' names joined by '+'; with --quick: none)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="256 validation and test images: a smoke test, not a measurement"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = [measure_run(run, args.data_dir, 256 if args.quick else None) for run in args.runs]
    write_results(args.out, "calibration", rows, markdown(rows))
    print("\n" + markdown(rows))
    path = result_path(args.results, args.quick, "calibration", "+".join(Path(r).name for r in args.runs))
    if path is not None:
        write_result(
            path,
            what="Calibration methods fitted on a run's validation images, measured on its test "
            "split: expected calibration error (15 bins) and accuracy.",
            command=command_line(),
            columns=COLUMNS,
            rows=record_rows(rows),
            data=", ".join(sorted({f"{r['split']} test, {r['images']:,} images" for r in rows})),
            notes="a --quick smoke run: not a measurement" if args.quick else None,
        )
        print(f"results record: {path}")


if __name__ == "__main__":
    main()
