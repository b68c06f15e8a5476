"""Training: `Trainer` runs epochs (one function each), validates, checkpoints, stops early, and resumes.

Everything a resumed run needs is in the checkpoint (model, optimizer, scheduler, EMA, early-stopping state,
history, random-number states), so stopping after epoch k and resuming gives the same result as never
stopping. `latest_checkpoint.pth` is written before the first epoch and after every epoch; `best_model.pth`
whenever the monitored validation score (config.monitor) improves.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from glyphkit import distributed, rundir, tblog
from glyphkit.batches import iterate_batches, num_batches
from glyphkit.config import Config, ConfigError
from glyphkit.data import GlyphData, pixel_stats
from glyphkit.inference import ClassPrior, Predictor, balanced_class_weight
from glyphkit.models import build_model, model_dims
from glyphkit.runtime import (
    autocast,
    autocast_dtype,
    precision_name,
    prepare_model,
    resolve_device,
    seed_everything,
    set_threads,
)

ESTIMATE_STEPS = 12  # batches timed at the start of training for the "an epoch will take about ..." line


def format_duration(seconds: float) -> str:
    """'45 s', '12 min', '1.5 h': a rough duration for a person to read."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def ema_with_warmup(decay: float):
    """EMA update for AveragedModel whose decay ramps up as (1+n)/(10+n) towards `decay`.

    torch's get_ema_multi_avg_fn uses the full decay from the first step, so for the first few thousand steps
    the average is mostly the random initial weights; the ramp (as in timm and TF's EMA) fixes that.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        if not torch.is_floating_point(averaged[0]):  # integer buffers (BN's batch counter): just follow
            torch._foreach_copy_(averaged, current)
            return
        n = num_averaged.to(averaged[0].dtype)  # a tensor on the device: no host sync on CUDA
        d = torch.clamp((1 + n) / (10 + n), max=decay)
        torch._foreach_lerp_(averaged, current, 1 - d)

    return update


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class EarlyStopping:
    """Stop when a validation score (lower is better) has not improved for `patience` epochs."""

    patience: int = 10
    min_delta: float = 0.0
    best: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record an epoch's score (validation loss, or minus validation accuracy); True when it is a new best."""
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]


@dataclass
class History:
    """Per-epoch numbers, saved as history.json and plotted by glyphkit.plots."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)

    def append(self, **row: float) -> None:
        for k, v in row.items():
            getattr(self, k).append(v)

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> History:
        return cls(**{k: list(v) for k, v in d.items() if k in cls.__dataclass_fields__})


def resolve_config(config: Config, data: GlyphData, world_size: int = 1) -> Config:
    """Fill in what comes from the data, the model and the processes: classes, normalisation, width / input size
    where the config leaves them to the model (None), and the global batch of `world_size` processes."""
    width, input_size = model_dims(config)
    changes: dict[str, Any] = {
        "split": data.split,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "width": width,
        "input_size": input_size,
        "world_size": world_size,
        "global_batch_size": config.batch_size * world_size,
    }
    if config.norm_mean is None or config.norm_std is None:
        changes["norm_mean"], changes["norm_std"] = pixel_stats(data.train_images)
    return config.replace(**changes).validate()


def initialise_from(model: nn.Module, run_dir: str) -> str:
    """Start `model` from a trained run's best weights: every tensor whose name and shape match (all but the
    classifier when the classes differ). The usual way to learn a small new glyph set. Returns what it did."""
    path = rundir.checkpoint_path(run_dir, rundir.BEST)
    source = rundir.eval_state_dict(rundir.load_checkpoint(path))
    target = model.state_dict()
    matching = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    if not matching:
        raise ConfigError(
            f"--init-from {run_dir}: none of its weights fit this network (another architecture or "
            "width); use a run of the same --model"
        )
    model.load_state_dict(matching, strict=False)
    new = [k for k in target if k not in matching]
    return f"initialised {len(matching)} of {len(target)} tensors from {path}" + (
        f"; new: {', '.join(sorted({k.rsplit('.', 1)[0] for k in new}))}" if new else ""
    )


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    """AdamW; weight decay on conv/linear weights only (not on BN parameters or biases). torch's fused kernel
    updates every parameter in one call instead of a loop of small operations: 7% more fp32 training images/s on
    2 CPU cores (benchmarks/fp32_levers.py), and the same update."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        fused=True,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: Config, steps_per_epoch: int):
    """cosine: warm restarts every cosine_t0 epochs, doubling (stepped per batch); onecycle: per batch;
    plateau: ReduceLROnPlateau on the validation loss (stepped per epoch)."""
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=max(1, config.cosine_t0 * steps_per_epoch), T_mult=2, eta_min=config.lr * 1e-3
        )
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=config.epochs * steps_per_epoch,
            pct_start=0.25,
            div_factor=25,
            final_div_factor=1e3,
        )
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.5, patience=config.plateau_patience
    )


