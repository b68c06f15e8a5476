"""How well do a run's probabilities match how often it is right? Calibration methods compared on the test split.

For each run: the logits of its validation images (where a calibration is fitted, as training does) and of its
test split (where it is measured). Methods: none; temperature scaling (one number); temperature scaling fitted on
the test split itself (the best any temperature can do: a bound, not a method); vector scaling (a scale and a
bias per class, what glyphkit fits). Expected calibration error (15 bins) and accuracy on the test split.

    python benchmarks/calibration.py RUN [RUN ...] --data-dir ../shared/emnist [--out runs/calibration]

Writes calibration.json and calibration.md under --out (git-ignored `runs/` by default).
"""

from __future__ import annotations

import argparse

import torch

from glyphkit.inference import (Calibrator, expected_calibration_error, fit_temperature, fit_vector_scaling,
                                load_trained_run)
from glyphkit.rundir import write_results


def measure_run(run_dir: str, data_dir: str | None) -> dict:
    test = load_trained_run(run_dir, data_dir=data_dir)
    val = load_trained_run(run_dir, data_dir=data_dir, part="val")
    val_logits, test_logits = val.predictor.logits(val.images), test.predictor.logits(test.images)
    methods = {"none": Calibrator.identity(),
               "temperature scaling": Calibrator.from_temperature(fit_temperature(val_logits, val.labels)),
               "temperature fitted on the test split (bound)":
                   Calibrator.from_temperature(fit_temperature(test_logits, test.labels)),
               "vector scaling": fit_vector_scaling(val_logits, val.labels)}
    row = {"run": run_dir, "model": test.config.model, "preset": test.config.preset, "epochs": test.config.epochs,
           "images": len(test.labels), "methods": {}}
    for name, calibrator in methods.items():
        calibrated = calibrator(test_logits)
        row["methods"][name] = {
            "ece": expected_calibration_error(calibrated.softmax(1).numpy(), test.labels.numpy()),
            "accuracy": float((calibrated.argmax(1) == test.labels).float().mean()),
            "calibration": calibrator.describe()}
        print(f"{run_dir} {name}: {row['methods'][name]}", flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| run | method | expected calibration error | accuracy |", "|---|---|---|---|"]
    for r in rows:
        what = f"{r['model']}" + (f", `{r['preset']}` settings" if r["preset"] else "") + f", {r['epochs']} epochs"
        lines += [f"| {what} | {name} | {100 * m['ece']:.2f}% | {100 * m['accuracy']:.2f}% |"
                  for name, m in r["methods"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="runs/calibration")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = [measure_run(run, args.data_dir) for run in args.runs]
    write_results(args.out, "calibration", rows, markdown(rows))
    print("\n" + markdown(rows))


if __name__ == "__main__":
    main()
