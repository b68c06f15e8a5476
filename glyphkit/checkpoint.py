"""Checkpoints: one dict of tensors and plain values, written atomically, read back with weights_only=True.

Layout (torchvision's reference style, plus what an exact resume needs):
    {"model", "optimizer", "lr_scheduler", "ema", "scaler", "epoch", "config", "history",
     "early_stopping", "rng", "format": 1}
`epoch` counts completed epochs. `config` is the full resolved Config as a dict, so a checkpoint alone tells
which split, classes and architecture it belongs to.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from glyphkit.config import Config
from glyphkit.io import atomic_write

FORMAT = 1
BEST, LATEST = "best_model.pth", "latest_checkpoint.pth"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, unsafe, or belongs to another split or architecture."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` to `path` atomically: a killed process leaves the previous file intact."""
    # Serialise to memory first: a failure in torch.save never touches the disk.
    buffer = io.BytesIO()
    torch.save({**state, "format": FORMAT}, buffer)
    payload = buffer.getvalue()
    try:
        atomic_write(Path(path), lambda tmp: tmp.write_bytes(payload))
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}; the previous checkpoint "
                              "is unchanged. Free disk space or choose another --output-dir") from exc


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True: tensors and plain values only, no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a page of advice; keep the line that names what the file wanted to run.
        detail = next((line.strip() for line in str(exc).splitlines() if "WeightsUnpickler error" in line), "")
        detail = detail.replace("WeightsUnpickler error: ", "").split(" was not an allowed")[0] or "a pickled object"
        raise CheckpointError(f"{path} was refused: it holds more than tensors and plain values ({detail}), and "
                              "loading it could run code, so it is not loaded. Only load checkpoints glyphkit "
                              "wrote") from exc
    except Exception as exc:  # noqa: BLE001 - torch.load fails on damaged files with many exception types
        first = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        raise CheckpointError(f"{path} is truncated, corrupt or not a checkpoint ({first}); use another "
                              "checkpoint or retrain") from exc
    if (not isinstance(state, dict) or "model" not in state or "config" not in state
            or not isinstance(state["config"], dict)):
        raise CheckpointError(f"{path} is not a glyphkit checkpoint (no model weights and config inside)")
    return state


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The run folder's latest_checkpoint.pth, or a CheckpointError saying why there is nothing to resume."""
    run_dir = Path(run_dir)
    path = run_dir / LATEST
    if not path.exists():
        what = f"has no {LATEST}" if run_dir.is_dir() else "does not exist"
        raise CheckpointError(f"cannot resume: {run_dir} {what}. Start a new run instead (drop --resume), or "
                              "point --resume at a folder a run wrote")
    return path


def checkpoint_config(state: dict[str, Any]) -> Config:
    return Config.from_dict(state["config"])


def check_compatible(saved: Config, wanted: Config, path: str | os.PathLike) -> None:
    """Refuse a checkpoint trained on another split, class set or architecture, saying which and why."""
    problems = []
    for name in ("split", "num_classes", "model", "width", "use_residual", "input_size"):
        a, b = getattr(saved, name), getattr(wanted, name)
        if b is not None and a != b:
            problems.append(f"{name} {a!r} in the checkpoint vs {b!r} asked for")
    if saved.classes and wanted.classes and saved.classes != wanted.classes:
        problems.append("the class characters differ")
    if problems:
        raise CheckpointError(f"{path} does not fit: " + "; ".join(problems) +
                              ". Use a checkpoint of the same split and model, or start a new run")


def eval_state_dict(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to evaluate with: the EMA average when the run kept one, else the trained weights."""
    ema = state.get("ema")
    if ema:
        return {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}
    return state["model"]