def extend_onecycle(scheduler: torch.optim.lr_scheduler.OneCycleLR, total_steps: int) -> float:
    """Stretch a OneCycle schedule that has taken `last_epoch` steps to `total_steps`: the steps taken keep the
    rate (and momentum) it stopped at, the rest anneal from there to the schedule's final rate (momentum to its
    maximum). Returns that starting rate: the next step's, or the final rate when the cycle had ended (torch sets
    the rate after a cycle's last step past the cycle's end, back up the cosine).

    Patching `total_steps` alone keeps the old phases, and the cosine of the last one then runs past its end and
    climbs back towards the peak. The new phases name param-group keys, as OneCycleLR's own do, so they are saved
    with the optimizer and scheduler and a second resume continues them exactly."""
    done, ended = scheduler.last_epoch, scheduler.last_epoch >= scheduler.total_steps
    for group in scheduler.optimizer.param_groups:
        group["resume_lr"] = group["lr"] = group["min_lr"] if ended else group["lr"]
        if scheduler.cycle_momentum and scheduler.use_beta1:
            group["resume_momentum"] = group["max_momentum"] if ended else group["betas"][0]
            group["betas"] = (group["resume_momentum"], *group["betas"][1:])
        elif scheduler.cycle_momentum:
            group["resume_momentum"] = group["momentum"] = group["max_momentum"] if ended else group["momentum"]
    hold = {
        "end_step": float(done),
        "start_lr": "resume_lr",
        "end_lr": "resume_lr",
        "start_momentum": "resume_momentum",
        "end_momentum": "resume_momentum",
    }
    anneal = {
        "end_step": float(max(total_steps - 1, done + 1)),
        "start_lr": "resume_lr",
        "end_lr": "min_lr",
        "start_momentum": "resume_momentum",
        "end_momentum": "max_momentum",
    }
    scheduler._schedule_phases = [hold, anneal]
    scheduler.total_steps = total_steps
    return scheduler.optimizer.param_groups[0]["resume_lr"]


