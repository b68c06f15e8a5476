"""Every run at a glance: one row per run folder, as a pandas DataFrame (`glyphkit runs`, 07_compare_runs).

A run folder is a folder holding config.json, latest_checkpoint.pth, history.json or status.json (glyphkit.rundir);
the folders under the ones given are searched, and a run folder's own subfolders are not. A row holds what the
folder's files say, read without loading a model:

    run                  the folder
    split, model, preset from config.json
    epochs, planned      epochs done (history.json, else status.json) and the epochs the run was set to
    status               status.json's: running, finished, interrupted, diverged or failed. A run that says
                         "running" on this machine but whose process is gone was killed: interrupted. A folder
                         written before glyphkit kept status.json: finished when all its epochs are done or it was
                         evaluated, else unknown.
    best_val_acc         the highest validation accuracy of any epoch (history.json)
    test_acc, balanced_acc, tta_acc, ece   metrics.json's (the evaluation; ece: the calibrated model's)
    train_seconds        the epochs' summed time
    started              when the run started (status.json)
    problem              what is wrong with the folder: unreadable JSON, a truncated checkpoint, ...

A damaged folder is a row with its problem, never an error: one bad run must not hide the others.
"""

from __future__ import annotations

import json
import os
import socket
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from glyphkit import rundir
from glyphkit.config import ConfigError

COLUMNS = (
    "run",
    "split",
    "model",
    "preset",
    "epochs",
    "planned",
    "status",
    "best_val_acc",
    "test_acc",
    "balanced_acc",
    "tta_acc",
    "ece",
    "train_seconds",
    "started",
    "problem",
)
DEFAULT_FOLDERS = ("runs", "outputs")  # where the notebooks and `glyphkit train` put runs by default
MARKERS = (rundir.CONFIG, rundir.LATEST, rundir.HISTORY, rundir.STATUS)  # any of them makes a run folder
EVALUATION_NUMBERS = ("test_acc", "balanced_acc", "tta_acc", "ece")  # final_numbers' from metrics.json
ACCURACIES = ("best_val_acc", "test_acc", "balanced_acc", "tta_acc", "ece")  # fractions, shown as percentages


def is_run_folder(folder: str | os.PathLike) -> bool:
    return any((Path(folder) / name).is_file() for name in MARKERS)


def find_run_folders(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Every run folder at or under `folders`, sorted; a run folder's subfolders (lr_finder/, samples/) are not
    searched."""
    found: set[Path] = set()
    for top in folders:
        for here, subfolders, _ in os.walk(top):
            if is_run_folder(here):
                found.add(Path(here))
                subfolders.clear()
            else:
                subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
    return sorted(found)


def _read_json(path: Path, problems: list[str]) -> Any:
    """A JSON file's value; None, with the problem noted, when it is there but cannot be read."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON, or bytes that are not text
        problems.append(f"{path.name} unreadable ({type(exc).__name__})")
        return None


def _object(value: Any, name: str, problems: list[str]) -> dict:
    """`value` when it is a JSON object, else {} (with the problem noted when it was something else)."""
    if value is None or isinstance(value, dict):
        return value or {}
    problems.append(f"{name} holds no JSON object")
    return {}


def check_checkpoint(path: Path) -> str | None:
    """What is wrong with a checkpoint file, or None. torch.save writes a zip archive whose directory is at the
    end, so opening it as one (zipfile reads only that directory) finds a truncated or overwritten file without
    loading the weights."""
    if not path.exists():
        return None
    try:
        with zipfile.ZipFile(path):
            return None
    except (OSError, zipfile.BadZipFile):
        return f"{path.name} truncated or corrupt"


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OSError, ValueError, OverflowError):
        return False
    return True


def run_status(
    record: Mapping[str, Any] | None, done: int | None, planned: int | None, evaluated: bool
) -> tuple[str, str | None]:
    """(status, problem) from status.json's record and what the folder holds (see the module's docstring)."""
    if record is None:
        finished = evaluated or (done is not None and planned is not None and done >= planned)
        return ("finished" if finished else "unknown"), None
    status = record["status"]
    if status == "running" and record.get("host") == socket.gethostname():
        pid = record.get("pid")
        if not isinstance(pid, int) or not process_alive(pid):
            return "interrupted", f"its process ({pid}) is gone without saying why (killed?)"
    return status, None


