"""Leslie Smith's learning-rate range test, with fastai's `valley` and `steep` suggestions.

The LR grows exponentially from `start_lr` to `end_lr`, one training batch per step; the (exponentially
smoothed) loss is recorded until it diverges. The model, optimizer and random-number state are restored
afterwards, so running the test changes nothing about the training that follows.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from glyphkit.config import ConfigError
from glyphkit.rundir import LR_CHOICE, write_json

SMOOTHING_100 = 0.98  # fastai's smoothing of the loss for a 100-step test (a window of about 50 steps)
MIN_VALLEY_POINTS = 50  # on a shorter curve `valley` follows the noise of the flat start; `minimum` is used instead


def smoothing_for(num_steps: int) -> float:
    """The smoothing that spans the same range of learning rates whatever the number of steps: 0.98 for 100
    steps, 0.904 for 20 (0.98 over 20 steps would average the whole flat start into every point)."""
    return SMOOTHING_100 ** (100 / max(num_steps, 1))


@dataclass
class LRFinderResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed
    valley: float | None = None  # fastai's default suggestion
    steep: float | None = None  # steepest descent of the smoothed loss
    minimum: float | None = None  # a tenth of the LR at the lowest smoothed loss (fastai's `minimum`)

    @property
    def suggestion(self) -> float | None:
        """`valley` on a curve of at least MIN_VALLEY_POINTS points; on a shorter one (a quick test, or a test that
        diverged early) `minimum`: with 20 points, valley's answer moved between 3e-5 and 6e-4 from seed to seed
        on proxy47 while a 100-step test said 1.1e-3; minimum said 3e-3 every time
        (docs/training.md#learning-rate-finder)."""
        if self.valley is not None and len(self.lrs) >= MIN_VALLEY_POINTS:
            return self.valley
        return self.minimum if self.minimum is not None else self.valley

    def to_dict(self) -> dict:
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "valley": self.valley,
            "steep": self.steep,
            "minimum": self.minimum,
            "suggestion": self.suggestion,
        }

    def describe(self) -> str:
        """'suggestion 1.23e-03 (valley), steepest 4.56e-03' (none where the curve gave no answer)."""
        rule = "valley" if self.suggestion is not None and self.suggestion == self.valley else "minimum / 10"
        return f"suggestion {format_lr(self.suggestion)} ({rule}), steepest {format_lr(self.steep)}"


def format_lr(value: float | None) -> str:
    return "none" if value is None else f"{value:.2e}"


def suggest_valley(lrs: list[float], losses: list[float]) -> float | None:
    """fastai's `valley`: the LR halfway down the longest stretch of falling loss, found as fastai does without
    the curve's first tenth and its last twentieth (the noisy start, the divergence)."""
    skip, tail = len(losses) // 10, max(1, len(losses) // 20)
    lrs, losses = lrs[skip : len(losses) - tail], losses[skip : len(losses) - tail]
    n = len(losses)
    if n < 3:
        return None
    longest = [1] * n  # length of the longest decreasing run ending at i
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[max_end] < longest[i]:
            max_end, max_start = i, i - longest[i]
    third = (max_end - max_start) / 3
    return float(lrs[max_start + int(third) + int(third / 2)])


def suggest_minimum(lrs: list[float], losses: list[float]) -> float | None:
    """fastai's `minimum`: a tenth of the LR where the smoothed loss is lowest (still falling safely there)."""
    return float(lrs[int(np.argmin(losses))]) / 10 if losses else None


