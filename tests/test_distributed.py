"""Training in several processes under torchrun (gloo on the CPU) on tiny data: the same network on every rank,
one run folder written once, resume, and the same metrics as a single-process evaluation of the checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from glyphkit import cli, rundir

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
TINY = ["--split", "tiny", "--model", "glyphnet", "--batch-size", "32", "--no-progress"]

# Each rank trains through workflows.train like `glyphkit train` and saves what it holds after every epoch (before
# the best epoch is restored from best_model.pth, which would make the ranks equal whatever training did).
RANK_SCRIPT = """
import sys, torch
from glyphkit import distributed, workflows
from glyphkit.config import Config
from glyphkit.training import Trainer
data_dir, run_dir, out = sys.argv[1:4]
config = Config(split="tiny", data_dir=data_dir, output_dir=run_dir, model="glyphnet", width=8, epochs=2,
                batch_size=16, ema_decay=0.9, precision="fp32")
def save_what_this_rank_holds(trainer):
    torch.save({"model": trainer.model.state_dict(), "evaluated": trainer.eval_model.state_dict()},
               f"{out}/rank{trainer.world.rank}_epoch{trainer.epoch}.pt")
quiet = lambda *_: None
data = workflows.load_data(config, log=quiet)
workflows.train(Trainer(config, data, progress=False, log=quiet, on_epoch_end=save_what_this_rank_holds), log=quiet)
distributed.shutdown()
"""


def torchrun(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GLYPHKIT_CACHE": str(cwd / "cache")}
    env.pop("GLYPHKIT_DATA_DIR", None)
    return subprocess.run([*TORCHRUN, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_both_ranks_hold_the_same_network(tiny_data_dir, tmp_path):
    (tmp_path / "rank_script.py").write_text(RANK_SCRIPT)
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    proc = torchrun(tmp_path / "rank_script.py", tiny_data_dir, run, out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for epoch in (1, 2):
        rank0, rank1 = (torch.load(out / f"rank{r}_epoch{epoch}.pt", weights_only=True) for r in (0, 1))
        for part in ("model", "evaluated"):  # parameters and batch-norm statistics, trained and averaged (EMA)
            assert rank0[part].keys() == rank1[part].keys()
            for name in rank0[part]:
                assert torch.equal(rank0[part][name], rank1[part][name]), f"epoch {epoch}: {part} {name} differs"
    latest = rundir.load_checkpoint(run / rundir.LATEST)  # written by rank 0 after epoch 2
    assert all(torch.equal(latest["model"][k], v) for k, v in rank0["model"].items())
    config = json.loads((run / rundir.CONFIG).read_text())
    assert (config["world_size"], config["batch_size"], config["global_batch_size"]) == (2, 16, 32)


@pytest.mark.slow
def test_torchrun_cli_writes_once_resumes_and_matches_a_single_process_evaluation(tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    data = ["--data-dir", tiny_data_dir, "--output-dir", run]
    first = torchrun("-m", "glyphkit", "train", *TINY, *data, "--epochs", "1", "--skip-eval", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("in 2 processes (batch 32 each, global batch 64)") == 1  # rank 0 alone logs
    resumed = torchrun(
        "-m",
        "glyphkit",
        "train",
        "--resume",
        run,
        "--epochs",
        "2",
        "--data-dir",
        tiny_data_dir,
        "--no-progress",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count(f"resuming {run} after epoch 1 of 2") == 1
    assert json.loads((run / rundir.HISTORY).read_text())["epoch"] == [1, 2]
    assert not list(run.glob(".*.tmp"))
    from_torchrun = json.loads((run / rundir.METRICS).read_text())  # rank 0's evaluation after training
    (run / rundir.METRICS).unlink()
    assert cli.main(["evaluate", str(run), "--data-dir", str(tiny_data_dir), "--no-progress"]) == 0
    assert json.loads((run / rundir.METRICS).read_text()) == from_torchrun
    # One process cannot continue a run of two: every epoch's batches and the schedule depend on it.
    capsys.readouterr()
    assert (
        cli.main(["train", "--resume", str(run), "--epochs", "3", "--data-dir", str(tiny_data_dir), "--no-progress"])
        == 2
    )
    assert "trained by 2 process(es), this is 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, message", [("--lr-finder", "the LR finder runs in one process"), ("--sync-bn", "--sync-bn needs CUDA GPUs")]
)
def test_what_torchrun_cannot_do_on_this_machine_is_one_error_line(
    flag, message, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; both refusals come before any process group
    monkeypatch.setenv("RANK", "0")
    code = cli.main(
        ["train", *TINY, "--data-dir", str(tiny_data_dir), "--output-dir", str(tmp_path / "run"), "--epochs", "1", flag]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {message}") and "Traceback" not in err
