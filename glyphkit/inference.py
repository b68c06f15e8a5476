"""Inference: a trained network read back from a run folder, batched prediction of uint8 glyphs, test-time
augmentation, and the compiled-network cache.

`Predictor` is the one way glyphkit runs a network on glyphs (validation during training, evaluation,
the benchmark, predict): it applies the run's normalisation, input size, device, autocast and memory layout, and
its calibration to probabilities. `load_trained_run` is a checkpoint plus the images of its split it
is evaluated (or calibrated) on, checked against each other.

Calibration is temperature scaling (Guo et al. 2017, "On calibration of modern neural networks"): one number T,
fitted on the validation images after training, divides the logits so that a probability of 0.9 is right about
90% of the time. It never changes which character is predicted. Vector scaling (a scale and a bias per class, the
same paper) calibrates the test split better and moves look-alike boundaries towards the characters likelier in
EMNIST, but those moves cost accuracy on users' scans (docs/evaluation.md#vector-scaling), so it is opt-in
(`glyphkit calibrate --method vector`). `Calibrator` holds either: per-class (or one shared) scale and bias.

Class priors: a network trained on images in natural frequencies answers for that mix, so the frequent one of
two look-alikes wins (`f` read as `F`). `ClassPrior` holds the training images per class; answering with the
`uniform` class prior takes the training prior out of the logits (logit adjustment, Menon et al. 2021), for
class-balanced use: best balanced accuracy instead of best accuracy
(docs/evaluation.md#class-priors-accuracy-or-balanced-accuracy). `prior_shift` is the one place that adjustment is
computed.
"""

from __future__ import annotations

import copy
import os
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental import optimization as fx_optimization
from tqdm.auto import tqdm

from glyphkit.batches import iterate_batches
from glyphkit.config import Config, ConfigError
from glyphkit.data import GlyphData, load_config_split
from glyphkit.models import build_model
from glyphkit.rundir import (
    BEST,
    CheckpointError,
    check_compatible,
    checkpoint_config,
    checkpoint_path,
    eval_state_dict,
    load_checkpoint,
    name_in_run,
)
from glyphkit.runtime import autocast, autocast_dtype, prepare_model, resolve_device, set_threads

TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # pixel shifts (dx, dy) averaged by test-time augmentation
# Test-time augmentation only for the glyphs whose calibrated top-1 probability is below this; the others keep
# their plain answer. Among proxy47's 115,004 test glyphs, averaging all five views would have changed 0 (the
# fast preset's fp32 run) and 1 (its bf16 run) of those answers at 0.8, while halving TTA's network passes
# (docs/evaluation.md#test-time-augmentation; benchmarks/experiments/selective_tta.py). None: every glyph.
TTA_BELOW_CONFIDENCE: float | None = 0.8
INFERENCE_BATCH = 256  # images per inference batch (and the one shape a compiled network is built for)

_inference_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {kind: (weights version, copy)}


