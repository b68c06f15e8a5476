"""The command line, end to end on tiny data: flags, outputs, resume, LR finder without a terminal, errors."""

import json
import subprocess
import sys

import pytest

from glyphkit.cli import build_parser, config_from_args, main

TINY = ["--split", "tiny", "--model", "glyphnet", "--batch-size", "64", "--no-progress"]


def test_help_lists_the_original_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--split", "--batch-size", "--epochs", "--lr", "--lr-finder", "--output-dir", "--seed",
                 "--skip-eval", "--data-dir", "--resume", "--device", "--model"):
        assert flag in out, flag


def test_defaults_are_the_original_specification():
    config = config_from_args(build_parser().parse_args(["train"]))
    assert (config.split, config.batch_size, config.epochs, config.lr, config.output_dir, config.seed) == \
        ("balanced", 128, 50, 1e-3, "outputs", 42)
    assert (config.weight_decay, config.scheduler, config.early_stopping_patience, config.dropout_rate) == \
        (1e-4, "cosine", 10, 0.4)
    assert (config.rotation_degree, config.affine_degree, config.translate, config.val_split) == (15, 10, 0.08, 0.1)


def test_explicit_flags_override_a_preset():
    args = build_parser().parse_args(["train", "--preset", "original", "--epochs", "3"])
    config = config_from_args(args)
    assert config.epochs == 3 and config.model == "enhanced" and config.preset == "original"
    config = config_from_args(build_parser().parse_args(["train", "--preset", "fast", "--weight-decay", "0"]))
    assert config.weight_decay == 0 and config.lr == 3e-3


def test_train_then_resume(tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", *TINY, "--data-dir", str(tiny_data_dir), "--epochs", "1", "--output-dir", str(run),
                 "--skip-eval"])
    assert code == 0
    for name in ("best_model.pth", "latest_checkpoint.pth", "config.json", "history.json", "training_history.png"):
        assert (run / name).is_file(), name
    code = main(["train", "--resume", str(run), "--epochs", "2", "--data-dir", str(tiny_data_dir), "--skip-eval",
                 "--no-progress"])
    assert code == 0
    assert "after epoch 1 of 2" in capsys.readouterr().out
    assert json.loads((run / "history.json").read_text())["epoch"] == [1, 2]


def test_lr_finder_without_a_terminal_takes_the_suggestion(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "glyphkit", "train", *TINY, "--data-dir", str(tiny_data_dir),
                           "--epochs", "1", "--output-dir", str(run), "--lr-finder", "--skip-eval"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "no terminal to ask, so it is used" in proc.stdout
    choice = json.loads((run / "lr.json").read_text())
    assert choice["accepted"] and choice["lr"] == choice["suggestion"]
    assert (run / "lr_finder.png").stat().st_size > 10_000
    assert json.loads((run / "config.json").read_text())["lr"] == choice["lr"]


def test_lr_finder_on_a_terminal_asks(tiny_data_dir, tmp_path, monkeypatch, capsys):
    import glyphkit.cli as cli

    monkeypatch.setattr(cli.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    run = tmp_path / "run"
    assert main(["train", *TINY, "--data-dir", str(tiny_data_dir), "--epochs", "1", "--output-dir", str(run),
                 "--lr-finder", "--lr", "0.002", "--skip-eval"]) == 0
    choice = json.loads((run / "lr.json").read_text())
    assert not choice["accepted"] and choice["lr"] == 0.002


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "-1"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "abc"], "--lr"),
    (["--val-split", "1.5"], "--val-split"),
    (["--weight-decay", "-0.1"], "--weight-decay"),
    (["--weight-decay", "nan"], "--weight-decay"),
])
def test_bad_values_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    code = main(["train", "--split", "tiny", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: split 'tiny' not found") and "Traceback" not in err
    assert "--data-dir" in err


def test_no_subcommand_means_train(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    assert main(["--split", "nosuch", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "r")]) == 2
    assert "nosuch" in capsys.readouterr().err


def test_lr_find_then_train_uses_the_saved_rate_and_an_explicit_lr_wins(tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    data = ["--data-dir", str(tiny_data_dir), "--output-dir", str(run)]
    assert main(["lr-find", *TINY, *data]) == 0
    choice = json.loads((run / "lr.json").read_text())
    assert choice["lr"] != 1e-3  # the default: training must not fall back to it
    capsys.readouterr()
    # A folder holding only the LR finder's files is no run yet: training starts there without --overwrite.
    assert main(["train", *TINY, *data, "--epochs", "1", "--skip-eval"]) == 0
    out = capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["lr"] == choice["lr"]
    assert f"learning rate {choice['lr']:.2e} from {run / 'lr.json'}" in out
    assert main(["train", *TINY, *data, "--epochs", "1", "--skip-eval", "--overwrite", "--lr", "0.0123"]) == 0
    out = capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["lr"] == 0.0123
    assert "learning rate 1.23e-02 (given with --lr" in out
    assert json.loads((run / "lr.json").read_text()) == choice  # the LR finder's choice is kept, not replaced


def test_training_calibrates_and_calibrate_does_it_for_older_runs(tiny_data_dir, tmp_path, capsys):
    import torch

    run = tmp_path / "run"
    assert main(["train", *TINY, "--data-dir", str(tiny_data_dir), "--epochs", "1", "--output-dir", str(run),
                 "--skip-eval"]) == 0
    assert "calibrated: temperature" in capsys.readouterr().out
    state = torch.load(run / "best_model.pth", weights_only=True)
    assert state["temperature"] > 0
    del state["temperature"]  # as a run trained before glyphkit calibrated
    torch.save(state, run / "best_model.pth")
    assert main(["calibrate", str(run), "--data-dir", str(tiny_data_dir), "--no-progress"]) == 0
    assert "validation images" in capsys.readouterr().out
    assert torch.load(run / "best_model.pth", weights_only=True)["temperature"] > 0
