"""How accurate is a preset, and how long does a user wait for it? The headline numbers of README's presets table.

Runs the user's own command, `python -m glyphkit train --preset NAME --split SPLIT --seed S`, once per split, and
times the whole command (loading, training, calibration, the final evaluation with and without TTA, reports and
figures). Then records, from the run folder it wrote: the best epoch and its validation accuracy (history.json), and
test accuracy and balanced accuracy with and without test-time augmentation (metrics.json, class prior `train`).
The summary holds `headline_<precision>_test_acc_tta` and `headline_<precision>_total_s` of the first split, which
README's presets table shows when glyphkit.config.PRESET_RESULTS names this record for the preset.

    python benchmarks/preset_run.py --preset best --data-dir ../shared/emnist [--splits proxy47,proxy62]
        [--seed 42] [--precision auto|bf16|fp32] [--out runs/preset_run] [--results PATH] [--quick]

Run it on an otherwise idle machine: the wall time is the claim. The run folders stay under --out (git-ignored
`runs/` by default) for `glyphkit evaluate`, `benchmarks/experiments/class_prior.py` and the paper test. Writes the
record benchmarks/results/preset_run-PRESET.json (`--results` to choose; with --quick none unless --results);
--quick trains one epoch on a few hundred images (a smoke run of this script, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from glyphkit.config import Config
from glyphkit.results import command_line, machine_info, result_path, write_result
from glyphkit.rundir import BEST, load_checkpoint
from glyphkit.runtime import autocast_dtype, precision_name, resolve_device

COLUMNS = [
    {"key": "split", "header": "split"},
    {"key": "seed", "header": "seed", "format": "int"},
    {"key": "wall_s", "header": "whole command", "format": "minutes"},
    {"key": "best_epoch", "header": "best epoch", "format": "int"},
    {"key": "best_val_acc", "header": "its validation accuracy", "format": "percent"},
    {"key": "test_acc", "header": "test accuracy", "format": "percent"},
    {"key": "balanced_acc", "header": "balanced accuracy", "format": "percent"},
    {"key": "test_acc_tta", "header": "test accuracy, TTA", "format": "percent"},
    {"key": "balanced_acc_tta", "header": "balanced accuracy, TTA", "format": "percent"},
]
QUICK_FLAGS = ["--epochs", "1", "--limit-train", "400", "--limit-test", "200", "--no-progress"]


def train_command(args: argparse.Namespace, split: str, run_dir: Path) -> list[str]:
    """The command a user types for this preset, split and seed (plus --quick's size limits)."""
    command = [sys.executable, "-m", "glyphkit", "train", "--preset", args.preset, "--split", split]
    command += ["--seed", str(args.seed), "--precision", args.precision, "--output-dir", str(run_dir)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    return command + (QUICK_FLAGS if args.quick else [])


def timed_run(command: list[str]) -> float:
    """Run `command` (its output shown as it goes); return its wall time in seconds. Stops the script if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command[1:])} failed (exit status {done.returncode}); see its output above")
    return time.perf_counter() - started


def run_numbers(run_dir: Path) -> dict:
    """Best epoch and its validation accuracy, test and balanced accuracy with and without TTA, from the run folder."""
    history = json.loads((run_dir / "history.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    best_epoch = int(load_checkpoint(run_dir / BEST)["epoch"])  # the epoch the run kept, whatever its monitor
    tta = metrics.get("tta_metrics") or {}
    return {
        "best_epoch": best_epoch,
        "best_val_acc": history["val_acc"][history["epoch"].index(best_epoch)],
        "test_acc": metrics["accuracy"],
        "balanced_acc": metrics["balanced_accuracy"],
        "test_acc_tta": tta.get("accuracy"),
        "balanced_acc_tta": tta.get("balanced_accuracy"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True, help="the preset to measure (glyphkit.config.PRESETS)")
    parser.add_argument("--splits", default="proxy47", help="comma-separated splits; the first is the headline")
    parser.add_argument("--data-dir", default=None, help="folder with the EMNIST files (as for glyphkit train)")
    parser.add_argument("--seed", type=int, default=42, help="seed of every run (default 42, the train default)")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"), help="as for glyphkit train")
    parser.add_argument("--out", default="runs/preset_run", help="folder for the run folders (OUT/PRESET-SPLIT)")
    parser.add_argument(
        "--results", default=None, help="record path (default benchmarks/results/preset_run-PRESET.json)"
    )
    parser.add_argument("--quick", action="store_true", help="one epoch on a few hundred images: a smoke run")
    args = parser.parse_args(argv)

    rows, run_dirs = [], []
    for split in args.splits.split(","):
        run_dirs.append(Path(args.out) / f"{args.preset}-{split}")
        wall_s = timed_run(train_command(args, split, run_dirs[-1]))
        rows.append({"split": split, "seed": args.seed, "wall_s": round(wall_s), **run_numbers(run_dirs[-1])})
        print(f"{args.preset} on {split}: {rows[-1]}", flush=True)

    config = Config.load(run_dirs[0] / "config.json")  # the headline run's settings, as the train command saved them
    precision = precision_name(autocast_dtype(resolve_device(config.device), config.precision))
    headline = rows[0]
    summary = {
        "preset": args.preset,
        "model": config.model,
        "epochs": config.epochs,
        f"headline_{precision}_test_acc_tta": headline["test_acc_tta"],
        f"headline_{precision}_total_s": headline["wall_s"],
    }
    path = result_path(args.results, args.quick, "preset_run", args.preset)
    if path is not None:
        write_result(
            path,
            what=f"The `{args.preset}` preset trained with the train command itself: wall time of the whole command, "
            "best epoch, test accuracy and balanced accuracy (class prior `train`) with and without TTA.",
            command=command_line(),
            columns=COLUMNS,
            rows=rows,
            summary=summary,
            data=", ".join(f"{row['split']} test" for row in rows),
            notes=(
                "a --quick smoke run: one epoch on a few hundred images, not a measurement"
                if args.quick
                else f"Each row: `python -m glyphkit train --preset {args.preset} --split SPLIT --seed {args.seed}` "
                f"({config.model}, {config.epochs} epochs, {precision}), timed from start to exit, nothing else "
                "running. The best epoch is picked on the run's own validation images."
            ),
            machine=machine_info(resolve_device(config.device)),
        )
        print(f"results record: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
