"""Test-time augmentation where it can help: how many glyphs need it, and what skipping the sure ones costs.

TTA averages the network's logits over a glyph and its four one-pixel shifts: five network passes per glyph.
glyphkit runs the four shifted views only for the glyphs whose calibrated top-1 probability is below
TTA_BELOW_CONFIDENCE. This script shows why that is safe and what it saves: for each threshold, the share of
the test split that gets the shifted views, the network passes per glyph, the accuracy, and the number of
answers that differ from TTA on every glyph. All five views of every test glyph are computed once (so the
script costs five full passes); each threshold is then a selection from them.

    python benchmarks/experiments/selective_tta.py RUN [RUN ...] --data-dir ../shared/emnist [--precision fp32]
        [--out runs/selective_tta]

Writes selective_tta.json and selective_tta.md under --out (git-ignored `runs/` by default).
"""

from __future__ import annotations

import argparse

import torch

from glyphkit.inference import TTA_BELOW_CONFIDENCE, TTA_SHIFTS, load_trained_run, needs_tta
from glyphkit.rundir import write_results

THRESHOLDS = (None, 0.99, 0.95, 0.9, 0.8, 0.7, 0.5)  # None: TTA for every glyph


def all_views(run, images: torch.Tensor) -> torch.Tensor:
    """Uncalibrated logits [views, N, classes] of every TTA view, in TTA_SHIFTS order (the first is the glyph)."""
    return torch.stack(
        [run.predictor.logits(torch.roll(images, shifts=(dy, dx), dims=(1, 2))) for dx, dy in TTA_SHIFTS]
    )  # (dx, dy): columns, rows of the [N, 28, 28] glyphs


def measure_run(run_dir: str, data_dir: str | None, precision: str | None) -> dict:
    run = load_trained_run(run_dir, data_dir=data_dir, precision=precision)
    views, labels = all_views(run, run.images), run.labels
    plain, everywhere = views[0], views.mean(0)
    row = {
        "run": run_dir,
        "model": run.config.model,
        "preset": run.config.preset,
        "epochs": run.config.epochs,
        "calibration": run.predictor.calibrator.describe(),
        "images": len(labels),
        "thresholds": [],
    }
    for threshold in THRESHOLDS:
        unsure = needs_tta(plain, threshold, run.predictor.calibrator)  # glyphkit's own rule
        logits = torch.where(unsure[:, None], everywhere, plain)
        share = float(unsure.float().mean())
        row["thresholds"].append(
            {
                "below": threshold,
                "share_augmented": share,
                "passes_per_glyph": 1 + (len(TTA_SHIFTS) - 1) * share,
                "accuracy": float((logits.argmax(1) == labels).float().mean()),
                "answers_unlike_full_tta": int((logits.argmax(1) != everywhere.argmax(1)).sum()),
            }
        )
        print(f"{run_dir}: {row['thresholds'][-1]}", flush=True)
    row["plain_accuracy"] = float((plain.argmax(1) == labels).float().mean())
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        f"(glyphkit's default: TTA below {TTA_BELOW_CONFIDENCE})",
        "",
        "| run | TTA for glyphs with confidence below | share of glyphs | network passes per glyph | accuracy | "
        "answers unlike TTA on every glyph |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        what = f"{r['model']}" + (f", `{r['preset']}` settings" if r["preset"] else "") + f", {r['epochs']} epochs"
        lines.append(f"| {what} | no TTA | 0% | 1.00 | {100 * r['plain_accuracy']:.3f}% | |")
        lines += [
            f"| {what} | {'every glyph' if t['below'] is None else t['below']} | "
            f"{100 * t['share_augmented']:.1f}% | {t['passes_per_glyph']:.2f} | {100 * t['accuracy']:.3f}% | "
            f"{t['answers_unlike_full_tta']:,} of {r['images']:,} |"
            for t in r["thresholds"]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), default=None, help="the runs' own precision unless given"
    )
    parser.add_argument("--out", default="runs/selective_tta")
    args = parser.parse_args()
    rows = [measure_run(run, args.data_dir, args.precision) for run in args.runs]
    write_results(args.out, "selective_tta", rows, markdown(rows))
    print("\n" + markdown(rows))


if __name__ == "__main__":
    main()