def balance_terms(
    prior: ClassPrior, balance: str, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(logit shift, class weights) of training's cross-entropy for Config.balance; None where unused.

    reweight: each image weighted by 1 / (training images of its class), normalised to mean 1 over the classes
    (torch's weighted mean divides by the batch's summed weights). logit-adjust: the logit-adjusted loss of Menon et
    al. 2021 (eq. 11, tau = 1), cross-entropy of logits + log prior, so the network's raw logits learn the
    class-balanced answer. Either way the checkpoint's prior says its logits are prior-free ("uniform")."""
    if balance == "reweight":
        return None, balanced_class_weight(prior.counts).to(device)
    if balance == "logit-adjust":
        return prior.log_prior().to(device), None
    return None, None


class Trainer:
    """Owns a model, its optimizer/scheduler/EMA and a run folder; `fit()` trains to the end or an early stop.

    Under torchrun each process builds the same Trainer: the model is wrapped in DistributedDataParallel, each
    rank trains on its share of every epoch's batches and validates its share of the validation images (the
    results gathered, so every rank makes the same decisions), and rank 0 alone logs and writes the run folder.
    """

    def __init__(
        self,
        config: Config,
        data: GlyphData,
        run_dir: str | Path | None = None,
        *,
        progress: bool = True,
        overwrite: bool = False,
        log: Callable[[str], None] = print,
        max_batches: int | None = None,
        on_epoch_end: Callable[[Trainer], None] | None = None,
    ):
        set_threads(config.num_threads)
        self.device = resolve_device(config.device)
        if config.sync_bn and distributed.launched_by_torchrun() and self.device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA GPUs (torch's SyncBatchNorm has no CPU kernels); drop it on CPUs")
        self.world = distributed.setup(self.device)
        self.config = resolve_config(config, data, self.world.world_size)
        self.data = data
        self.run_dir = Path(run_dir or self.config.output_dir)
        self.progress, self.max_batches = progress and self.world.is_main, max_batches
        self.log = log if self.world.is_main else (lambda *_: None)
        self.on_epoch_end = on_epoch_end  # called after each epoch's checkpoint (the benchmark measures here)
        self.amp_dtype = autocast_dtype(self.device, self.config.precision)
        self.channels_last = self.config.channels_last
        seed_everything(self.config.seed, self.config.deterministic)
        self.model = prepare_model(build_model(self.config), self.device, self.channels_last)
        if self.config.sync_bn and self.world.distributed:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        # What training steps through: DistributedDataParallel (it averages the gradients over the ranks) under
        # torchrun, else the model. self.model stays the plain network, so checkpoints have no "module." prefixes.
        if self.config.init_from:
            self.log(initialise_from(self.model, self.config.init_from))
        gpu = [self.device] if self.device.type == "cuda" else None
        self.net = DistributedDataParallel(self.model, device_ids=gpu) if self.world.distributed else self.model
        self.optimizer = build_optimizer(self.model, self.config)
        shard_size = len(data.train_labels) // self.world.world_size
        self.steps_per_epoch = num_batches(shard_size, self.config.batch_size, max_batches)
        self.scheduler = build_scheduler(self.optimizer, self.config, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=ema_with_warmup(self.config.ema_decay), use_buffers=True)
            if self.config.ema_decay > 0
            else None
        )
        # Validation runs the evaluation model (the EMA average when enabled) the way inference does; never
        # compiled here, since the weights change every epoch.
        self.predictor = Predictor(self.eval_model, self.config, self.device, compile_model=False)
        # The training part's class prior, kept in every checkpoint. Validation answers for images mixed as in
        # training (the validation split is), also when --balance trains prior-free logits.
        self.class_prior = ClassPrior.of_labels(data.train_labels, self.config.num_classes, self.config.balance)
        self.predictor.use_class_prior("train", self.class_prior)
        self.loss_shift, self.loss_weight = balance_terms(self.class_prior, self.config.balance, self.device)
        self.early_stopping = EarlyStopping(self.config.early_stopping_patience)
        self.history = History()
        self.epoch = 0  # completed epochs
        # One generator drives shuffling and augmentation, so its state in the checkpoint makes resume exact.
        self.generator = torch.Generator().manual_seed(self.config.seed)
        # Data lives on the training device, whole, as uint8 (on CUDA this removes every host->device copy).
        self.train_images = data.train_images.to(self.device)
        self.train_labels = data.train_labels.to(self.device)
        self._started = False
        self._overwrite = overwrite
        # the epoch-time estimate, said once per process for shrunk and for full-size epochs (keys: shrink_side())
        self._estimated, self._estimate_start = set(), None
        # Progressive resizing's switch to full-size glyphs, set when the run starts. A resume with more --epochs
        # keeps it (a longer run never goes back to shrunk glyphs), one with fewer moves it to half the new count
        # (the last half still trains at full size): load_state_dict.
        self.shrunk_epochs = self.config.shrunk_epochs
        self.tb = tblog.TrainingLog(self.run_dir, enabled=False)  # fit() opens the run's TensorBoard log (rank 0)

    # ------------------------------------------------------------------ state
    @property
    def eval_model(self) -> nn.Module:
        """The model to validate and evaluate: the EMA average when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "shrunk_epochs": self.shrunk_epochs,
            "config": self.config.to_dict(),
            "class_prior": self.class_prior.to_state(),
            "history": self.history.to_dict(),
            "early_stopping": self.early_stopping.state_dict(),
            "rng": {
                "generator": self.generator.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": random.getstate(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["lr_scheduler"])
        if isinstance(self.scheduler, torch.optim.lr_scheduler.OneCycleLR):
            self._fit_onecycle_to_epochs()  # --epochs may have grown
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        # (checkpoints written before the switch was saved: the half of the epochs they were planned with)
        planned = int(state.get("shrunk_epochs", rundir.checkpoint_config(state).shrunk_epochs))
        self.shrunk_epochs = min(planned, self.config.shrunk_epochs)
        self.history = History.from_dict(state["history"])
        self.early_stopping.load_state_dict(state["early_stopping"])
        rng = state["rng"]
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        random.setstate(_as_tuple(rng["python"]))

    def _fit_onecycle_to_epochs(self) -> None:
        """A OneCycle run resumed with more epochs than it planned anneals from the rate it stopped at down to the
        final rate over the new total, instead of climbing back to the peak. Fewer epochs: the planned cycle, cut
        short where training stops."""
        total, planned = self.config.epochs * self.steps_per_epoch, self.scheduler.total_steps
        if total <= planned:
            return
        if self.scheduler.last_epoch == 0:  # no step taken yet: the whole, longer cycle is still ahead
            self.scheduler = build_scheduler(self.optimizer, self.config, self.steps_per_epoch)
            return
        ended = self.scheduler.last_epoch >= planned
        lr, final = extend_onecycle(self.scheduler, total), self.optimizer.param_groups[0]["min_lr"]
        self.log(
            f"onecycle: the cycle had ended, so the added epochs train at its final rate {final:.2e} (to learn "
            f"more, start a new run with --init-from {self.run_dir})"
            if ended
            else f"onecycle extended from {planned} to {total} steps: the learning rate anneals from {lr:.2e} "
            f"(where the run stopped) to {final:.2e}"
        )

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        data: GlyphData,
        *,
        epochs: int | None = None,
        state: dict[str, Any] | None = None,
        **kwargs,
    ) -> Trainer:
        """Continue the run in `run_dir` from its latest checkpoint (optionally to a new epoch count).

        `state`: that checkpoint, when the caller has loaded it already."""
        run_dir = Path(run_dir)
        path = rundir.latest_checkpoint(run_dir)
        state = state if state is not None else rundir.load_checkpoint(path)
        saved = rundir.checkpoint_config(state)
        rundir.check_compatible(
            saved, saved.replace(split=data.split, num_classes=data.num_classes, classes=list(data.classes)), path
        )
        trained_by, now = saved.world_size or 1, distributed.world_size_from_env()
        if trained_by != now:  # the schedule and every epoch's batches depend on it
            how = f"torchrun --nproc-per-node {trained_by} -m glyphkit" if trained_by > 1 else "without torchrun"
            raise rundir.CheckpointError(
                f"{path} was trained by {trained_by} process(es), this is {now}: resume it with the same number ({how})"
            )
        config = saved.replace(output_dir=str(run_dir))
        if epochs is not None:
            config = config.replace(epochs=epochs)
        trainer = cls(config, data, run_dir, overwrite=True, **kwargs)
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # wrong shapes, missing entries
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            detail = lines[1 if len(lines) > 1 else 0][:200]  # torch's first line is only "Error(s) in loading"
            raise rundir.CheckpointError(
                f"{path} does not fit the {config.model} network its config describes "
                f"({detail}); it was written by another architecture or is damaged. "
                "Start a new run instead of resuming"
            ) from exc
        trainer._started = True
        return trainer

    def save(self, best: bool = False) -> None:
        """Checkpoints and history.json, written by rank 0 alone (every rank holds the same state)."""
        if not self.world.is_main:
            return
        state = self.state_dict()
        # best first: a run stopped between the two writes resumes from the older latest and redoes the epoch,
        # instead of resuming with an early-stopping record that points at a best_model.pth never written.
        if best:
            rundir.save_checkpoint(state, self.run_dir / rundir.BEST)
        rundir.save_checkpoint(state, self.run_dir / rundir.LATEST)
        rundir.write_history(self.run_dir, self.history.to_dict())

    # ------------------------------------------------------------------ one epoch
    def augment_params(self) -> dict[str, float] | None:
        """random_affine's settings for training batches; None without augmentation (`augment` off, or every
        setting 0): the batches then skip the warp, which would only resample each glyph onto itself."""
        c = self.config
        params = {
            "rotation": c.rotation_degree,
            "affine_rotation": c.affine_degree,
            "translate": c.translate,
            "scale": c.scale,
        }
        return {**params, "share": c.augment_share} if c.augment and any(params.values()) else None

    def shrink_side(self) -> int | None:
        """The side the next epoch's training glyphs are shrunk to (progressive resizing), None at full size. The
        LR finder, run before epoch 1, sees the same batches."""
        return self.config.progressive_size if self.epoch < self.shrunk_epochs else None

    def train_batches(self, max_batches: int | None = None):
        c = self.config
        return iterate_batches(
            self.train_images,
            self.train_labels,
            c.batch_size,
            mean=c.norm_mean,
            std=c.norm_std,
            input_size=c.input_size,
            device=self.device,
            shuffle=True,
            augment=self.augment_params(),
            generator=self.generator,
            channels_last=self.channels_last,
            max_batches=max_batches or self.max_batches,
            shard=(self.world.rank, self.world.world_size),
            shrink_to=self.shrink_side(),
        )

    def train_one_epoch(self) -> tuple[float, float]:
        """One pass over the (shuffled, augmented) training set; returns (mean loss, accuracy)."""
        c, epoch = self.config, self.epoch + 1
        self.model.train()
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        per_batch_scheduler = not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        bar = tqdm(
            self.train_batches(),
            total=self.steps_per_epoch,
            desc=f"epoch {epoch}/{c.epochs}",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        # Checking the loss means waiting for the device; on a GPU that is done every 20 steps (a NaN stays in the
        # running total), so the CPU can queue work ahead. On the CPU the check is free: every step.
        check_every = 1 if self.device.type == "cpu" else 20
        for step, (x, y) in enumerate(bar, 1):
            loss, logits = self.loss(x, y)
            total_loss += loss.detach() * len(y)
            check = step % check_every == 0 or step == self.steps_per_epoch
            if check and not self._finite_on_all_ranks(total_loss):
                last = loss.item()
                bad = last if not math.isfinite(last) else total_loss.item()
                raise TrainingDiverged(
                    f"loss became {bad} at epoch {epoch}, step {step}; training stopped. " + self.divergence_advice()
                )
            self.optimizer_step(loss)
            if per_batch_scheduler:
                self.tb.step_lr(self.epoch * self.steps_per_epoch + step, self.optimizer.param_groups[0]["lr"])
                self.scheduler.step()
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if step % 20 == 0 or step == self.steps_per_epoch:
                bar.set_postfix(
                    loss=f"{total_loss.item() / seen:.3f}",
                    acc=f"{correct.item() / seen:.3f}",
                    lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                )
            if step == 1 or step == ESTIMATE_STEPS:
                self._estimate_epoch_time(step)
        if self.world.distributed:  # the epoch's numbers over every rank's share
            totals = torch.stack([total_loss, correct.float(), total_loss.new_tensor(seen)])
            distributed.all_reduce_sum(totals)
            total_loss, correct, seen = totals[0], totals[1], int(totals[2].item())
        return total_loss.item() / max(seen, 1), correct.item() / max(seen, 1)

    def _estimate_epoch_time(self, step: int) -> None:
        """Once per process for shrunk and for full-size epochs: after the first ESTIMATE_STEPS batches, say roughly
        how long an epoch will take (the first batch, slower while kernels are chosen and memory allocated, is left
        out)."""
        side = self.shrink_side()
        if side in self._estimated:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if step == 1:
            self._estimate_start = time.perf_counter()
            return
        self._estimated.add(side)
        took = format_duration((time.perf_counter() - self._estimate_start) / (step - 1) * self.steps_per_epoch)
        how = f"from the first {step} batches"
        how += f", {precision_name(self.amp_dtype)}" if self.device.type == "cpu" else ""
        if side:
            self.log(
                f"epochs 1-{self.shrunk_epochs} train on glyphs shrunk to {side}x{side} (progressive "
                f"resizing) and take about {took} each ({how}); validation reads full-size glyphs, so its "
                "accuracy runs low until the full-size epochs, which take longer"
            )
        elif self.shrunk_epochs:  # the shrunk epochs are done
            self.log(f"a full-size epoch will take about {took} ({how})")
        else:
            self.log(f"an epoch will take about {took} ({how})")

    def divergence_advice(self) -> str:
        """What the run folder holds after a divergence, and what to do: true also when no epoch completed (then
        there is no best_model.pth, and latest_checkpoint.pth holds only the untrained start)."""
        lr = self.config.lr
        if self.epoch == 0:
            return (
                f"No epoch completed, so there is no {rundir.BEST} ({rundir.LATEST} holds only the untrained "
                f"start). The learning rate {lr:.2e} is likely too high: start again with a lower --lr (e.g. "
                f"{lr / 10:.1e}) or --lr-finder, and --overwrite"
            )
        return (
            f"{rundir.LATEST} holds the last good epoch ({self.epoch}), {rundir.BEST} the best one. Lower --lr "
            f"(now {lr:.2e}; try --lr-finder) and start again"
        )

    def _finite_on_all_ranks(self, value: torch.Tensor) -> bool:
        """Whether `value` is finite on every rank: all ranks then stop together, none waits on the others."""
        return bool(torch.isfinite(distributed.all_reduce_sum(value.detach().clone())))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) of the training model on a batch: forward under autocast, cross-entropy in fp32 with
        the config's label smoothing and class balancing (balance_terms). The one forward + loss of training, the
        LR finder and the benchmark."""
        with autocast(self.device, self.amp_dtype):
            logits = self.net(x)
        shifted = logits.float() if self.loss_shift is None else logits.float() + self.loss_shift
        return F.cross_entropy(shifted, y, weight=self.loss_weight, label_smoothing=self.config.label_smoothing), logits

    def optimizer_step(self, loss: torch.Tensor) -> None:
        """Backward, gradient clipping, the optimizer step (through the fp16 scaler when it is on), the EMA update."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        distributed.average_buffers(self.model)  # under torchrun: the same batch-norm statistics on every rank
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, tta: bool = False) -> tuple[float, float]:
        """(loss, accuracy) of the evaluation model on a set of uint8 images (under torchrun each rank predicts
        its share, and every rank gets the numbers over all of them)."""
        start, stop = distributed.shard_bounds(len(labels), self.world)
        logits = distributed.gather_shards(self.predictor.logits(images[start:stop], tta), len(labels), self.world)
        return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()

    # ------------------------------------------------------------------ the loop
    def fit(self) -> History:
        """Train until `epochs` or an early stop; restores the best weights at the end. status.json says what
        happened (running, then finished, interrupted, diverged or failed); rank 0 logs to TensorBoard."""
        c = self.config
        if not self._started:
            distributed.barrier()  # every rank has checked the folder (workflows.check_new_run) before rank 0 writes
        if self.world.is_main:  # rank 0 alone writes the run folder
            if not self._started:
                rundir.prepare_run_dir(self.run_dir, c, self._overwrite)
            if stale := rundir.remove_stale_temp_files(self.run_dir):
                self.log(f"removed {len(stale)} temporary file(s) a killed write left in {self.run_dir}")
            rundir.write_config(self.run_dir, c)
        if not self._started:
            self.save()  # epoch 0: a resumable checkpoint exists from the very start
            self._started = True
        self.write_status("running")
        self.tb = tblog.TrainingLog(self.run_dir, enabled=self.world.is_main, log=self.log)
        try:
            self._train_epochs()
        except TrainingDiverged as exc:
            self.write_status("diverged", message=str(exc), failing=True)
            raise
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (glyphkit.cli raises it as a KeyboardInterrupt)
            self.write_status("interrupted", message=f"stopped during epoch {self.epoch + 1}", failing=True)
            raise
        except BaseException as exc:
            self.write_status("failed", message=f"{type(exc).__name__}: {exc}"[:500], failing=True)
            raise
        finally:
            self.tb.close()
        stopped_early = self.early_stopping.should_stop
        if stopped_early:
            self.log(
                f"early stop: validation {self.monitor_name} has not improved for {self.early_stopping.patience} epochs"
            )
        self.restore_best()
        self.write_status("finished", message="early stop" if stopped_early else "all epochs done")
        return self.history

    def _train_epochs(self) -> None:
        c = self.config
        if self.epoch >= c.epochs:
            self.log(
                f"{self.run_dir} already finished {self.epoch} of {c.epochs} epochs; nothing to do "
                "(pass a larger --epochs to continue)"
            )
        while self.epoch < c.epochs and not self.early_stopping.should_stop:
            start = time.perf_counter()
            train_loss, train_acc = self.train_one_epoch()
            val_loss, val_acc = self.evaluate(self.data.val_images, self.data.val_labels)
            if not math.isfinite(val_loss):  # the last steps' update broke the weights: keep the last good files
                raise TrainingDiverged(
                    f"validation loss became {val_loss} at epoch {self.epoch + 1}, step "
                    f"{self.steps_per_epoch} (the weights are no longer finite); training "
                    "stopped. " + self.divergence_advice()
                )
            lr = self.optimizer.param_groups[0]["lr"]
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(val_loss)
            self.epoch += 1
            # With label smoothing the validation loss can rise while accuracy still improves (the model grows
            # more confident), so presets may pick the best epoch by accuracy instead (config.monitor).
            score = val_loss if c.monitor == "val_loss" else -val_acc
            improved = self.early_stopping.step(score, self.epoch)
            self.history.append(
                epoch=self.epoch,
                train_loss=train_loss,
                train_acc=train_acc,
                val_loss=val_loss,
                val_acc=val_acc,
                lr=lr,
                epoch_time=time.perf_counter() - start,
            )
            self.save(best=improved)
            self.tb.epoch({k: v[-1] for k, v in self.history.to_dict().items()})  # after the checkpoint: see tblog
            self.write_status("running")
            self.log(
                f"epoch {self.epoch:3d}/{c.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f} | "
                f"val loss {val_loss:.4f} acc {val_acc:.4f} | lr {lr:.2e} | "
                f"{self.history.epoch_time[-1]:.0f}s{'  *best*' if improved else ''}"
            )
            if self.on_epoch_end is not None:
                self.on_epoch_end(self)

    def write_status(self, status: str, *, failing: bool = False, **fields: Any) -> None:
        """status.json (rank 0), with the epochs done and planned. `failing`: written while an exception is on its
        way out, so an unwritable folder must not replace that exception with its own."""
        if not self.world.is_main:
            return
        try:
            rundir.write_status(self.run_dir, status, epoch=self.epoch, epochs=self.config.epochs, **fields)
        except OSError:
            if not failing:
                raise

    @property
    def monitor_name(self) -> str:
        return "loss" if self.config.monitor == "val_loss" else "accuracy"

    def best_summary(self) -> str:
        """'best validation accuracy 0.9051 at epoch 12' (or loss), for the log."""
        best = self.early_stopping
        value = best.best if self.config.monitor == "val_loss" else -best.best
        return f"best validation {self.monitor_name} {value:.4f} at epoch {best.best_epoch}"

    def restore_best(self) -> None:
        """Load best_model.pth's weights (the early-stopping best) into the model."""
        distributed.barrier()  # under torchrun: rank 0 has written its last checkpoint
        path = self.run_dir / rundir.BEST
        if path.exists():
            state = rundir.load_checkpoint(path, map_location=self.device)
            self.model.load_state_dict(state["model"])
            if self.ema is not None and state.get("ema"):
                self.ema.load_state_dict(state["ema"])


def _as_tuple(value):
    """random.setstate needs tuples; a checkpoint round-trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