def _weights_version(model: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter or buffer is modified in place (optimizer step, EMA update, load_state_dict)."""
    return tuple(t._version for t in (*model.parameters(), *model.buffers()))


def _inference_copy(model: nn.Module, kind: str, build: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """`build` applied to a deep copy of `model` in eval mode, cached per model and kind, and rebuilt when any weight
    has changed since: the copies bake the weights in, so a stale one would answer with the old network. Built from
    a copy, the cached network holds no reference to `model`, so the cache lets go of both when `model` is dropped."""
    version = _weights_version(model)
    copies = _inference_copies.setdefault(model, {})
    if kind not in copies or copies[kind][0] != version:
        copies[kind] = (version, build(copy.deepcopy(model).eval()))
    return copies[kind][1]


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An inference copy of `model` (eval mode) with every batch norm folded into the convolution before it.

    In eval mode a batch norm is a fixed scale and shift per channel, so it can live in the convolution's weights
    and bias (torch.fx's `fuse`): one pass over each feature map instead of two, the same answers up to float
    rounding. `glyphkit evaluate` in fp32 on 2 CPU cores ran 1.28x faster this way
    (docs/evaluation.md#faster-inference).
    Cached per model and rebuilt after any weight change, like `compile_for_inference`; `model` itself keeps its
    batch norms. A network without batch norms is returned as it is."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    return _inference_copy(model, "folded", lambda m: fx_optimization.fuse(m, inplace=True))


def compile_for_inference(model: nn.Module) -> nn.Module:
    """`model` through torch.compile with frozen weights, for fast repeated inference.

    Freezing lets the compiler fold each BatchNorm into its convolution and pre-pack the weights (measured
    speed-ups in docs/evaluation.md#faster-inference). It also bakes the current weights in, so
    the compiled model is cached per model and rebuilt when any weight has changed since. Compilation itself
    happens on the first call (seconds to a minute; it needs a C++ compiler on the CPU).
    """
    return _inference_copy(model, "compiled", lambda m: torch.compile(m, dynamic=False, options={"freezing": True}))


def predict_logits(model: nn.Module, images: torch.Tensor, *, tta: bool = False, **settings: Any) -> torch.Tensor:
    """Float32 logits [N, classes] on the CPU for uint8 images [N, 28, 28]: the plain prediction,
    or with `tta` averaged over small shifts of each glyph (TTA_SHIFTS). `settings`: predict_plain_and_tta's."""
    plain, averaged = predict_plain_and_tta(model, images, tta=tta, **settings)
    return averaged if tta else plain


@torch.no_grad()
def predict_plain_and_tta(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: float,
    std: float,
    input_size: int,
    device: torch.device,
    batch_size: int = INFERENCE_BATCH,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tta: bool = True,
    tta_below: float | None = None,
    calibrator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
    compile_model: bool = False,
    fold_batch_norms: bool = True,
    logit_shift: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(plain logits, TTA-averaged logits) [N, classes], float32 on the CPU, for uint8 images [N, 28, 28] (eval
    mode, batched, no grad). Without `tta` both are the plain logits.

    The unshifted view is the plain prediction, so TTA adds the four shifted views only. With `tta_below`, only
    the glyphs whose top-1 probability (softmax of `calibrator(plain logits)`) is below it get them; the others
    keep their plain logits. A glyph the network is sure of almost never changes its answer when averaged over
    one-pixel shifts, so this saves most of TTA's cost (docs/evaluation.md#test-time-augmentation).

    With `compile_model`, the network runs through `compile_for_inference` (the last batch is zero-padded to full
    size so one compiled shape serves every batch); if compilation fails, a warning says why and the eager
    network takes over. Eager, the batch norms are folded into the convolutions (`fold_batch_norm`) unless
    `fold_batch_norms` is False (to measure what folding gains, or to run the network exactly as trained).
    `logit_shift` [classes] is added to every view's logits (a class prior's adjustment: `prior_shift`), before the
    TTA decision, so the glyphs chosen for TTA are those unsure under the prior asked for."""
    was_training = model.training
    model.eval()
    views = _ViewRunner(
        model,
        mean=mean,
        std=std,
        input_size=input_size,
        device=device,
        batch_size=batch_size,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        progress=progress,
        compile_model=compile_model,
        fold_batch_norms=fold_batch_norms,
    )
    shift = 0.0 if logit_shift is None or not len(images) else logit_shift.float()
    plain = views(images, TTA_SHIFTS[:1], "predict")[0] + shift
    averaged = plain
    if tta and len(images):
        unsure = needs_tta(plain, tta_below, calibrator)
        averaged = plain.clone()
        if unsure.any():
            shifted = views(images[unsure], TTA_SHIFTS[1:], "test-time augmentation") + shift
            averaged[unsure] = (plain[unsure] + shifted.sum(0)) / len(TTA_SHIFTS)
    model.train(was_training)
    return plain, averaged


def needs_tta(
    plain_logits: torch.Tensor, below: float | None, calibrator: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """Which glyphs get test-time augmentation [N] (bool): those whose top-1 probability, the softmax of
    `calibrator(plain_logits)`, is below `below`; every glyph when `below` is None."""
    if below is None:
        return torch.ones(len(plain_logits), dtype=torch.bool)
    calibrated = plain_logits if calibrator is None else calibrator(plain_logits)
    return calibrated.softmax(1).amax(1) < below


class _ViewRunner:
    """Runs a network over uint8 glyphs in batches, each glyph seen in one or more shifted views: [views, N,
    classes]. The network runs compiled, or eager with its batch norms folded (`fold_batch_norm`, unless told not
    to); once compilation has failed, eager for the rest of the calls."""

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: float,
        std: float,
        input_size: int,
        device: torch.device,
        batch_size: int,
        amp_dtype: torch.dtype | None,
        channels_last: bool,
        progress: bool,
        compile_model: bool,
        fold_batch_norms: bool = True,
    ):
        self.model, self.compiled = model, compile_model
        self.eager = fold_batch_norm if fold_batch_norms else lambda m: m
        self.net = compile_for_inference(model) if compile_model else self.eager(model)
        self.batching = dict(mean=mean, std=std, input_size=input_size, device=device, channels_last=channels_last)
        self.device, self.batch_size, self.amp_dtype = device, batch_size, amp_dtype
        self.channels_last, self.progress = channels_last, progress

    def __call__(self, images: torch.Tensor, shifts: tuple[tuple[int, int], ...], desc: str) -> torch.Tensor:
        dummy = torch.zeros(len(images), dtype=torch.long)
        batches = iterate_batches(images, dummy, self.batch_size, **self.batching)
        if self.progress:
            batches = tqdm(batches, total=-(-len(images) // self.batch_size), desc=desc, leave=False)
        out = []
        for x, _ in batches:
            n = len(x)
            if self.compiled and n < self.batch_size:
                x = torch.cat([x, x.new_zeros(self.batch_size - n, *x.shape[1:])])
            try:
                out.append(self._forward(x, shifts)[:, :n].cpu())
            except Exception as exc:  # noqa: BLE001 - any compiler failure: fall back, the eager network still works
                if not self.compiled:
                    raise
                warnings.warn(
                    f"torch.compile could not compile the network ({type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no message'}); "
                    "running it uncompiled instead",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.compiled, self.net = False, self.eager(self.model)
                out.append(self._forward(x, shifts)[:, :n].cpu())
        return torch.cat(out, dim=1) if out else torch.empty(len(shifts), 0, 0)

    def _forward(self, x: torch.Tensor, shifts: tuple[tuple[int, int], ...]) -> torch.Tensor:
        if self.channels_last:  # a no-op unless the padding gave a contiguous tensor
            x = x.contiguous(memory_format=torch.channels_last)
        # One view at a time: a batch of all five was 27% slower in fp32 on 2 CPU cores (a bigger batch falls out
        # of the caches; benchmarks/fp32_levers.py, batch 1024 against 256).
        with autocast(self.device, self.amp_dtype):
            return torch.stack(
                [self.net(torch.roll(x, shifts=(dy, dx), dims=(2, 3)) if dx or dy else x).float() for dx, dy in shifts]
            )


CLASS_PRIORS = ("train", "uniform")  # --class-prior: answer for images mixed as in training, or class-balanced


@dataclass(frozen=True)
class ClassPrior:
    """The training images per class of a run, and which prior its network's raw logits carry.

    `logits` is "train" for a network trained with plain cross-entropy (its softmax estimates p(class | glyph) for
    glyphs mixed as in training) and "uniform" for one trained with `--balance reweight` or `logit-adjust`, whose
    losses take the prior out during training (the population optimum of either is the class-balanced
    posterior; Menon et al. 2021, section 4). Stored in every checkpoint as {"counts", "logits"}."""

    counts: torch.Tensor  # float64 [classes]: training images per class, of the training part actually trained on
    logits: str = "train"

    @classmethod
    def of_labels(cls, labels: torch.Tensor, num_classes: int, balance: str = "none") -> ClassPrior:
        """The prior of a training part's labels; `balance` is the run's Config.balance (what its logits carry)."""
        return cls(class_counts(labels, num_classes).double(), "train" if balance == "none" else "uniform")

    @classmethod
    def of_checkpoint(cls, state: dict[str, Any], data: GlyphData | None = None) -> ClassPrior:
        """A checkpoint's prior. A run trained before glyphkit stored one (no "class_prior" entry) gets it counted
        from its split's training labels as the run split them: `data` when given (the run's own split, as
        load_trained_run reads it), else the split its config describes, read again with the same split,
        val_split, seed and limit_train, so the training part is the one it was trained on. Such a run trained
        with plain cross-entropy (it predates --balance)."""
        config = checkpoint_config(state)
        saved = state.get("class_prior")
        if isinstance(saved, dict) and saved.get("counts") is not None:
            return cls(torch.tensor(saved["counts"], dtype=torch.float64), str(saved.get("logits", "train")))
        if data is None:
            data = load_config_split(config)
        return cls.of_labels(data.train_labels, len(config.classes or data.classes), config.balance)

    def to_state(self) -> dict[str, Any]:
        """Plain numbers, loadable with weights_only (checkpoints and an export's metadata keep this)."""
        return {"counts": [int(c) for c in self.counts.tolist()], "logits": self.logits}

    def log_prior(self) -> torch.Tensor:
        """log(prior) up to a constant, which no softmax sees: log(count / largest count), so a uniform prior is
        exactly 0 everywhere. A class without training images counts as one (a finite, large shift)."""
        counts = self.counts.clamp(min=1)
        return (counts / counts.max()).log().float()

    def shift(self, wanted: str) -> torch.Tensor:
        """What to add to the network's raw logits so they answer under the `wanted` prior: prior_shift."""
        return prior_shift(self.log_prior(), self.logits, wanted)


def prior_shift(log_prior: torch.Tensor, network: str, wanted: str) -> torch.Tensor:
    """The logit adjustment (Menon et al. 2021, "Long-tail learning via logit adjustment", post-hoc, tau = 1): the
    vector added to raw logits whose softmax answers for the `network` prior so that it answers for the `wanted`
    one. train -> uniform: -log prior (a class is no longer favoured for being frequent); uniform -> train: +log
    prior (a balanced-trained network answering for images mixed as in training); the same prior: 0. The one
    place glyphkit adjusts for a class prior: Predictor, training's validation and the export all call it."""
    check_class_prior(network)
    check_class_prior(wanted)
    if network == wanted:
        return torch.zeros_like(log_prior)
    return -log_prior if wanted == "uniform" else log_prior.clone()


def check_class_prior(name: str) -> str:
    if name not in CLASS_PRIORS:
        raise ConfigError(f"class prior must be one of {', '.join(CLASS_PRIORS)}, got {name!r}")
    return name


def network_logit_prior(state: dict[str, Any]) -> str:
    """Which prior a checkpoint's network's raw logits carry, without reading any data."""
    saved = state.get("class_prior")
    if isinstance(saved, dict) and saved.get("logits") in CLASS_PRIORS:
        return saved["logits"]
    return "train" if checkpoint_config(state).balance == "none" else "uniform"


class Predictor:
    """A network ready to read glyphs the way its run was trained: the config's normalisation and input size,
    its device, autocast (bf16/fp16 where the hardware has it) and memory layout.

    compile_model=None follows the config (`compile`); validation during training passes False, since the
    weights change every epoch and a compiled copy would be rebuilt each time. precision=None follows the
    config's (`auto`, `bf16`, `fp32`). fold_batch_norms=False runs the eager network with its batch norms as
    separate layers instead of folded into the convolutions (same answers up to float rounding, slower; for
    measuring what folding gains: benchmarks/fp32_levers.py).

    Its logits answer under `class_prior` ("train" or "uniform"; `use_class_prior`): every logit it returns has
    `logit_shift` (prior_shift) added, and its calibrator is the one fitted for that prior.
    """

    def __init__(
        self,
        model: nn.Module,
        config: Config,
        device: str | torch.device | None = None,
        *,
        batch_size: int = INFERENCE_BATCH,
        compile_model: bool | None = None,
        progress: bool = False,
        precision: str | None = None,
        fold_batch_norms: bool = True,
    ):
        set_threads(config.num_threads)
        config = config if precision is None else config.replace(precision=precision).validate()
        self.config = config
        self.device = resolve_device(str(device or config.device))
        self.amp_dtype = autocast_dtype(self.device, config.precision)
        self.model = prepare_model(model, self.device, config.channels_last)
        self.batch_size, self.progress = batch_size, progress
        self.compile_model = config.compile if compile_model is None else compile_model
        self.fold_batch_norms = fold_batch_norms
        self.calibrator = Calibrator.identity()  # set from the checkpoint by from_checkpoint
        self.tta_below = TTA_BELOW_CONFIDENCE
        self.class_prior = "train"  # the prior its answers are for; the network's own until use_class_prior
        self.prior: ClassPrior | None = None  # the training prior, when known (not needed for the network's own)
        self.logit_shift: torch.Tensor | None = None  # added to the network's logits (None: nothing)

    def use_class_prior(self, wanted: str, prior: ClassPrior, calibrator: Calibrator | None = None) -> None:
        """Answer under the `wanted` class prior from now on: its logit adjustment, and its calibration when
        given."""
        self.prior, self.class_prior = prior, wanted
        shift = prior.shift(wanted)
        self.logit_shift = shift if bool(shift.any()) else None
        if calibrator is not None:
            self.calibrator = calibrator

    @classmethod
    def from_checkpoint(
        cls,
        state: dict[str, Any],
        path: str | os.PathLike,
        *,
        class_prior: str = "train",
        data: GlyphData | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """The network a loaded checkpoint describes, with its evaluation weights (the EMA average when kept),
        answering under `class_prior`. `data`: the run's split, if loaded (an older run's prior is counted from
        it; without it, the split is read when the prior is needed: ClassPrior.of_checkpoint)."""
        config = checkpoint_config(state)
        model = build_model(config)
        try:
            model.load_state_dict(eval_state_dict(state))
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path}: the weights do not fit the network its config describes "
                f"({str(exc).splitlines()[0]}); the file is damaged or was edited"
            ) from exc
        predictor = cls(model, config, **kwargs)
        calibrator = Calibrator.from_state(state, check_class_prior(class_prior))
        if "class_prior" in state or data is not None or class_prior != network_logit_prior(state):
            predictor.use_class_prior(class_prior, ClassPrior.of_checkpoint(state, data), calibrator)
        else:  # an older run answering for its own prior: no need to read its split for the counts
            predictor.calibrator = calibrator
        return predictor

    def probabilities(self, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Calibrated probabilities [N, classes]: the softmax of the calibrated logits."""
        return self.calibrator(self.logits(images, tta)).softmax(dim=1)

    def logits(self, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Float32 logits [N, classes] on the CPU for upright uint8 glyphs [N, 28, 28]."""
        plain, averaged = self.plain_and_tta_logits(images, tta)
        return averaged if tta else plain

    def plain_and_tta_logits(self, images: torch.Tensor, tta: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(plain, TTA-averaged) logits from one pass over the images (see predict_plain_and_tta); TTA for the
        glyphs whose calibrated confidence is below `self.tta_below` (None: all)."""
        c = self.config
        return predict_plain_and_tta(
            self.model,
            images,
            mean=c.norm_mean,
            std=c.norm_std,
            input_size=c.input_size,
            device=self.device,
            batch_size=self.batch_size,
            amp_dtype=self.amp_dtype,
            channels_last=c.channels_last,
            tta=tta,
            tta_below=self.tta_below,
            calibrator=self.calibrator,
            progress=self.progress,
            compile_model=self.compile_model,
            fold_batch_norms=self.fold_batch_norms,
            logit_shift=self.logit_shift,
        )


@dataclass(frozen=True)
class Calibrator:
    """Calibrated logits = logits * scale + bias. Temperature scaling: one shared scale 1/T and no bias (what a
    checkpoint of an older glyphkit holds as "temperature"); vector scaling: a scale and a bias per class.
    Identity: scale 1, bias 0 (not calibrated)."""

    scale: torch.Tensor  # [classes], or a scalar shared by all
    bias: torch.Tensor

    @classmethod
    def identity(cls) -> Calibrator:
        return cls(torch.tensor(1.0), torch.tensor(0.0))

    @classmethod
    def from_temperature(cls, temperature: float) -> Calibrator:
        return cls(torch.tensor(1.0 / temperature), torch.tensor(0.0))

    @classmethod
    def from_state(cls, state: dict[str, Any], class_prior: str = "train") -> Calibrator:
        """A checkpoint's calibration: its "calibration" entry, else an older glyphkit's "temperature", else none.
        For the `uniform` class prior: the temperature fitted for it (the entry's "uniform", see
        fit_uniform_temperature); a run calibrated before that has none, and keeps its temperature (vector
        scaling's per-class biases would put part of the prior back, so they are left out then)."""
        saved = state.get("calibration")
        if class_prior == "uniform":
            if isinstance(saved, dict) and isinstance(saved.get("uniform"), dict):
                return cls.from_state({"calibration": saved["uniform"]})
            own = cls.from_state(state)
            return own if own.is_temperature else cls.identity()
        if isinstance(saved, dict) and "scale" in saved and "bias" in saved:
            return cls(
                torch.tensor(saved["scale"], dtype=torch.float32), torch.tensor(saved["bias"], dtype=torch.float32)
            )
        return cls.from_temperature(float(state.get("temperature") or 1.0))

    def to_state(self) -> dict[str, Any]:
        """What a checkpoint (and an export's metadata) stores: plain numbers and lists, loadable with weights_only.
        (Calibration for the uniform class prior goes in its "uniform" entry: workflows.calibrate.)"""
        return {
            "method": "temperature" if self.is_temperature else "vector scaling",
            "scale": self.scale.tolist(),
            "bias": self.bias.tolist(),
        }

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float() * self.scale + self.bias

    @property
    def is_identity(self) -> bool:
        return bool((self.scale == 1).all() and (self.bias == 0).all())

    @property
    def is_temperature(self) -> bool:
        """One scale shared by every class and no bias: never changes which class is largest."""
        return self.scale.numel() == 1 and bool((self.bias == 0).all())

    def describe(self) -> str:
        """One phrase for logs and reports."""
        if self.is_identity:
            return "none"
        if self.is_temperature:
            return f"temperature {1 / float(self.scale):.3f}"
        t = 1 / self.scale
        return (
            f"vector scaling (per-class temperature {float(t.min()):.2f} to {float(t.max()):.2f}, bias "
            f"{float(self.bias.min()):+.2f} to {float(self.bias.max()):+.2f})"
        )


def fit_vector_scaling(logits: torch.Tensor, labels: torch.Tensor) -> Calibrator:
    """Vector scaling: the per-class scale and bias that minimise the cross-entropy of softmax(logits * scale +
    bias) on held-out images (L-BFGS from the identity)."""
    classes = logits.shape[1]
    scale, bias = torch.ones(classes, requires_grad=True), torch.zeros(classes, requires_grad=True)
    _minimise_cross_entropy([scale, bias], lambda x: x * scale + bias, logits, labels, max_iter=500)
    return Calibrator(scale.detach().clone(), bias.detach().clone())


@torch.enable_grad()
def _minimise_cross_entropy(
    params: list[torch.Tensor],
    calibrated: Callable[[torch.Tensor], torch.Tensor],
    logits: torch.Tensor,
    labels: torch.Tensor,
    max_iter: int,
    weight: torch.Tensor | None = None,
) -> None:
    """Fit `params` in place (L-BFGS, strong Wolfe line search) so that the cross-entropy of
    softmax(calibrated(logits)) against `labels` is smallest: the one fit of every calibration method."""
    logits, labels = logits.float(), labels.long()
    optimizer = torch.optim.LBFGS(params, lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(calibrated(logits), labels, weight=weight)
        loss.backward()
        return loss

    optimizer.step(closure)


def load_predictor(run_dir: str | os.PathLike, checkpoint: str | os.PathLike = BEST, **kwargs: Any) -> Predictor:
    """The Predictor of a run folder's checkpoint (best_model.pth unless said otherwise)."""
    path = checkpoint_path(run_dir, checkpoint)
    return Predictor.from_checkpoint(load_checkpoint(path), path, **kwargs)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, class_weight: torch.Tensor | None = None) -> float:
    """The temperature T > 0 that minimises the cross-entropy of softmax(logits / T) on held-out images (each
    image weighted by its class's `class_weight`, when given)."""
    log_t = torch.zeros((), requires_grad=True)  # T = exp(log_t) stays positive
    _minimise_cross_entropy([log_t], lambda x: x / log_t.exp(), logits, labels, max_iter=200, weight=class_weight)
    return float(log_t.detach().exp())


def balanced_class_weight(counts: torch.Tensor) -> torch.Tensor:
    """Per-class weights 1 / (images of the class), normalised to mean 1 over the classes present (absent: 0):
    images weighted by them count every class alike, as class-balanced images would. What --balance reweight
    trains with, and what fits and checks the calibration for the uniform prior on a validation split mixed as in
    training."""
    counts = counts.float()
    weight = torch.where(counts > 0, 1 / counts.clamp(min=1), torch.zeros_like(counts))
    return weight * (counts > 0).sum() / weight.sum()


def class_counts(labels: torch.Tensor | np.ndarray, num_classes: int) -> torch.Tensor:
    return torch.bincount(torch.as_tensor(labels).long().cpu(), minlength=num_classes)


def uniform_logits(train_logits: torch.Tensor, prior: ClassPrior) -> torch.Tensor:
    """Logits answering for the training prior, adjusted to answer class-balanced (prior_shift)."""
    return train_logits.float() + prior_shift(prior.log_prior(), "train", "uniform")


def fit_uniform_temperature(logits: torch.Tensor, labels: torch.Tensor, prior: ClassPrior) -> Calibrator:
    """The calibration of answers under the uniform class prior, fitted on held-out images mixed as in training.

    `logits`: the network's logits answering for the training prior (what `calibrate` fits the run's own
    calibration on). They are adjusted (`prior_shift`) first, then one temperature is fitted with the images
    weighted so that every class counts alike: the adjusted probabilities are meant for class-balanced images, and
    the weighted validation split stands in for those. A temperature never changes an answer, so the answers
    stay logit adjustment's with tau = 1."""
    adjusted = uniform_logits(logits, prior)
    weight = balanced_class_weight(class_counts(labels, logits.shape[1]))
    return Calibrator.from_temperature(fit_temperature(adjusted, labels, weight))


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, accuracy, mean confidence) per equal-width confidence bin; NaN for empty bins. Written here:
    scikit-learn's calibration_curve drops the bins' image counts, which the ECE and the diagram both need.
    `weight` per image (e.g. class-balancing weights): weighted counts and means."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    if weight is None:
        counts = np.bincount(which, minlength=bins)
        weight = np.ones_like(confidence)
    else:
        weight = np.asarray(weight, dtype=np.float64)
        counts = np.bincount(which, weights=weight, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            counts,
            np.bincount(which, weights=correct * weight, minlength=bins) / counts,
            np.bincount(which, weights=confidence * weight, minlength=bins) / counts,
        )


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15, class_balanced: bool = False
) -> float:
    """How far confidence is from accuracy: the image-weighted mean of |accuracy - mean confidence| over
    equal-width confidence bins (Guo et al. 2017). `class_balanced`: each image weighted by 1 / (images of its
    class), so every class counts alike: the ECE class-balanced images would show, the one that matters for
    answers under the uniform class prior."""
    weight = None
    if class_balanced:
        weight = balanced_class_weight(class_counts(labels, probabilities.shape[1])).numpy()[labels]
    counts, accuracy, confidence = reliability_bins(
        probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins, weight
    )
    filled = counts > 0
    total = counts.sum()
    return float((counts[filled] * np.abs(accuracy[filled] - confidence[filled])).sum() / (total if total > 0 else 1))


@dataclass
class TrainedRun:
    """A run's checkpoint as a Predictor, with the images (test, or validation to calibrate) it is run on."""

    predictor: Predictor
    images: torch.Tensor
    labels: torch.Tensor
    split: str
    checkpoint: str  # as reports name it: relative to the run folder when inside it
    state: dict[str, Any]

    @property
    def config(self) -> Config:
        return self.predictor.config


def load_trained_run(
    run_dir: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike = BEST,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    data: GlyphData | None = None,
    limit_test: int | None = None,
    device: str | None = None,
    progress: bool = False,
    compile_model: bool | None = None,
    precision: str | None = None,
    part: str = "test",
    class_prior: str = "train",
) -> TrainedRun:
    """Load a checkpoint and the images of its split (or of `data`): `part` "test", or "val" (the validation
    images the run held out, to calibrate on). A split or class set the checkpoint was not trained on is refused.
    split, data_dir and limit_test default to the run's own. `class_prior`: the prior the predictor answers for
    ("train" or "uniform"; see ClassPrior)."""
    path = checkpoint_path(run_dir, checkpoint)
    state = load_checkpoint(path)
    saved = checkpoint_config(state)
    if split is not None:  # refuse before reading any data: a wrong split is the user's mistake, not the disk's
        check_compatible(saved, saved.replace(split=split, num_classes=None, classes=None), path)
    images_given = data is not None
    if data is None:
        data = load_config_split(
            saved.replace(
                split=split or saved.split,
                data_dir=data_dir or saved.data_dir,
                limit_test=limit_test if limit_test is not None else saved.limit_test,
            )
        )
    check_compatible(
        saved, saved.replace(split=data.split, num_classes=data.num_classes, classes=list(data.classes)), path
    )
    images, labels = data.part(part)
    if images_given and limit_test is not None and part == "test":  # load_config_split limits what it reads
        images, labels = images[:limit_test], labels[:limit_test]
    predictor = Predictor.from_checkpoint(
        state,
        path,
        class_prior=class_prior,
        data=data,
        device=device,
        progress=progress,
        compile_model=compile_model,
        precision=precision,
    )
    return TrainedRun(predictor, images, labels, data.split, name_in_run(path, Path(run_dir)), state)
