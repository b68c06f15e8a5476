"""The notebooks in a real browser: JupyterLab, headless Chromium, clicks and keys on the LR control of 02.

02_lr_finder runs in quick mode; the test presses Reject, moves the slider with the keyboard, presses Accept, and
after each checks lr.json on disk and the control's status line; then 03_train runs and must report the rate the
slider gave. Everything happens in temporary folders: a copy of the notebooks (JupyterLab autosaves outputs into
what it opens), a small data folder, the run folder, Jupyter's settings.

Needs Chromium, chromedriver and selenium (`pip install -e ".[dev]"` brings selenium; on Debian
`apt-get install chromium chromium-driver`, which `.ci/run` does when it runs as root). Without them it skips and
says which is missing. About a minute on 2 cores.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from glyphkit.synthetic import write_emnist_split

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the test skips and says so
    webdriver = None

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SERVER_START_S, NOTEBOOK_RUN_S, CLICK_S = 90, 180, 30  # generous, bounded
ARROW_PRESSES = 20  # slider steps of 0.01 decade: from 1e-3 up to 10 ** (-3 + 0.20)
DEFAULT_LR = 1e-3  # Config's default, what Reject keeps (README, "Learning-rate finder")
# JupyterLab settings for the test: render every cell (no windowing, so the control is in the page), no news.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def _missing_tools() -> str | None:
    """Why the test cannot run here, or None."""
    if webdriver is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not any(shutil.which(name) for name in BROWSERS):
        return "no Chromium (Debian: apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver (Debian: apt-get install chromium-driver)"
    if importlib.util.find_spec("jupyterlab") is None:
        return "JupyterLab is not installed (pip install -e '.[dev]')"
    return None


pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(_missing_tools() is not None, reason=f"browser test: {_missing_tools()}"),
]


# ------------------------------------------------------------------------------------------------ the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_folders(root: Path) -> dict[str, str]:
    """Notebooks, data, run folder and Jupyter's own folders under `root`; the environment the kernels get."""
    shutil.copytree(
        NOTEBOOKS,
        root / "notebooks",
        ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints", "__pycache__", "conftest.py"),
    )
    # Quick mode looks for the stand-in split when `balanced` is missing: a small one keeps the run short.
    write_emnist_split(root / "data", "proxy47", "0123456789", train_per_class=30, test_per_class=5)
    for name, values in LAB_SETTINGS.items():
        path = root / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return {
        "GLYPHKIT_QUICK": "1",
        "GLYPHKIT_DATA_DIR": str(root / "data"),
        "GLYPHKIT_RUN_DIR": str(root / "run"),
        "GLYPHKIT_CACHE": str(root / "cache"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(root / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "IPYTHONDIR": str(root / "ipython"),
    }


def _start_lab(root: Path, env: dict[str, str], port: int, token: str) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port, in its own process group (so its kernels end with it)."""
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root / 'notebooks'}",
        "--LabApp.expose_app_in_browser=True",
    ]
    with open(root / "jupyter.log", "w") as log:  # the server writes to its own copy of the file handle
        return subprocess.Popen(
            command,
            env={**os.environ, **env},
            cwd=root / "notebooks",
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_server(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab ended at start:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """End the server and the kernels it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def lab(tmp_path):
    """(base URL with token, root folder) of a JupyterLab serving a copy of the notebooks."""
    env = _lab_folders(tmp_path)
    port, token = _free_port(), secrets.token_hex(16)
    proc = _start_lab(tmp_path, env, port, token)
    try:
        _wait_for_server(proc, f"http://127.0.0.1:{port}/api/status?token={token}", tmp_path / "jupyter.log")
        yield f"http://127.0.0.1:{port}", token, tmp_path
    finally:
        _stop(proc)


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(name) for name in BROWSERS if shutil.which(name))
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_script_timeout(NOTEBOOK_RUN_S)
    try:
        yield driver
    finally:
        driver.quit()


# ------------------------------------------------------------------------------------------------ the page

RUN_ALL = """
const done = arguments[arguments.length - 1];
const app = window.jupyterapp;
const panel = app.shell.currentWidget;
Promise.all([panel.context.ready, panel.sessionContext.ready])
  .then(() => app.commands.execute('notebook:run-all-cells'))
  .then(ok => done({ok: ok, path: panel.context.path}))
  .catch(error => done({error: String(error)}));
"""

OPEN = """
const done = arguments[arguments.length - 1];
window.jupyterapp.commands.execute('docmanager:open', {path: arguments[0]})
  .then(panel => panel.context.ready.then(() => done(true))).catch(error => done(String(error)));
"""

CURRENT_PATH = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
return panel && panel.context ? panel.context.path : null;
"""


def _wait(driver, condition, timeout: float, what: Callable[[], str]):
    """WebDriverWait's until(); on a timeout, fail with `what()`: the state at the end of the wait."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)
    except TimeoutException:
        pytest.fail(f"after {timeout}s: {what()}")


def _run_notebook(driver, path: str) -> None:
    """Make `path` the current notebook and run all its cells; fails if a cell fails."""
    _wait(
        driver,
        lambda d: d.execute_script(CURRENT_PATH) is not None,
        SERVER_START_S,
        lambda: "JupyterLab shows no document",
    )
    if driver.execute_script(CURRENT_PATH) != path:
        assert driver.execute_async_script(OPEN, path) is True
        _wait(driver, lambda d: d.execute_script(CURRENT_PATH) == path, CLICK_S, lambda: f"{path} did not open")
    result = driver.execute_async_script(RUN_ALL)
    assert result.get("ok") is True and result["path"] == path, f"{path}: {result} {_page_errors(driver)}"


def _page_errors(driver) -> str:
    """The error outputs of the current notebook, to say why a run failed."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-mime-type=\"application/vnd.jupyter.stderr\"]'))"
        ".map(e => e.innerText).join('\\n').slice(-3000);"
    )


def _status_line(driver) -> str:
    """The control's status line (the Label under the slider and buttons) as the browser shows it."""
    labels = driver.find_elements(By.XPATH, "//*[contains(@class, 'widget-label') and contains(., 'Saved lr')]")
    return labels[-1].text if labels else ""


def _button(driver, text: str):
    return driver.find_element(By.XPATH, f"//button[contains(@class, 'widget-button')][normalize-space()='{text}']")


def _record(run: Path) -> dict | None:
    try:
        return json.loads((run / "lr.json").read_text())
    except (OSError, ValueError):
        return None


def _wait_for_choice(driver, run: Path, lr: float, choice: str, source: str, status_start: str) -> None:
    """lr.json holds (lr, choice, source), and the status line starts with `status_start` and names that file."""

    def saved(_driver) -> bool:
        record = _record(run)
        return (
            record is not None
            and math.isclose(record["lr"], lr, rel_tol=1e-6)
            and record["choice"] == choice
            and record["source"] == source
        )

    _wait(driver, saved, CLICK_S, lambda: f"lr.json should hold {lr:.3e} ({choice}, {source}): {_record(run)}")
    expected_end = f"Saved lr {lr:.2e} to {run / 'lr.json'}: 03_train will use it."
    _wait(
        driver,
        lambda d: _status_line(d).startswith(status_start) and _status_line(d).endswith(expected_end),
        CLICK_S,
        lambda: f"the status line should start {status_start!r}: {_status_line(driver)!r}",
    )


def _press_arrows(driver, count: int) -> None:
    """Focus the slider's handle and press the right arrow `count` times, as a user would."""
    handle = driver.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", handle)
    for _ in range(count):
        handle.send_keys(Keys.ARROW_RIGHT)


def _page_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def _notebook_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(NOTEBOOKS.glob("*.ipynb"))}


