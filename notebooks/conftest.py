"""Notebook tests (`pytest --nbval-lax notebooks`): every kernel runs in quick mode, in a throw-away run folder.

nbval starts one kernel per notebook (alphabetical order, working folder = this folder) with this process's
environment. Just before a notebook's kernel starts, this sets
    GLYPHKIT_QUICK=1     unless already set (GLYPHKIT_QUICK=0 runs the notebooks in full)
    GLYPHKIT_RUN_DIR     a temporary folder shared by the notebooks (so 04-06 read 03's model) and
                         removed at the end, so tests never write into the checkout
and puts the previous values back afterwards, so tests outside this folder see the environment unchanged.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_run_root: str | None = None


def _run_dir() -> str:
    global _run_root
    if _run_root is None:
        _run_root = tempfile.mkdtemp(prefix="glyphkit-nbval-")
    return os.path.join(_run_root, "runs", "notebook")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    if item.path.suffix != ".ipynb":
        yield
        return
    saved = {k: os.environ.get(k) for k in ("GLYPHKIT_QUICK", "GLYPHKIT_RUN_DIR")}
    os.environ.setdefault("GLYPHKIT_QUICK", "1")
    os.environ["GLYPHKIT_RUN_DIR"] = _run_dir()
    try:
        yield  # the notebook's kernel starts here (first cell) and keeps this environment
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pytest_collection_modifyitems(config, items):
    """Every notebook is marked `notebooks` and `slow`: `pytest -m "not slow"` leaves them out."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
            item.add_marker(pytest.mark.slow)


def pytest_unconfigure(config):
    if _run_root is not None:
        shutil.rmtree(_run_root, ignore_errors=True)
