"""TensorBoard logs of every run (torch.utils.tensorboard), written by rank 0 into the run folder itself.

    tensorboard --logdir runs/      every run folder under runs/ is one TensorBoard run, named after its folder

What is logged, and when (tags):
    loss/train, loss/val, accuracy/train, accuracy/val, lr/epoch, time/epoch_seconds
                                    per epoch, step = the epoch (the numbers history.json holds)
    lr/step                         per optimizer step, where the schedule changes per step (cosine, onecycle)
    figures/training_history        at the end of training, step = the last epoch
    HParams + hparam/*              the run's settings and final numbers: after training (best validation accuracy,
                                    time), again after the evaluation (test and balanced accuracy, TTA, ECE)
    figures/confusion_matrix_normalized   after the evaluation
    lr_finder/ (a subfolder)        the LR range test's smoothed loss and rate per step, and its figure: a
                                    TensorBoard run of its own, since its steps are not training's

An epoch's points are written once its checkpoint is saved. A run stopped in the middle of an epoch resumes from
the last checkpoint and redoes that epoch, whose points are then written for the first time, so a resumed run
continues the same curves with no point twice. (SummaryWriter's purge_step would do it too, but it drops every
tag's points from that step on, the per-step rate's included, whose steps count batches, not epochs.)

Without the `tensorboard` package, training says so once and runs on without these logs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from glyphkit import rundir

Log = Callable[[str], None]

LR_FINDER_DIR = "lr_finder"  # the LR finder's events, inside the run folder
EPOCH_SCALARS = (
    ("loss/train", "train_loss"),
    ("loss/val", "val_loss"),
    ("accuracy/train", "train_acc"),
    ("accuracy/val", "val_acc"),
    ("lr/epoch", "lr"),
    ("time/epoch_seconds", "epoch_time"),
)
# The settings the HParams dashboard compares runs by (Config fields).
HPARAMS = (
    "model",
    "preset",
    "split",
    "epochs",
    "batch_size",
    "lr",
    "scheduler",
    "weight_decay",
    "label_smoothing",
    "ema_decay",
    "dropout_rate",
    "augment",
    "augment_share",
    "progressive_size",
    "precision",
    "seed",
    "world_size",
)
MISSING = (
    "TensorBoard logging is off: the `tensorboard` package is not installed (pip install tensorboard, or "
    "conda install -c conda-forge tensorboard); training goes on without it"
)

_said_missing = False


def open_writer(log_dir: str | os.PathLike, log: Log = print):
    """A SummaryWriter appending a new event file to `log_dir`, or None (said once per process) without
    TensorBoard."""
    global _said_missing
    try:
        from torch.utils.tensorboard import SummaryWriter  # raises ImportError when tensorboard is missing
    except ImportError:
        if not _said_missing:
            _said_missing = True
            log(MISSING)
        return None
    return SummaryWriter(log_dir=str(log_dir))


class TrainingLog:
    """One training run's curves. `enabled=False` (ranks other than 0) or a missing TensorBoard: every call does
    nothing."""

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True, log: Log = print):
        self.writer = open_writer(run_dir, log) if enabled else None
        self._steps: list[tuple[int, float]] = []  # (optimizer step, rate) of the epoch in progress

    def step_lr(self, step: int, lr: float) -> None:
        """The rate optimizer step `step` (counted from 1 over the whole run) used; written with its epoch."""
        if self.writer is not None:
            self._steps.append((step, lr))

    def epoch(self, row: Mapping[str, float]) -> None:
        """An epoch's numbers (a History row), after its checkpoint is saved; flushed at once, so a killed run
        loses no written epoch."""
        if self.writer is None:
            return
        for tag, key in EPOCH_SCALARS:
            self.writer.add_scalar(tag, row[key], row["epoch"])
        for step, lr in self._steps:
            self.writer.add_scalar("lr/step", lr, step)
        self._steps.clear()
        self.writer.flush()

    def close(self) -> None:
        """Close the event file; the points of an epoch that did not finish are dropped (its resume redoes it)."""
        self._steps.clear()
        if self.writer is not None:
            self.writer.close()


def add_png(writer, tag: str, path: str | os.PathLike, step: int) -> None:
    """A figure the run folder holds, as an image. The PNG glyphkit wrote is read back rather than the figure drawn
    a second time (SummaryWriter.add_figure would render it again): TensorBoard shows exactly the file."""
    from PIL import Image

    with Image.open(path) as image:
        writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")


def hparam_values(config) -> dict[str, Any]:
    """The settings to compare, as HParams takes them (bool, int, float or str; None as "none")."""
    values = {name: getattr(config, name) for name in HPARAMS}
    values["world_size"] = values["world_size"] or 1
    return {k: "none" if v is None else v for k, v in values.items()}


def log_run_end(
    run_dir: str | os.PathLike,
    config,
    numbers: Mapping[str, float | None],
    figures: Iterable[str | os.PathLike] = (),
    *,
    step: int,
    new: Iterable[str] | None = None,
    log: Log = print,
) -> None:
    """The run's settings with its final `numbers` (glyphkit.runs.final_numbers; None: not measured) through the
    HParams plugin, and `figures` (PNG files) as images, all at `step` (the epochs done). `new`: the numbers to
    write as points (default: all); the others were written before and are only named, so no point is there twice.

    Written into the run's own folder, not into a timestamped subfolder as SummaryWriter.add_hparams does, so
    TensorBoard shows the run once, its curves and its settings together."""
    writer = open_writer(run_dir, log)
    if writer is None:
        return
    from torch.utils.tensorboard.summary import hparams

    metrics = {f"hparam/{k}": float(v) for k, v in numbers.items() if v is not None}
    new = set(numbers if new is None else new)
    try:
        for summary in hparams(hparam_values(config), metrics):
            writer.file_writer.add_summary(summary, step)
        for name, value in numbers.items():
            if name in new and value is not None:
                writer.add_scalar(f"hparam/{name}", float(value), step)
        for path in figures:
            if Path(path).is_file():
                add_png(writer, f"figures/{Path(path).stem}", path, step)
    finally:
        writer.close()


def log_lr_finder(
    run_dir: str | os.PathLike,
    lrs: list[float],
    losses: list[float],
    figure: str | os.PathLike | None = None,
    *,
    log: Log = print,
) -> None:
    """The LR range test in RUN/lr_finder/: smoothed loss and rate per step, and its figure. A new test replaces
    the old one's event files there (as it replaces lr_finder.png)."""
    folder = Path(run_dir) / LR_FINDER_DIR
    for old in folder.glob(rundir.EVENTS_GLOB):
        old.unlink(missing_ok=True)
    writer = open_writer(folder, log)
    if writer is None:
        return
    try:
        for step, (lr, loss) in enumerate(zip(lrs, losses), 1):
            writer.add_scalar("lr_finder/loss", loss, step)
            writer.add_scalar("lr_finder/lr", lr, step)
        if figure is not None and Path(figure).is_file():
            add_png(writer, "lr_finder/figure", figure, len(lrs))
    finally:
        writer.close()
