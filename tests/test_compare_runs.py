"""Issue 33: every run logs to TensorBoard and records its status; `glyphkit runs` tables them, damaged or not.

The event files are read back with TensorBoard's own reader (EventAccumulator). Runs are tiny (120 generated
images, one thread, 1-3 epochs); the CLI is called in-process through `glyphkit.cli.main`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from glyphkit import cli, rundir, runs, tblog
from glyphkit.training import Trainer

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

FAST = [
    "--split",
    "tiny",
    "--model",
    "glyphnet",
    "--batch-size",
    "32",
    "--limit-train",
    "120",
    "--limit-test",
    "20",
    "--no-progress",
    "--num-threads",
    "1",
    "--precision",
    "fp32",
]
STEPS_PER_EPOCH = 4  # 108 training images (120 less the validation share) in batches of 32


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GLYPHKIT_DATA_DIR", raising=False)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def points(accumulator: EventAccumulator, tag: str) -> tuple[list[int], list[float]]:
    """(steps, values) of a scalar tag."""
    scalars = accumulator.Scalars(tag)
    return [e.step for e in scalars], [e.value for e in scalars]


def same(got: tuple[list[int], list[float]], steps: list[int], values: list[float]) -> bool:
    """The points are at exactly `steps`, with `values` (as float32 holds them)."""
    return got[0] == steps and got[1] == pytest.approx(values, rel=1e-6)


def interrupt_during_epoch(monkeypatch, epoch: int, after_steps: int = 2) -> None:
    """Ctrl-C in the middle of `epoch`, after `after_steps` optimizer steps of it (as KeyboardInterrupt arrives)."""
    real = Trainer.optimizer_step
    taken = {"n": 0}

    def optimizer_step(self, loss):
        if self.epoch + 1 == epoch:
            taken["n"] += 1
            if taken["n"] > after_steps:
                raise KeyboardInterrupt
        return real(self, loss)

    monkeypatch.setattr(Trainer, "optimizer_step", optimizer_step)


# ------------------------------------------------------------------------------------------------ TensorBoard


@pytest.mark.slow
def test_train_logs_per_epoch_curves_and_the_rate_of_every_step(capsys, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        *FAST,
        "--data-dir",
        tiny_data_dir,
        "--output-dir",
        run,
        "--epochs",
        2,
        "--scheduler",
        "onecycle",
        "--lr",
        "0.003",
        "--skip-eval",
    )
    assert code == 0, err
    assert list(run.glob("events.out.tfevents.*")), "no event files in the run folder"
    history = json.loads((run / "history.json").read_text())
    log = events(run)
    assert same(points(log, "accuracy/val"), [1, 2], history["val_acc"])
    assert same(points(log, "loss/train"), [1, 2], history["train_loss"])
    assert same(points(log, "lr/epoch"), [1, 2], history["lr"])
    steps, rates = points(log, "lr/step")
    assert steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert max(rates) == pytest.approx(0.003, rel=1e-6)  # onecycle reaches its peak, then falls
    assert rates[-1] < rates[STEPS_PER_EPOCH]
    assert "figures/training_history" in log.Tags()["images"]
    assert same(points(log, "hparam/best_val_acc"), [2], [max(history["val_acc"])])


def test_a_resumed_run_continues_the_same_curves(tiny_config, tiny_data, tmp_path, monkeypatch):
    """Ctrl-C in the middle of epoch 2, then --resume: every epoch and every step appears exactly once."""
    run = tmp_path / "run"
    config = tiny_config.replace(epochs=3, num_threads=1, scheduler="onecycle")
    quiet = dict(progress=False, log=lambda *_: None)
    interrupt_during_epoch(monkeypatch, epoch=2)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tiny_data, run, **quiet).fit()
    assert rundir.read_status(run)["status"] == "interrupted"
    monkeypatch.undo()
    resumed = Trainer.resume(run, tiny_data, **quiet)
    resumed.fit()
    assert rundir.read_status(run)["status"] == "finished"
    log = events(run)
    assert same(points(log, "accuracy/val"), [1, 2, 3], resumed.history.val_acc)
    steps, _ = points(log, "lr/step")
    assert steps == list(range(1, 3 * resumed.steps_per_epoch + 1))  # none of the interrupted epoch's twice


def test_the_lr_finder_curve_is_a_run_of_its_own(tmp_path):
    tblog.log_lr_finder(tmp_path, [1e-4, 1e-3, 1e-2], [2.5, 2.0, 3.0])
    tblog.log_lr_finder(tmp_path, [1e-5, 1e-3], [2.4, 2.1])  # a second range test replaces the first
    log = events(tmp_path / "lr_finder")
    assert same(points(log, "lr_finder/loss"), [1, 2], [2.4, 2.1])
    assert same(points(log, "lr_finder/lr"), [1, 2], [1e-5, 1e-3])


@pytest.mark.slow
def test_without_tensorboard_training_says_so_once_and_runs_on(tiny_config, tiny_data, tmp_path, monkeypatch):
    from glyphkit import workflows

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it now raises ImportError
    monkeypatch.setattr(tblog, "_said_missing", False)
    said = []
    trainer = Trainer(
        tiny_config.replace(epochs=1, num_threads=1), tiny_data, tmp_path / "run", progress=False, log=said.append
    )
    workflows.train(trainer, log=said.append)
    assert [m for m in said if "TensorBoard" in m] == [tblog.MISSING]  # once, though two writers were asked for
    assert "pip install tensorboard" in tblog.MISSING
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))
    assert rundir.read_status(tmp_path / "run")["status"] == "finished"


# ------------------------------------------------------------------------------------------------ glyphkit runs


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, tiny_data_dir):
    """A folder with a finished and evaluated run, one interrupted by Ctrl-C in epoch 2, one diverged."""
    root = tmp_path_factory.mktemp("runs")
    common = [*FAST, "--data-dir", str(tiny_data_dir), "--epochs", "2"]
    assert cli.main(["train", *common, "--output-dir", str(root / "finished")]) == 0
    with pytest.MonkeyPatch.context() as patch:
        interrupt_during_epoch(patch, epoch=2)
        assert cli.main(["train", *common, "--skip-eval", "--output-dir", str(root / "interrupted")]) == 130
    assert cli.main(["train", *common, "--skip-eval", "--lr", "1e12", "--output-dir", str(root / "diverged")]) == 1
    return root


@pytest.mark.slow
def test_runs_lists_finished_interrupted_and_diverged_runs(capsys, three_runs, tmp_path):
    out = tmp_path / "runs.csv"
    code, text, err = run_cli(capsys, "runs", three_runs, "--output", out)
    assert code == 0, err
    table = pd.read_csv(out).set_index("run")
    assert list(table.index) == [str(three_runs / n) for n in ("diverged", "finished", "interrupted")]
    assert table["status"].to_dict() == {
        str(three_runs / "diverged"): "diverged",
        str(three_runs / "finished"): "finished",
        str(three_runs / "interrupted"): "interrupted",
    }
    finished = table.loc[str(three_runs / "finished")]
    metrics = json.loads((three_runs / "finished" / "metrics.json").read_text())
    history = json.loads((three_runs / "finished" / "history.json").read_text())
    assert (finished["epochs"], finished["planned"], finished["split"], finished["model"]) == (2, 2, "tiny", "glyphnet")
    assert finished["test_acc"] == pytest.approx(metrics["accuracy"])
    assert finished["balanced_acc"] == pytest.approx(metrics["balanced_accuracy"])
    assert finished["ece"] == pytest.approx(metrics["calibration"]["ece_after"])
    assert finished["best_val_acc"] == pytest.approx(max(history["val_acc"]))
    assert finished["train_seconds"] == pytest.approx(sum(history["epoch_time"]))
    assert pd.isna(finished["problem"])
    interrupted = table.loc[str(three_runs / "interrupted")]
    assert (interrupted["epochs"], interrupted["planned"]) == (1, 2) and pd.isna(interrupted["test_acc"])
    diverged = table.loc[str(three_runs / "diverged")]
    assert diverged["epochs"] == 0 and pd.isna(diverged["best_val_acc"]) and pd.isna(diverged["problem"])
    assert "interrupted" in text and "diverged" in text and f"3 run(s) written to {out}" in text

    code, _, err = run_cli(
        capsys, "runs", three_runs, "--sort", "epochs", "--descending", "--output", tmp_path / "runs.json"
    )
    assert code == 0, err
    rows = json.loads((tmp_path / "runs.json").read_text())
    assert [row["status"] for row in rows] == ["finished", "interrupted", "diverged"]


@pytest.mark.slow
def test_the_finished_run_carries_its_settings_and_test_accuracy_to_hparams(three_runs):
    from tensorboard.plugins.hparams import metadata

    log = events(three_runs / "finished")
    metrics = json.loads((three_runs / "finished" / "metrics.json").read_text())
    assert same(points(log, "hparam/test_acc"), [2], [metrics["accuracy"]])
    assert points(log, "hparam/best_val_acc")[0] == [2]  # written after training, not again by the evaluation
    start = metadata.parse_session_start_info_plugin_data(
        log.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    )
    assert start.hparams["model"].string_value == "glyphnet" and start.hparams["epochs"].number_value == 2
    assert "figures/confusion_matrix_normalized" in log.Tags()["images"]
    assert not [p for p in (three_runs / "finished").iterdir() if p.is_dir()]  # no timestamped hparams subfolder


@pytest.mark.slow
def test_a_damaged_run_folder_is_a_row_with_its_problem(capsys, three_runs, tmp_path):
    root = tmp_path / "runs"
    for name in ("truncated", "bad-config", "bad-history"):
        shutil.copytree(three_runs / "finished", root / name)
    latest = root / "truncated" / rundir.LATEST
    latest.write_bytes(latest.read_bytes()[:1000])
    (root / "bad-config" / "config.json").write_text("{not json")
    (root / "bad-history" / "history.json").write_text("[1, 2, 3]")
    code, text, err = run_cli(capsys, "runs", root)
    assert code == 0, err
    table = runs.runs_table([root]).set_index("run")
    assert table.loc[str(root / "truncated"), "problem"] == "latest_checkpoint.pth truncated or corrupt"
    assert table.loc[str(root / "bad-config"), "problem"] == "config.json unreadable (JSONDecodeError)"
    assert pd.isna(table.loc[str(root / "bad-config"), "model"])
    assert table.loc[str(root / "bad-history"), "problem"] == "history.json holds no JSON object"
    assert (table["status"] == "finished").all()
    assert "truncated or corrupt" in text


def _status(folder: Path, **record) -> None:
    folder.mkdir(parents=True)
    (folder / rundir.STATUS).write_text(
        json.dumps({"host": socket.gethostname(), "started": "2026-01-01T10:00:00", **record})
    )


def test_running_means_a_live_process_writes_the_folder(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _status(tmp_path / "live", status="running", pid=os.getpid(), epoch=1, epochs=5)
    _status(tmp_path / "killed", status="running", pid=int(gone.stdout), epoch=3, epochs=5)
    _status(tmp_path / "elsewhere", status="running", pid=1, epoch=2, epochs=5, host="another-machine")
    table = runs.runs_table([tmp_path]).set_index("run")
    assert table.loc[str(tmp_path / "live"), "status"] == "running"
    assert table.loc[str(tmp_path / "killed"), "status"] == "interrupted"
    assert "gone" in table.loc[str(tmp_path / "killed"), "problem"]
    assert table.loc[str(tmp_path / "elsewhere"), "status"] == "running"  # another machine's process: not checked
    assert table.loc[str(tmp_path / "killed"), "epochs"] == 3  # no history.json: status.json's count


def test_runs_without_status_json_are_finished_when_all_epochs_are_done(tmp_path):
    """Run folders written before glyphkit kept status.json."""
    for name, done in (("old-done", 2), ("old-partial", 1)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"split": "tiny", "model": "glyphnet", "epochs": 2}))
        (tmp_path / name / "history.json").write_text(
            json.dumps({"epoch": list(range(1, done + 1)), "val_acc": [0.5] * done})
        )
    table = runs.runs_table([tmp_path]).set_index("run")
    assert table.loc[str(tmp_path / "old-done"), "status"] == "finished"
    assert table.loc[str(tmp_path / "old-partial"), "status"] == "unknown"


def test_runs_errors_are_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "runs")
    assert code == 2 and err.startswith("error: no runs or outputs folder here")
    code, _, err = run_cli(capsys, "runs", tmp_path / "typo")
    assert code == 2 and err.startswith("error: no folder") and "typo" in err
    code, _, err = run_cli(capsys, "runs", tmp_path, "--output", tmp_path / "runs.xlsx")
    assert code == 2 and ".csv or .json" in err
    code, out, _ = run_cli(capsys, "runs", tmp_path)
    assert code == 0 and "no run folders" in out
