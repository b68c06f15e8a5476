"""Measurements kept as data: one JSON record per measurement, under `benchmarks/results/` in the repository.

Every measuring tool (`glyphkit bench` and the scripts in `benchmarks/`) writes one record with `write_result`;
the tables in the docs and the README are rendered from these files (`benchmarks/render_results.py`), so a number
reaches prose only through a file that says how, where and on what it was measured. A record (schema 1):

    {"schema": 1,
     "what": "one sentence: what was measured",
     "command": "the command line as run",
     "commit": "short git sha of glyphkit, '+dirty' when the tree had uncommitted changes" or null,
     "date": "YYYY-MM-DD",
     "machine": machine_info(),
     "data": "e.g. proxy47 test, 115,004 images" or null,
     "notes": "anything a reader needs to weigh the numbers" or null,
     "columns": [{"key": "test_acc", "header": "test accuracy", "format": "percent"}, ...],
     "rows": [{"test_acc": 0.9057, ...}, ...],
     "summary": {"name": value, ...}}

Row values and summary values are plain JSON scalars (string, number, true/false, null); a row may leave out a
column (read as null). `COLUMN_FORMATS` names how a column's numbers are shown; `format_value` shows them so.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from glyphkit.rundir import atomic_write_text
from glyphkit.runtime import cpu_supports_bf16

SCHEMA = 1
# The CPU's vector units that decide glyphkit's fast paths (bf16 autocast is fast only with the last three).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# How a column's values are shown: name -> what the renderer does with a number.
COLUMN_FORMATS = {
    "text": "as it is (str())",
    "int": "a whole number with thousands separators: 115,004",
    "percent": "a fraction as a percentage, two decimals: 0.9057 -> 90.57%",
    "percent1": "a fraction as a percentage, one decimal: 0.9057 -> 90.6%",
    "percent3": "a fraction as a percentage, three decimals: 0.89454 -> 89.454%",
    "percent4": "a fraction as a percentage, four decimals: 0.99913 -> 99.9130%",
    "float2": "two decimals: 1.2345 -> 1.23",
    "float4": "four decimals: 0.12345 -> 0.1235",
    "seconds": "seconds, one decimal: 12.34 -> 12.3 s",
    "minutes": "a value in seconds shown as minutes, one decimal: 210 -> 3.5 min",
    "ms": "milliseconds, two decimals: 14.751 -> 14.75 ms",
    "ratio": "a speed-up, two decimals: 1.2811 -> 1.28x",
    "sci": "scientific notation, one decimal: 0.000123 -> 1.2e-04",
}
RECORD_KEYS = ("schema", "what", "command", "commit", "date", "machine", "data", "notes", "columns", "rows", "summary")
MACHINE_KEYS = ("cpu", "cores", "native_bf16", "cpu_flags", "torch", "device", "gpu")
REPOSITORY = Path(__file__).resolve().parent.parent  # the checkout glyphkit is imported from, when it is one
RESULTS_PATH = "benchmarks/results"  # where committed records live, relative to the checkout


class ResultError(ValueError):
    """A results record that does not follow the schema (the message names the file when there is one)."""


def machine_info(device: str | torch.device | None = None) -> dict[str, Any]:
    """What a measurement ran on: the CPU model, the cores this process may use, native bf16 or not, the CPU's
    vector flags that matter (Linux /proc/cpuinfo), torch's version, the device ("cpu" or "cuda") and the GPU's
    name (None on the CPU). `device`: the one measured (default: CUDA when present, else the CPU)."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    fields = _cpuinfo()
    flags = set(fields.get("flags", "").split())
    # The cores this process may use (a container or taskset often allows fewer than os.cpu_count()).
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": fields.get("model name") or platform.processor() or "unknown",
        "cores": cores,
        "native_bf16": cpu_supports_bf16(),
        "cpu_flags": sorted(f for f in CPU_FLAGS if f in flags),
        "torch": torch.__version__,
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def _cpuinfo() -> dict[str, str]:
    """The first core's lines of /proc/cpuinfo as a dict (empty where there is none: macOS, Windows)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def git_commit(folder: str | os.PathLike | None = None) -> str | None:
    """The short HEAD sha of the git checkout glyphkit runs from (or `folder`'s), with "+dirty" when its tracked
    files have uncommitted changes; None outside a git checkout or without git. Records under RESULTS_PATH do not
    count: a script that writes several records would otherwise call all but its first dirty."""
    folder = Path(folder) if folder is not None else REPOSITORY

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){RESULTS_PATH}"))
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as a user would type it again: `python` and the script's arguments (default: sys.argv)."""
    return "python " + shlex.join(sys.argv if argv is None else argv)


def results_dir() -> Path | None:
    """The repository's `benchmarks/results/` folder, where committed records live; None when glyphkit is not run
    from a checkout that has one (an installed package)."""
    folder = REPOSITORY / RESULTS_PATH
    return folder if folder.parent.is_dir() else None


def default_result_path(tool: str, label: str) -> Path:
    """`benchmarks/results/<tool>-<label>.json` (the label's characters outside letters, digits, '.', '_' and '-'
    become '_'), in the checkout when there is one, else relative to the current folder."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "default"
    return (results_dir() or Path(RESULTS_PATH)) / f"{tool}-{label}.json"


def result_path(results: str | os.PathLike | None, quick: bool, tool: str, label: str) -> Path | None:
    """Where a tool's record goes: `results` when given; else default_result_path(tool, label), except for a
    `quick` smoke run, which writes none (so smoke tests never touch the committed records)."""
    if results is not None:
        return Path(results)
    return None if quick else default_result_path(tool, label)


def write_result(
    path: str | os.PathLike,
    *,
    what: str,
    command: str,
    columns: Iterable[Mapping[str, str]],
    rows: Iterable[Mapping[str, Any]],
    summary: Mapping[str, Any] | None = None,
    data: str | None = None,
    notes: str | None = None,
    machine: Mapping[str, Any] | None = None,
    commit: str | None = None,
    date: str | None = None,
) -> Path:
    """Write one record (see the module's docstring) atomically to `path`; return the path.

    `columns`: dicts with "key", "header" and optionally "format" (one of COLUMN_FORMATS; default "text").
    `machine`, `commit` and `date` default to this machine, this checkout and today: give them only for numbers
    measured elsewhere (a record transcribed from older notes). Raises ResultError when the record does not
    follow the schema: a row key that is no column, an unknown format, a value that is not a finite JSON scalar."""
    record = {
        "schema": SCHEMA,
        "what": what,
        "command": command,
        "commit": git_commit() if commit is None else commit,
        "date": date or datetime.date.today().isoformat(),
        "machine": dict(machine_info() if machine is None else machine),
        "data": data,
        "notes": notes,
        "columns": [{"format": "text", **column} for column in columns],
        "rows": [{k: _plain(v) for k, v in row.items()} for row in rows],
        "summary": {k: _plain(v) for k, v in (summary or {}).items()},
    }
    check_record(record)
    path = Path(path)
    atomic_write_text(path, json.dumps(record, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def _plain(value: Any) -> Any:
    """NumPy and torch scalars as the Python numbers JSON writes (records are made from measured arrays)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read a record and check it against the schema; a ResultError names the file and what is wrong."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultError(f"{path}: not a readable JSON file ({exc})") from exc
    try:
        check_record(record)
    except ResultError as exc:
        raise ResultError(f"{path}: {exc}") from None
    return record


def check_record(record: Any) -> None:
    """Raise ResultError unless `record` follows schema 1."""
    if not isinstance(record, dict):
        raise ResultError("a record is a JSON object")
    if record.get("schema") != SCHEMA:
        raise ResultError(f"schema is {record.get('schema')!r}, this glyphkit reads schema {SCHEMA}")
    if missing := [k for k in RECORD_KEYS if k not in record]:
        raise ResultError(f"missing key(s): {', '.join(missing)}")
    if extra := sorted(set(record) - set(RECORD_KEYS)):
        raise ResultError(f"unknown key(s): {', '.join(extra)}")
    for key in ("what", "command", "date"):
        if not isinstance(record[key], str) or not record[key].strip():
            raise ResultError(f"'{key}' must be a non-empty string")
    for key in ("commit", "data", "notes"):
        if record[key] is not None and not isinstance(record[key], str):
            raise ResultError(f"'{key}' must be a string or null")
    try:
        datetime.date.fromisoformat(record["date"])
    except ValueError:
        raise ResultError(f"date {record['date']!r} is not YYYY-MM-DD") from None
    _check_machine(record["machine"])
    keys = _check_columns(record["columns"])
    if not isinstance(record["rows"], list):
        raise ResultError("'rows' must be a list")
    for n, row in enumerate(record["rows"]):
        if not isinstance(row, dict):
            raise ResultError(f"row {n} must be an object")
        if unknown := [k for k in row if k not in keys]:
            raise ResultError(f"row {n} has key(s) that are no column: {', '.join(map(str, unknown))}")
        for key, value in row.items():
            _check_scalar(value, f"row {n}, '{key}'")
    if not isinstance(record["summary"], dict):
        raise ResultError("'summary' must be an object")
    for key, value in record["summary"].items():
        _check_scalar(value, f"summary '{key}'")


def _check_machine(machine: Any) -> None:
    if not isinstance(machine, dict):
        raise ResultError("'machine' must be an object")
    if missing := [k for k in MACHINE_KEYS if k not in machine]:
        raise ResultError(f"machine lacks {', '.join(missing)}")
    if not isinstance(machine["cpu_flags"], list):
        raise ResultError("machine's cpu_flags must be a list")


def _check_columns(columns: Any) -> set[str]:
    if not isinstance(columns, list) or not columns:
        raise ResultError("'columns' must be a non-empty list")
    keys: set[str] = set()
    for n, column in enumerate(columns):
        if (
            not isinstance(column, dict)
            or not isinstance(column.get("key"), str)
            or not isinstance(column.get("header"), str)
        ):
            raise ResultError(f"column {n} needs a string 'key' and 'header'")
        if set(column) - {"key", "header", "format"}:
            raise ResultError(
                f"column '{column['key']}' has unknown field(s) "
                f"{', '.join(sorted(set(column) - {'key', 'header', 'format'}))}"
            )
        if column.get("format", "text") not in COLUMN_FORMATS:
            raise ResultError(
                f"column '{column['key']}': unknown format {column.get('format')!r} "
                f"(known: {', '.join(COLUMN_FORMATS)})"
            )
        if column["key"] in keys:
            raise ResultError(f"column '{column['key']}' appears twice")
        keys.add(column["key"])
    return keys


def _check_scalar(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, (str, bool, int, float)):
        raise ResultError(f"{where}: {type(value).__name__} is not a JSON scalar (string, number, boolean, null)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultError(f"{where}: {value} is not a finite number")


def format_value(value: Any, fmt: str = "text") -> str:
    """`value` as a table shows it in a column of format `fmt` (COLUMN_FORMATS); null is an empty cell."""
    if value is None:
        return ""
    if fmt == "text" or isinstance(value, (str, bool)):
        # A table row is one line: text of several lines (a page read) shows its line breaks as " / ", and a "|"
        # would end the cell.
        return str(value).replace("\r\n", "\n").replace("\n", " / ").replace("|", "\\|")
    shown = {
        "int": lambda v: f"{v:,.0f}",
        "percent": lambda v: f"{100 * v:.2f}%",
        "percent1": lambda v: f"{100 * v:.1f}%",
        "percent3": lambda v: f"{100 * v:.3f}%",
        "percent4": lambda v: f"{100 * v:.4f}%",
        "float2": lambda v: f"{v:.2f}",
        "float4": lambda v: f"{v:.4f}",
        "seconds": lambda v: f"{v:.1f} s",
        "minutes": lambda v: f"{v / 60:.1f} min",
        "ms": lambda v: f"{v:.2f} ms",
        "ratio": lambda v: f"{v:.2f}x",
        "sci": lambda v: f"{v:.1e}",
    }
    if fmt not in shown:
        raise ResultError(f"unknown format {fmt!r} (known: {', '.join(COLUMN_FORMATS)})")
    return shown[fmt](value)
