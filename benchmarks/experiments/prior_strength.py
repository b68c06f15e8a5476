"""How strongly to take the training prior out: logit adjustment's tau, chosen on validation images.

`--class-prior uniform` subtracts log(prior) from the network's logits: logit adjustment with tau = 1 (Menon et al.
2021). A network's logits need not carry its training prior at exactly that strength, so this sweeps tau (the
logits minus tau * log prior) on the run's validation images, which choose, and reports the test images beside
them, which only show what the choice would have given. Plain logits (no test-time augmentation) for both parts.
The network's logits must carry the training prior (a run trained with `--balance none`).

    python benchmarks/experiments/prior_strength.py RUN --data-dir ../shared/emnist [--split proxy47]
        [--results benchmarks/results/prior_strength-fast47.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sklearn.metrics import balanced_accuracy_score

from glyphkit.data import load_run_split
from glyphkit.inference import load_trained_run
from glyphkit.results import command_line, write_result
from glyphkit.rundir import BEST, checkpoint_config, load_checkpoint

TAUS = (0.0, 0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5)  # 0: the network as trained; 1: --class-prior uniform

COLUMNS = [
    {"key": "tau", "header": "tau"},
    {"key": "val_accuracy", "header": "validation accuracy", "format": "percent"},
    {"key": "val_balanced_accuracy", "header": "validation balanced accuracy", "format": "percent"},
    {"key": "test_accuracy", "header": "test accuracy", "format": "percent"},
    {"key": "test_balanced_accuracy", "header": "test balanced accuracy", "format": "percent"},
]


def logits_and_labels(
    run: str, data_dir: str, split: str
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """The network's own logits (answering for its training prior) and the labels of the split's validation and
    test parts, read once as the run split them, and log(prior) as `--class-prior uniform` subtracts it."""
    config = checkpoint_config(load_checkpoint(Path(run) / BEST))
    data = load_run_split(config.replace(split=split), data_dir)
    predictor = load_trained_run(run, data=data, part="val", class_prior="train").predictor
    prior = predictor.prior
    if prior is None or prior.logits != "train":
        raise SystemExit(f"error: {run} was trained with --balance; its logits do not carry the training prior")
    parts = {}
    for part in ("val", "test"):
        images, labels = data.part(part)
        parts[part] = (predictor.logits(images), labels)
    return parts, prior.log_prior()


def scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(accuracy, balanced accuracy): sklearn's mean recall per class."""
    answers = logits.argmax(dim=1).numpy()
    return float((answers == labels.numpy()).mean()), float(balanced_accuracy_score(labels.numpy(), answers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run folder (--balance none)")
    parser.add_argument("--data-dir", required=True, help="folder with the split's EMNIST files")
    parser.add_argument("--split", default="proxy47", help="the split evaluated on (default: proxy47)")
    parser.add_argument("--results", help="write a results record here")
    args = parser.parse_args()
    parts, log_prior = logits_and_labels(args.run, args.data_dir, args.split)
    (val_logits, val_labels), (test_logits, test_labels) = parts["val"], parts["test"]
    rows = []
    for tau in TAUS:
        val_acc, val_balanced = scores(val_logits - tau * log_prior, val_labels)
        test_acc, test_balanced = scores(test_logits - tau * log_prior, test_labels)
        rows.append(
            {
                "tau": f"{tau:g}",
                "val_accuracy": val_acc,
                "val_balanced_accuracy": val_balanced,
                "test_accuracy": test_acc,
                "test_balanced_accuracy": test_balanced,
            }
        )
        print(f"tau {tau:g}: validation balanced accuracy {val_balanced:.2%}, test {test_balanced:.2%}")
    chosen = max(rows, key=lambda row: row["val_balanced_accuracy"])  # the first of equals: the smaller tau
    uniform = next(row for row in rows if row["tau"] == "1")
    print(f"chosen on validation: tau {chosen['tau']} (test balanced accuracy {chosen['test_balanced_accuracy']:.2%})")
    if args.results:
        write_result(
            args.results,
            what="Balanced accuracy of one run's logits minus tau * log(training prior), tau swept.",
            command=command_line(),
            columns=COLUMNS,
            rows=rows,
            summary={
                "chosen_tau": float(chosen["tau"]),
                "chosen_test_balanced_accuracy": chosen["test_balanced_accuracy"],
                "uniform_test_balanced_accuracy": uniform["test_balanced_accuracy"],
                "chosen_gain_points": round(
                    100 * (chosen["test_balanced_accuracy"] - uniform["test_balanced_accuracy"]), 2
                ),
            },
            data=f"{args.split}: the run's {len(val_labels):,} validation images choose tau; "
            f"{len(test_labels):,} test images (natural class frequencies)",
        )
        print(f"results record: {args.results}")


if __name__ == "__main__":
    main()
