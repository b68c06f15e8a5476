"""One place for every default: the `Config` dataclass.

The defaults are the original specification's (split `balanced`, batch 128, 50 epochs, lr 1e-3, AdamW with
weight decay 1e-4, cosine schedule, early-stopping patience 10, dropout 0.4, augmentation 15°/10°/0.08).
The command line, the notebooks' parameters cells and the presets only override fields of it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEDULERS = ("cosine", "plateau", "onecycle")
MONITORS = ("val_loss", "val_acc")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
BALANCES = ("none", "reweight", "logit-adjust")  # --balance: how training treats classes of different sizes
SHRUNK_SIDES = range(8, 28)  # progressive_size: smaller than a 28x28 glyph, at least 8 (the networks pool 2-3 times)


class ConfigError(ValueError):
    """A setting that cannot work, with a message that says which and why."""


@dataclass
class Config:
    # --- data ---
    split: str = "balanced"  # EMNIST split: balanced (47 classes), byclass (62) or any split in the data folder
    data_dir: str | None = None  # folder with EMNIST files; None: $GLYPHKIT_DATA_DIR, then cache, then download
    batch_size: int = 128  # training batch size
    val_split: float = 0.1  # share of the training images held out (stratified) for validation
    limit_train: int | None = None  # use only this many training images (quick experiments, tests)
    limit_test: int | None = None  # use only this many test images
    # --- model ---
    model: str = "glyphnet"  # architecture (glyphkit.models.MODELS); "enhanced" is the original spec's network
    use_residual: bool = True  # residual blocks; False: depthwise-separable blocks
    dropout_rate: float = 0.4  # dropout after the 256->512 fully connected layer
    width: int | None = None  # channels of the stem (stages use multiples of it); None: the model's own (MODELS)
    input_size: int | None = None  # side of the square network input (28x28 glyphs are zero-padded to it);
    #                                None: the model's own. A trained run's config.json holds the values used.
    # --- training ---
    epochs: int = 50  # maximum number of epochs
    lr: float = 1e-3  # initial (peak for onecycle) learning rate
    weight_decay: float = 1e-4  # AdamW's decoupled weight decay
    scheduler: str = "cosine"  # cosine (warm restarts), plateau (ReduceLROnPlateau) or onecycle
    cosine_t0: int = 10  # epochs in the first cosine cycle; each restart doubles it
    plateau_patience: int = 3  # epochs without validation improvement before plateau halves the LR
    early_stopping_patience: int = 10  # epochs without improvement of `monitor` before stopping
    monitor: str = "val_loss"  # what picks best_model.pth and drives early stopping: val_loss (spec) or val_acc
    grad_clip: float = 1.0  # max gradient norm
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    # imbalanced classes: none (plain cross-entropy), reweight (each image weighted by 1/count of its class) or
    # logit-adjust (cross-entropy of logits + log prior, Menon et al. 2021): the last two train prior-free logits
    balance: str = "none"
    ema_decay: float = 0.0  # exponential moving average of weights (0: off); evaluation uses the average
    init_from: str | None = None  # a run folder whose best model starts this one (its classifier too if classes match)
    # --- augmentation (applied to training batches on the device) ---
    # False: train on the glyphs as stored (sooner to a test-set accuracy, worse on scans: docs/experiments.md)
    augment: bool = True
    rotation_degree: float = 15.0  # random rotation, +- degrees
    affine_degree: float = 10.0  # a second random rotation, as the spec's RandomAffine(degrees=10)
    translate: float = 0.08  # random shift, fraction of the image side
    scale: float = 0.0  # random zoom, +- fraction (0: off)
    augment_share: float = 1.0  # chance that a training glyph is warped at all; the rest are trained on as stored
    # progressive resizing: the first half of the epochs train on glyphs shrunk to this side (20: about half the
    # convolution work per image), the rest at full size, so the trained network reads full-size glyphs. 0: off
    progressive_size: int = 0
    # --- evaluation ---
    tta: bool = False  # test-time augmentation: average predictions over small shifts
    # torch.compile the network (frozen weights) for evaluation (docs/evaluation.md#compiling-the-network-compile)
    compile: bool = False
    # --- runtime ---
    seed: int = 42  # seeds Python, NumPy and torch
    device: str = "auto"  # auto (cuda if present), cpu or cuda
    # auto: bf16 autocast where the hardware does bf16 natively (CPUs with AVX-512 BF16 or AMX, recent GPUs), fp16
    # AMP on older GPUs, else fp32; bf16 / fp32 force one (fp32 measures a laptop's speed on a bf16 machine)
    precision: str = "auto"
    channels_last: bool = True  # NHWC memory layout (faster convolutions on CPU)
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on CUDA)
    num_threads: int | None = None  # torch threads; None: the cores, shared among the processes on this machine
    sync_bn: bool = False  # under torchrun: batch-norm statistics over the global batch (SyncBatchNorm, GPUs only)
    # --- filled in from the data and the processes (stored so a checkpoint knows how it was trained) ---
    num_classes: int | None = None
    classes: list[str] | None = None
    norm_mean: float | None = None  # mean pixel of the training images, computed once
    norm_std: float | None = None
    world_size: int | None = None  # processes that trained the run (torchrun); each takes batch_size images a step
    global_batch_size: int | None = None  # images per optimizer step: batch_size x world_size
    # --- bookkeeping ---
    output_dir: str = "outputs"  # run folder
    preset: str | None = None  # name of the preset these settings came from, if any
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the run (never read as settings)

    def validate(self) -> Config:
        """Raise ConfigError for settings that cannot work; return self so calls chain."""
        checks = [
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 < self.val_split < 1, f"val_split must be between 0 and 1 (exclusive), got {self.val_split}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.dropout_rate < 1, f"dropout_rate must be in [0, 1), got {self.dropout_rate}"),
            (self.scheduler in SCHEDULERS, f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}"),
            (self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, got {self.device!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (self.early_stopping_patience >= 1, "early_stopping_patience must be >= 1"),
            (self.monitor in MONITORS, f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}"),
            (self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.balance in BALANCES, f"balance must be one of {', '.join(BALANCES)}, got {self.balance!r}"),
            (0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}"),
            (
                self.input_size is None or self.input_size >= 28,
                f"input_size must be >= 28 (EMNIST glyphs are 28x28), got {self.input_size}",
            ),
            (
                self.progressive_size == 0 or self.progressive_size in SHRUNK_SIDES,
                f"progressive_size must be 0 (off) or {SHRUNK_SIDES.start}-{SHRUNK_SIDES.stop - 1} pixels (glyphs are "
                f"28x28), got {self.progressive_size}",
            ),
            (0 < self.augment_share <= 1, f"augment_share must be in (0, 1], got {self.augment_share}"),
            (self.width is None or self.width >= 4, f"width must be >= 4, got {self.width}"),
            (self.limit_train is None or self.limit_train >= 2, "limit_train must be >= 2"),
            (self.limit_test is None or self.limit_test >= 1, "limit_test must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    @property
    def shrunk_epochs(self) -> int:
        """How many epochs, from the first, progressive resizing trains on shrunk glyphs: half, rounded down (for a
        run started with these settings; Trainer keeps a resumed run's switch where it was)."""
        return self.epochs // 2 if self.progressive_size else 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Build a Config from a dict, ignoring keys this version does not know (older/newer runs)."""
        known = {f.name for f in dataclasses.fields(cls)}
        if values.get("mixed_precision") is False and "precision" not in values:  # runs written before --precision
            values = {**values, "precision": "fp32"}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        """A run's config.json; a file that is unreadable or holds no JSON object is a ConfigError naming it."""
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:  # ValueError: invalid JSON, or bytes that are not text
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(
                f"config {path} holds {type(values).__name__} instead of a JSON object of settings; "
                "restore it or delete the run folder"
            )
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


# Presets: named sets of overrides, each measured (docs/training.md#presets; numbers in benchmarks/results/).
PRESETS: dict[str, dict[str, Any]] = {
    # The original specification, exactly: its architecture at 32x32, fp32 semantics aside.
    "original": dict(model="enhanced", batch_size=128, epochs=50, lr=1e-3, scheduler="cosine"),
    # Time to accuracy on a CPU, the same settings in bf16 and in fp32: glyphnet, big batches, one 8-epoch LR cycle,
    # weight averaging, milder augmentation on half of the glyphs (a short run learns EMNIST's own framing about as
    # fast as without augmentation and still reads scans), best epoch by validation accuracy, test-time augmentation
    # in the final evaluation. No label smoothing: it left confidences that no single temperature calibrates.
    # Why each setting: docs/experiments.md. The benchmark's time-to-accuracy run uses this preset.
    "fast": dict(
        model="glyphnet",
        batch_size=256,
        epochs=8,
        lr=3e-3,
        scheduler="onecycle",
        label_smoothing=0.0,
        ema_decay=0.999,
        dropout_rate=0.2,
        rotation_degree=10.0,
        affine_degree=0.0,
        translate=0.08,
        scale=0.1,
        augment_share=0.5,
        monitor="val_acc",
        tta=True,
    ),
}
# Accuracy within about twice the `fast` preset's time: its recipe on the 1.5x-wide glyphnet, over 12 epochs.
# Label smoothing and a longer cycle measured no better:
# docs/experiments.md#the-best-preset-the-fast-recipe-wider-and-longer
PRESETS["best"] = {**PRESETS["fast"], "model": "glyphnet-wide", "epochs": 12}

# Each preset's measured claim: the results file (benchmarks/results/NAME.json) whose summary values
# "headline_<precision>_*" the README's headline table shows (benchmarks/render_results.py). None: never measured.
PRESET_RESULTS: dict[str, str | None] = {"original": None, "fast": "time_to_90-fast-preset", "best": "preset_run-best"}


def apply_preset(config: Config, name: str) -> Config:
    """Return `config` with the preset's overrides applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return config.replace(preset=name, **PRESETS[name])
