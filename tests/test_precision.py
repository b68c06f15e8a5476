"""--precision: fp32 can be forced on any machine (to measure what a laptop without native bf16 gets), bf16 can be
forced, runs written before the setting keep their fp32, and training says which precision runs and how long an
epoch will take."""

from __future__ import annotations

import json

import pytest
import torch

from glyphkit import cli
from glyphkit.config import Config, ConfigError
from glyphkit.inference import load_predictor
from glyphkit.runtime import autocast_dtype
from glyphkit.training import ESTIMATE_STEPS, Trainer

CPU = torch.device("cpu")


def test_fp32_and_bf16_are_forced_on_the_cpu_and_auto_follows_the_hardware(monkeypatch):
    from glyphkit import runtime

    assert autocast_dtype(CPU, "fp32") is None
    assert autocast_dtype(CPU, "bf16") is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)  # a laptop's AVX2 CPU
    assert autocast_dtype(CPU, "auto") is None and autocast_dtype(CPU, "bf16") is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)  # AVX-512 BF16 / AMX
    assert autocast_dtype(CPU, "auto") is torch.bfloat16 and autocast_dtype(CPU, "fp32") is None


def test_unknown_precision_is_refused_and_old_runs_keep_fp32():
    with pytest.raises(ConfigError, match="precision must be one of auto, bf16, fp32"):
        Config(precision="fp16").validate()
    assert Config.from_dict({"mixed_precision": False}).precision == "fp32"  # written before --precision
    assert Config.from_dict({"mixed_precision": True}).precision == "auto"


@pytest.mark.slow
def test_train_with_precision_fp32_records_it_and_says_so(tiny_data_dir, tmp_path, capsys, monkeypatch):
    from glyphkit import runtime

    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)  # fp32 must win even where bf16 is native
    run = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "--split",
                "tiny",
                "--data-dir",
                str(tiny_data_dir),
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--model",
                "glyphnet",
                "--precision",
                "fp32",
                "--output-dir",
                str(run),
                "--skip-eval",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["precision"] == "fp32"
    assert "on cpu (fp32)" in out
    estimate = [line for line in out.splitlines() if line.startswith("an epoch will take about")]
    assert len(estimate) == 1 and f"first {ESTIMATE_STEPS} batches, fp32" in estimate[0]
    assert load_predictor(run, device="cpu").amp_dtype is None
    assert load_predictor(run, device="cpu", precision="bf16").amp_dtype is torch.bfloat16  # evaluate --precision


@pytest.mark.slow
def test_a_cpu_without_native_bf16_is_named_at_the_start(tiny_data, tiny_config, tmp_path, monkeypatch):
    from glyphkit import runtime, workflows

    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(workflows, "cpu_supports_bf16", lambda: False)
    lines: list[str] = []
    trainer = Trainer(
        tiny_config.replace(precision="auto", epochs=1),
        tiny_data,
        tmp_path / "a",
        progress=False,
        log=lines.append,
        max_batches=2,
    )
    workflows.train(trainer, log=lines.append)
    assert "(fp32: this CPU has no native bf16)" in lines[0]
    lines.clear()
    trainer = Trainer(
        tiny_config.replace(precision="bf16", epochs=1),
        tiny_data,
        tmp_path / "b",
        progress=False,
        log=lines.append,
        max_batches=2,
    )
    workflows.train(trainer, log=lines.append)
    assert "bf16, emulated" in lines[0] and "--precision fp32 is faster here" in lines[0]