def final_numbers(history: Mapping[str, list] | None, metrics: Mapping[str, Any] | None) -> dict[str, float | None]:
    """A run's numbers to compare: best validation accuracy and training time (history.json), test and balanced
    accuracy, with TTA, and the calibrated expected calibration error (metrics.json); None where not measured."""
    history, metrics = history or {}, metrics or {}
    val = [v for v in history.get("val_acc") or [] if isinstance(v, (int, float))]
    times = [v for v in history.get("epoch_time") or [] if isinstance(v, (int, float))]
    tta = metrics.get("tta_metrics") if isinstance(metrics.get("tta_metrics"), dict) else {}
    calibration = metrics.get("calibration") if isinstance(metrics.get("calibration"), dict) else {}
    return {
        "best_val_acc": max(val) if val else None,
        "test_acc": metrics.get("accuracy"),
        "balanced_acc": metrics.get("balanced_accuracy"),
        "tta_acc": tta.get("accuracy"),
        "ece": calibration.get("ece_after"),
        "train_seconds": sum(times) if times else None,
    }


def run_row(folder: str | os.PathLike) -> dict[str, Any]:
    """One run folder's row (COLUMNS)."""
    folder, problems = Path(folder), []
    config = _object(_read_json(folder / rundir.CONFIG, problems), rundir.CONFIG, problems)
    history = _object(_read_json(folder / rundir.HISTORY, problems), rundir.HISTORY, problems)
    metrics = _object(_read_json(folder / rundir.METRICS, problems), rundir.METRICS, problems)
    try:
        record = rundir.read_status(folder)
    except (OSError, ValueError):
        record = None
        problems.append(f"{rundir.STATUS} unreadable")
    for name in (rundir.LATEST, rundir.BEST):
        if (problem := check_checkpoint(folder / name)) is not None:
            problems.append(problem)
    if not (folder / rundir.LATEST).exists() and config:
        problems.append(f"no {rundir.LATEST}")
    epochs = history.get("epoch") if isinstance(history.get("epoch"), list) else []
    done = len(epochs) if epochs else (record or {}).get("epoch")
    planned = config.get("epochs", (record or {}).get("epochs"))
    status, problem = run_status(record, done, planned, bool(metrics))
    if problem:
        problems.append(problem)
    return {
        "run": str(folder),
        "split": config.get("split"),
        "model": config.get("model"),
        "preset": config.get("preset"),
        "epochs": done,
        "planned": planned,
        "status": status,
        **final_numbers(history, metrics),
        "started": (record or {}).get("started"),
        "problem": "; ".join(problems) or None,
    }


def runs_table(
    folders: Iterable[str | os.PathLike] = DEFAULT_FOLDERS, *, sort: str | None = None, descending: bool = False
) -> pd.DataFrame:
    """One row per run folder at or under `folders` (COLUMNS), sorted by `sort` (default: run), missing values
    last."""
    if sort is not None and sort not in COLUMNS:
        raise ConfigError(f"cannot sort by {sort!r}; choose one of: {', '.join(COLUMNS)}")
    rows = [run_row(folder) for folder in find_run_folders(folders)]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for name in ("epochs", "planned"):
        table[name] = table[name].astype("Int64")
    for name in (*ACCURACIES, "train_seconds"):
        table[name] = table[name].astype("float64")
    return table.sort_values(sort or "run", ascending=not descending, na_position="last", kind="stable").reset_index(
        drop=True
    )


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table for people: fractions as percentages, seconds as a duration, empty cells blank."""
    from glyphkit.training import format_duration

    shown = table.copy().astype(object)
    for name in ACCURACIES:
        shown[name] = [f"{100 * v:.2f}%" if pd.notna(v) else "" for v in table[name]]
    shown["train_seconds"] = [format_duration(v) if pd.notna(v) else "" for v in table["train_seconds"]]
    return shown.rename(columns={"train_seconds": "train_time"}).fillna("")


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The table as CSV or JSON (by the file's suffix; JSON: a list of rows), written atomically."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        rundir.atomic_write_text(path, table.to_csv(index=False))
    elif path.suffix.lower() == ".json":
        rundir.atomic_write_text(path, table.to_json(orient="records", indent=1) + "\n")
    else:
        raise ConfigError(f"cannot tell the format of {path}: name it .csv or .json")
    return path


def histories(folders: Sequence[str | os.PathLike]) -> dict[str, dict[str, list]]:
    """{run folder: history.json} for the runs that have finished an epoch (for plots.plot_runs_history)."""
    found = {}
    for folder in folders:
        history = rundir.read_history(folder)
        if history is not None:
            found[str(folder)] = history
    return found