def suggest_steep(lrs: list[float], losses: list[float]) -> float | None:
    """The LR where the smoothed loss falls fastest (per unit of log LR), skipping the noisy first tenth."""
    if len(losses) < 3:
        return None
    slope = np.gradient(np.asarray(losses), np.log10(np.asarray(lrs)))
    skip = len(slope) // 10
    return float(lrs[skip + int(np.argmin(slope[skip:]))])


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float | None = None,
    diverge_factor: float = 4.0,
    step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    grad_clip: float | None = None,
    progress: bool = True,
) -> LRFinderResult:
    """Run the range test on `model` with `optimizer`; both (and torch's RNG) are restored afterwards.

    `batches` is cycled if shorter than `num_steps`; `smoothing` defaults to smoothing_for(num_steps).
    `step_fn(x, y)` computes the loss (default: cross-entropy of model(x)); the test does backward, gradient
    clipping (`grad_clip`) and the optimizer step.
    """
    model_state = copy.deepcopy(model.state_dict())
    optim_state = copy.deepcopy(optimizer.state_dict())
    rng_state = torch.get_rng_state()
    step_fn = step_fn or (lambda x, y: F.cross_entropy(model(x), y))
    smoothing = smoothing_for(num_steps) if smoothing is None else smoothing
    gamma = (end_lr / start_lr) ** (1 / max(num_steps - 1, 1))
    result = LRFinderResult()
    avg, best = 0.0, math.inf
    was_training = model.training
    model.train()
    try:
        cached = []
        it = iter(batches)
        bar = tqdm(range(num_steps), desc="LR range test", disable=not progress, leave=False)
        for step in bar:
            try:
                x, y = next(it)
                cached.append((x, y))
            except StopIteration:
                if not cached:
                    raise ValueError("the LR range test needs at least one batch") from None
                x, y = cached[step % len(cached)]
            lr = start_lr * gamma**step
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = step_fn(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                break
            avg = smoothing * avg + (1 - smoothing) * value
            smoothed = avg / (1 - smoothing ** (step + 1))  # bias correction, as in Adam
            result.lrs.append(lr)
            result.losses.append(smoothed)
            best = min(best, smoothed)
            bar.set_postfix(lr=f"{lr:.1e}", loss=f"{smoothed:.3f}")
            if step > 0 and smoothed > diverge_factor * best:
                break
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        torch.set_rng_state(rng_state)
        model.train(was_training)
    return with_suggestions(result)


def with_suggestions(result: LRFinderResult) -> LRFinderResult:
    """The recorded curve's valley, steepest-descent and minimum suggestions filled in."""
    result.valley = suggest_valley(result.lrs, result.losses)
    result.steep = suggest_steep(result.lrs, result.losses)
    result.minimum = suggest_minimum(result.lrs, result.losses)
    return result


def find_lr(
    trainer, num_steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0, progress: bool = True
) -> LRFinderResult:
    """The range test on a Trainer's model, optimizer and augmented training batches (nothing is changed).

    Uses the trainer's own loss (mixed precision, label smoothing) and gradient clipping, so the suggestion fits
    the run.
    """
    gen_state = trainer.generator.get_state()

    def batches():
        while True:  # as many passes over the data as the test needs
            yield from trainer.train_batches(max_batches=num_steps)

    try:
        return lr_range_test(
            trainer.model,
            trainer.optimizer,
            batches(),
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            step_fn=lambda x, y: trainer.loss(x, y)[0],
            grad_clip=trainer.config.grad_clip,
            progress=progress,
        )
    finally:
        trainer.generator.set_state(gen_state)


# ---------------------------------------------------------------------------------------------------------------
# The user's choice, kept in the run folder (lr.json): `glyphkit train` and 03_train pick it up.
# ---------------------------------------------------------------------------------------------------------------


# How the rate in lr.json was chosen, in lr.json's own words ("choice"), and what the training log says about it.
LR_CHOICES = {
    "suggestion": "the LR finder's suggestion",
    "slider": "picked on 02_lr_finder's slider instead of the suggestion",
    "typed": "typed at the --lr-finder question instead of the suggestion",
    "rejected": "the suggestion rejected, the run's own rate kept",
    "no suggestion": "the range test found no falling loss, the run's own rate kept",
}


def save_lr_choice(run_dir: str | os.PathLike, lr: float, suggestion: float | None, choice: str, source: str) -> dict:
    """Write the rate to train with and, in plain words, how it was chosen (`choice`, a key of LR_CHOICES) to
    `run_dir/lr.json`, atomically: training reads `lr`, a person reading the file the rest."""
    if choice not in LR_CHOICES:
        raise ValueError(f"choice must be one of {', '.join(map(repr, LR_CHOICES))}, got {choice!r}")
    record = {"lr": float(lr), "choice": choice, "suggestion": suggestion, "source": source}
    write_json(Path(run_dir) / LR_CHOICE, record)
    return record


def describe_lr_choice(record: dict) -> str:
    """How a saved choice came about, for the training log. An lr.json written before `choice` existed has
    `accepted` (true: the suggestion) instead."""
    choice = record.get("choice")
    if choice is None:
        choice = "suggestion" if record.get("accepted") else None
    return LR_CHOICES.get(choice, "chosen instead of the suggestion")


def load_lr_choice(run_dir: str | os.PathLike) -> dict | None:
    """The saved choice, or None when the folder has none."""
    path = Path(run_dir) / LR_CHOICE
    if not path.is_file():
        return None
    try:
        choice = json.loads(path.read_text())
    except ValueError as exc:  # invalid JSON, or bytes that are not text
        raise ConfigError(f"{path} is not valid JSON ({exc}); delete it and run the LR finder again") from exc
    if not isinstance(choice, dict) or not isinstance(choice.get("lr"), (int, float)) or not choice["lr"] > 0:
        raise ConfigError(f'{path} holds no learning rate > 0 under "lr"; delete it and run the LR finder again')
    return choice
