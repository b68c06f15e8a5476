"""The run folder: every file a run writes, how the folder is prepared, atomic writes, and checkpoints.

A run folder (`--output-dir`, or the notebooks' `run_dir`) holds one training run and what was learned from it:

    lr.json, lr_finder.png              the LR finder's choice (written before training, kept by --overwrite)
    config.json                         the resolved settings
    latest_checkpoint.pth               after every epoch (and before the first): what --resume continues
    best_model.pth                      the best epoch so far (config.monitor): what evaluation uses
    history.json, training_history.png  per-epoch numbers and their figure
    status.json                         running / finished / interrupted / diverged / failed, with the process
    events.out.tfevents.*               TensorBoard's event files (glyphkit.tblog); lr_finder/ holds the LR finder's
    metrics.json, classification_report.txt, misclassification_analysis.txt, and the evaluation's figures

Every file is written atomically (a temporary file in the same folder, fsync, one rename, fsync of the folder): a
run killed at any moment leaves either the old file or the new one, never half of one. The temporary file a
killed write leaves behind is deleted when a run starts or resumes in the folder.

Checkpoints are one dict of tensors and plain values, read back with `torch.load(weights_only=True)`, so loading
one never runs code. Layout (torchvision's reference style, plus what an exact resume needs):
    {"model", "optimizer", "lr_scheduler", "ema", "scaler", "epoch", "config", "history",
     "early_stopping", "rng", "format": 1}
`epoch` counts completed epochs; `config` is the full resolved Config as a dict, so a checkpoint alone tells
which split, classes and architecture it belongs to.
"""

from __future__ import annotations

import datetime
import errno
import io
import json
import os
import pickle
import re
import secrets
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from glyphkit.config import Config, ConfigError

# ---------------------------------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------------------------------

BEST, LATEST = "best_model.pth", "latest_checkpoint.pth"
CONFIG, HISTORY, HISTORY_FIGURE = "config.json", "history.json", "training_history.png"
STATUS = "status.json"
# What a run's status.json says. "running" comes with the process id and host, so a reader can tell a live run
# from one whose process was killed (glyphkit.runs).
STATUSES = ("running", "finished", "interrupted", "diverged", "failed")
EVENTS_GLOB = "events.out.tfevents.*"  # TensorBoard's event files (glyphkit.tblog): part of a run, like history
LR_CHOICE, LR_FINDER_FIGURE = "lr.json", "lr_finder.png"
METRICS, CLASSIFICATION_REPORT, MISCLASSIFICATION_REPORT = (
    "metrics.json",
    "classification_report.txt",
    "misclassification_analysis.txt",
)
EVALUATION_FIGURES = (
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
    "per_class_accuracy.png",
    "reliability_diagram.png",
    "coverage_accuracy.png",
    "misclassified_examples.png",
)
# What training and evaluation write; --overwrite removes these before a new run starts. The LR finder's files
# stay: they are written *before* training, for training to use.
RUN_FILES = (
    BEST,
    LATEST,
    CONFIG,
    HISTORY,
    HISTORY_FIGURE,
    STATUS,
    METRICS,
    CLASSIFICATION_REPORT,
    MISCLASSIFICATION_REPORT,
    *EVALUATION_FIGURES,
)
CHECKPOINT_FORMAT = 1
RUN_CONFIG_KEYS = {"split", "model", "epochs", "batch_size"}  # a config.json holding these is a glyphkit run's
# torch.load(weights_only=True) could be made to run code by a crafted file before torch 2.6 (CVE-2025-32434).
SAFE_LOAD_TORCH = (2, 6)


class RunFolderExists(RuntimeError):
    """The output folder already holds a run and neither resume nor overwrite was asked for."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, unsafe, or belongs to another split or architecture."""