# ------------------------------------------------------------------------------------------------ the test


def test_lr_control_in_jupyterlab_then_03_trains_with_the_chosen_rate(lab, browser):
    base, token, root = lab
    run = root / "run"
    committed = _notebook_files()
    started = time.monotonic()
    browser.get(f"{base}/lab/tree/02_lr_finder.ipynb?token={token}")
    _run_notebook(browser, "02_lr_finder.ipynb")
    suggestion = _record(run)["suggestion"]
    _wait_for_choice(
        browser, run, suggestion, "suggestion", "notebook:default", f"Using the suggestion {suggestion:.2e}"
    )

    _button(browser, "Reject").click()
    _wait_for_choice(browser, run, DEFAULT_LR, "rejected", "notebook:reject", "Rejected the suggestion")

    _press_arrows(browser, ARROW_PRESSES)
    moved = 10 ** (math.log10(DEFAULT_LR) + 0.01 * ARROW_PRESSES)
    _wait_for_choice(browser, run, moved, "slider", "notebook:slider", f"Slider at {moved:.2e}")

    _button(browser, "Accept").click()
    _wait_for_choice(browser, run, moved, "slider", "notebook:accept", f"Accepted {moved:.2e} from the slider")
    assert "Using the suggestion" not in _page_text(browser), "a line from before the clicks is still on the page"

    _run_notebook(browser, "03_train.ipynb")
    _wait(
        browser,
        lambda d: f"learning rate {moved:.2e} from {run / 'lr.json'}" in _page_text(d),
        CLICK_S,
        lambda: f"03_train does not report the slider's rate {moved:.2e}",
    )
    assert math.isclose(json.loads((run / "config.json").read_text())["lr"], moved, rel_tol=1e-6)
    assert (run / "best_model.pth").is_file()
    assert _notebook_files() == committed, "the test wrote into the repository's notebooks"
    print(f"browser test: {time.monotonic() - started:.0f}s after JupyterLab answered")