# ---------------------------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------------------------


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` then move the finished file over `path` in one rename, made durable by an fsync of
    the file before it and of the folder after it."""
    path = Path(path)
    tmp = None
    try:
        make_folder(path.parent)
        tmp = _new_temp_file(path)
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # name the file the caller asked for, not the temporary one
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def file_in_the_way(path: str | os.PathLike) -> Path | None:
    """The first of `path`'s folders (from the root down) that exists but is a file: then nothing can be written
    at `path`, and the OS says only "File exists" or "Not a directory". None when there is none."""
    for folder in reversed(Path(path).parents):
        if not folder.exists():
            return None
        if not folder.is_dir():
            return folder
    return None


def make_folder(folder: str | os.PathLike) -> None:
    """mkdir -p, with an error that names the file standing where a folder should be."""
    folder = Path(folder)
    blocker = folder if folder.exists() and not folder.is_dir() else file_in_the_way(folder)
    if blocker is not None:
        raise NotADirectoryError(errno.ENOTDIR, f"{blocker} is a file, not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)


def why_not_writable(path: str | os.PathLike) -> str | None:
    """Why no file can be written at `path`, or None when one can: asked before the work whose result it will
    hold, so a mistake costs nothing. Creates nothing that stays (a temporary file in the nearest existing folder
    is made and deleted: the only test that holds for permissions, read-only disks and root alike)."""
    path = Path(path)
    if path.is_dir():
        return "it is a folder; give a file name"
    if path.exists() and not path.is_file():
        return "it is not a regular file (a device, pipe or socket)"
    blocker = file_in_the_way(path)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"{folder} is not writable ({exc.strerror or exc})"
    return None


def _new_temp_file(path: Path) -> Path:
    """A new empty `.NAME.XXXXXXXX.tmp` next to `path`, created 0o666 so the kernel applies the umask (the
    usual permissions, without reading the umask: os.umask would change it for every thread meanwhile)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path))


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` survive a power cut (POSIX: fsync the folder). Skipped where the platform cannot
    open a folder (Windows) or the file system cannot fsync one."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def remove_stale_temp_files(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed write left in a run folder (`.NAME.XXXXXXXX.tmp` of the files a run
    writes), as a run starts or resumes there; the user's own files stay. Returns what was deleted."""
    run_dir = Path(run_dir)
    stale = [
        p for name in (*RUN_FILES, LR_CHOICE, LR_FINDER_FIGURE) for p in run_dir.glob(f".{name}.*.tmp") if p.is_file()
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | os.PathLike, value: Any, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def write_results(folder: str | os.PathLike, stem: str, value: Any, markdown: str) -> None:
    """A measurement as the benchmarks keep it: `stem`.json (the numbers) and `stem`.md (the table), both atomic,
    the folder made if needed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{stem}.json", value)
    atomic_write_text(folder / f"{stem}.md", markdown)


# ---------------------------------------------------------------------------------------------------------------
# Preparing the folder for a new run
# ---------------------------------------------------------------------------------------------------------------


def check_run_dir(run_dir: str | os.PathLike, config: Config, overwrite: bool) -> None:
    """Raise RunFolderExists when `run_dir` holds a run, or files of the user's that a run would replace, and
    `overwrite` is off: glyphkit replaces only what it wrote. Reads, never writes, so a front end can call it
    before loading any data. A folder with only the LR finder's files holds no run."""
    run_dir = Path(run_dir)
    if (blocker := file_in_the_way(run_dir / CONFIG)) is not None:
        raise ConfigError(f"--output-dir {run_dir}: {blocker} is a file, not a folder; choose another --output-dir")
    if overwrite:
        return
    if holds_run(run_dir):
        differ = ""
        if (run_dir / CONFIG).exists():
            try:
                keys = _differing_settings(Config.load(run_dir / CONFIG), config)
                differ = f" with a different config ({', '.join(keys)})" if keys else ""
            except ConfigError:
                differ = " (its config.json is unreadable)"
        raise RunFolderExists(
            f"{run_dir} already holds a run{differ}. Continue it with --resume {run_dir}, "
            "start over with --overwrite, or choose another --output-dir"
        )
    if foreign := [name for name in RUN_FILES if (run_dir / name).exists()]:
        raise RunFolderExists(
            f"{run_dir} holds no run, but files of yours that a run would replace: "
            f"{', '.join(foreign)}. glyphkit does not replace files it did not write: move them, "
            "choose another --output-dir, or pass --overwrite to replace them"
        )


def holds_run(run_dir: str | os.PathLike) -> bool:
    """A run was started in `run_dir`: it has a checkpoint, or a config.json that glyphkit wrote (a run killed
    between its config and its first checkpoint). A config.json that is no glyphkit Config is someone else's."""
    run_dir = Path(run_dir)
    if (run_dir / LATEST).exists() or (run_dir / BEST).exists():
        return True
    try:
        values = json.loads((run_dir / CONFIG).read_text())
    except (OSError, ValueError):  # none, unreadable, or not JSON
        return False
    return isinstance(values, dict) and RUN_CONFIG_KEYS <= values.keys()


def _differing_settings(old: Config, new: Config) -> list[str]:
    """The settings the user chose differently; values filled in from the data or the model are not choices."""
    old_values, new_values = old.to_dict(), new.to_dict()
    derived = {"norm_mean", "norm_std", "data_dir", "output_dir", "extra"}
    filled_in = ("num_classes", "classes", "width", "input_size", "world_size", "global_batch_size")
    derived |= {k for k in filled_in if new_values[k] is None}
    return [k for k in new_values if k not in derived and old_values.get(k) != new_values[k]]


def prepare_run_dir(run_dir: str | os.PathLike, config: Config, overwrite: bool) -> None:
    """Create the folder for a new run; refuse to replace an existing run unless `overwrite`, which first removes
    the old run's files so none of them can be mistaken for the new run's."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir, config, overwrite)
    make_folder(run_dir)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for events in run_dir.glob(EVENTS_GLOB):  # the old run's TensorBoard curves (the LR finder's, in lr_finder/, stay)
        events.unlink(missing_ok=True)


def write_config(run_dir: str | os.PathLike, config: Config) -> None:
    write_json(Path(run_dir) / CONFIG, config.to_dict())


def write_history(run_dir: str | os.PathLike, history: dict[str, list]) -> None:
    write_json(Path(run_dir) / HISTORY, history, indent=1)


def write_status(run_dir: str | os.PathLike, status: str, **fields: Any) -> dict[str, Any]:
    """status.json: what the run is doing (`status`, one of STATUSES), which process does it (pid, host), when it
    started (kept from an earlier status.json, so a resumed run keeps its start) and `fields` (epoch, message).
    Written atomically; returns what was written."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        previous = read_status(run_dir) or {}
    except (OSError, ValueError):  # a damaged status.json is replaced
        previous = {}
    record = {
        "status": status,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": previous.get("started") or now,
        "updated": now,
        **fields,
    }
    write_json(Path(run_dir) / STATUS, record)
    return record


def read_status(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A run's status.json as a dict; None when it is missing. A file that is no JSON object raises ValueError."""
    path = Path(run_dir) / STATUS
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or record.get("status") not in STATUSES:
        raise ValueError(f"{path} holds no run status")
    return record


def read_history(run_dir: str | os.PathLike, state: dict[str, Any] | None = None) -> dict[str, list] | None:
    """history.json of a run (else the checkpoint's copy), or None when no epoch has finished."""
    path = Path(run_dir) / HISTORY
    history = None
    if path.is_file():
        try:
            history = json.loads(path.read_text())
        except (OSError, ValueError):  # ValueError: invalid JSON, or bytes that are not text
            history = None
    if not isinstance(history, dict):  # valid JSON but no object (null, a list): as good as missing
        history = None
    if history is None and state is not None:
        history = state.get("history")
    return history if history and history.get("epoch") else None


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` to `path` atomically: a killed process leaves the previous file intact."""
    # Serialise to memory first: a failure in torch.save never touches the disk.
    buffer = io.BytesIO()
    torch.save({**state, "format": CHECKPOINT_FORMAT}, buffer)
    payload = buffer.getvalue()
    try:
        atomic_write(path, lambda tmp: tmp.write_bytes(payload))
    except OSError as exc:
        raise CheckpointError(
            f"cannot write checkpoint {path}: {exc.strerror or exc}; the previous checkpoint "
            "is unchanged. Free disk space or choose another --output-dir"
        ) from exc


def torch_version() -> str:
    """The running torch's version (a function of its own, so a test can pretend to run an older torch)."""
    return torch.__version__


def _require_safe_torch(path: Path) -> None:
    """Refuse to unpickle anything on a torch whose weights_only=True can be bypassed: there it gives no safety."""
    version = torch_version()
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None or tuple(int(n) for n in found.groups()) < SAFE_LOAD_TORCH:
        raise CheckpointError(
            f"{path} was not loaded: torch {version} cannot load checkpoints safely (a crafted "
            "file can run code even with weights_only=True, CVE-2025-32434, fixed in torch 2.6). "
            "Upgrade: pip install -U 'torch>=2.6' 'torchvision>=0.21' (conda: from conda-forge)"
        )


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True: tensors and plain values only, no code runs)."""
    path = Path(path)
    state = safe_load(path, map_location)
    if (
        not isinstance(state, dict)
        or "model" not in state
        or "config" not in state
        or not isinstance(state["config"], dict)
    ):
        raise CheckpointError(f"{path} is not a glyphkit checkpoint (no model weights and config inside)")
    for key in ("model", "ema"):
        if key == "model" or state.get(key):  # "ema" is None when the run kept no average
            check_weights(state[key], key, path)
    return state


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True (tensors and plain values only, no code runs), every failure a
    CheckpointError that names the file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint; give a checkpoint file (.pth) such as {path / BEST}"
        )
    if path.exists() and not path.is_file():
        raise CheckpointError(
            f"{path} is not a regular file (a device, pipe or socket), so not a checkpoint; "
            "give a checkpoint file (.pth)"
        )
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    _require_safe_torch(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a pickle asking to run code: bytes that are no pickle at all
            raise CheckpointError(
                f"{path} is truncated, corrupt or not a checkpoint (not a PyTorch file); use another checkpoint "
                "or retrain"
            ) from exc
        # torch's message is a page of advice; keep the line that names what the file wanted to run.
        detail = next((line.strip() for line in str(exc).splitlines() if "WeightsUnpickler error" in line), "")
        detail = detail.replace("WeightsUnpickler error: ", "").split(" was not an allowed")[0] or "a pickled object"
        raise CheckpointError(
            f"{path} was refused: it holds more than tensors and plain values ({detail}), and "
            "loading it could run code, so it is not loaded. Only load checkpoints glyphkit "
            "wrote"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - torch.load fails on damaged files with many exception types
        first = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        raise CheckpointError(
            f"{path} is truncated, corrupt or not a checkpoint ({first}); use another checkpoint or retrain"
        ) from exc
    return state


def check_weights(weights: Any, key: str, path: Path) -> None:
    """Refuse a checkpoint entry that should be a state dict (names -> tensors) but is not: an edited or foreign
    file would otherwise fail deep inside torch with a TypeError."""
    if (
        not isinstance(weights, dict)
        or not weights
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items())
    ):
        got = (
            "None"
            if weights is None
            else f"a {type(weights).__name__}"
            if not isinstance(weights, dict)
            else "an empty dict"
            if not weights
            else "a dict of other things"
        )
        raise CheckpointError(
            f"{path} is not a usable checkpoint: its {key!r} entry should hold the weights "
            f"(names -> tensors) but is {got}; use another checkpoint or retrain"
        )


def store_calibration(path: str | os.PathLike, calibration: dict) -> None:
    """Add a calibration (inference.Calibrator.to_state(): plain lists) to a checkpoint, rewritten atomically; an
    older glyphkit's single temperature is dropped with it."""
    state = load_checkpoint(path)
    state["calibration"] = calibration
    state.pop("temperature", None)
    save_checkpoint(state, path)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The run folder's latest_checkpoint.pth, or a CheckpointError saying why there is nothing to resume."""
    run_dir = Path(run_dir)
    path = run_dir / LATEST
    if not path.exists():
        what = f"has no {LATEST}" if run_dir.is_dir() else "does not exist"
        raise CheckpointError(
            f"cannot resume: {run_dir} {what}. Start a new run instead (drop --resume), or "
            "point --resume at a folder a run wrote"
        )
    return path


def checkpoint_path(run_dir: str | os.PathLike, checkpoint: str | os.PathLike = BEST) -> Path:
    """A bare or relative checkpoint name is looked up in the run folder first, then from the current folder."""
    path = Path(checkpoint)
    if path.is_absolute() or (not (Path(run_dir) / path).exists() and path.exists()):
        return path
    return Path(run_dir) / path


def name_in_run(path: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """`path` relative to the run folder when it is inside it (how reports name a checkpoint)."""
    try:
        return str(Path(path).resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(path)


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
        raise CheckpointError(
            f"{path} does not fit: "
            + "; ".join(problems)
            + ". Use a checkpoint of the same split and model, or start a new run"
        )


def eval_state_dict(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to evaluate with: the EMA average when the run kept one, else the trained weights."""
    ema = state.get("ema")
    if ema:
        return {k[len("module.") :]: v for k, v in ema.items() if k.startswith("module.")}
    return state["model"]
