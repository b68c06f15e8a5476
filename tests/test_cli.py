"""The command line, end to end on tiny data: flags, outputs, resume, the LR finder's question (with and without
a terminal), lr-find, evaluate, errors."""

import json
import os
import subprocess
import sys

import pytest
import torch

from glyphkit import cli
from glyphkit.cli import build_parser, config_from_args, main
from glyphkit.config import ConfigError

TINY = ["--split", "tiny", "--model", "glyphnet", "--batch-size", "64", "--no-progress"]
# A few seconds a run: 120 training and 40 test images, batches of 32.
SMALL = [
    "--split",
    "tiny",
    "--model",
    "glyphnet",
    "--batch-size",
    "32",
    "--limit-train",
    "120",
    "--limit-test",
    "40",
    "--no-progress",
]
ONE_THREAD = ["--num-threads", "1"]  # two threads on a busy 2-core machine are many times slower than one
# What an evaluation writes into the run folder (README, "Evaluation").
EVALUATION_FILES = (
    "metrics.json",
    "classification_report.txt",
    "misclassification_analysis.txt",
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
    "per_class_accuracy.png",
    "misclassified_examples.png",
    "reliability_diagram.png",
    "coverage_accuracy.png",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUGGESTED, CURRENT = 3e-4, 1e-3


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """--num-threads in an in-process run sets torch's threads for the whole pytest process: put them back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_help_lists_the_original_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--split",
        "--batch-size",
        "--epochs",
        "--lr",
        "--lr-finder",
        "--output-dir",
        "--seed",
        "--skip-eval",
        "--data-dir",
        "--resume",
        "--device",
        "--model",
    ):
        assert flag in out, flag


def test_defaults_are_the_original_specification():
    config = config_from_args(build_parser().parse_args(["train"]))
    assert (config.split, config.batch_size, config.epochs, config.lr, config.output_dir, config.seed) == (
        "balanced",
        128,
        50,
        1e-3,
        "outputs",
        42,
    )
    assert (config.weight_decay, config.scheduler, config.early_stopping_patience, config.dropout_rate) == (
        1e-4,
        "cosine",
        10,
        0.4,
    )
    assert (config.rotation_degree, config.affine_degree, config.translate, config.val_split) == (15, 10, 0.08, 0.1)


def test_explicit_flags_override_a_preset():
    args = build_parser().parse_args(["train", "--preset", "original", "--epochs", "3"])
    config = config_from_args(args)
    assert config.epochs == 3 and config.model == "enhanced" and config.preset == "original"
    config = config_from_args(build_parser().parse_args(["train", "--preset", "fast", "--weight-decay", "0"]))
    assert config.weight_decay == 0 and config.lr == 3e-3
    config = config_from_args(build_parser().parse_args(["train", "--preset", "best", "--epochs", "20"]))
    assert config.epochs == 20 and config.model == "glyphnet-wide" and config.lr == 3e-3  # the rest: the preset's
    config = config_from_args(build_parser().parse_args(["train", "--preset", "fast", "--progressive-size", "20"]))
    assert config.progressive_size == 20 and config.model == "glyphnet"
    config = config_from_args(build_parser().parse_args(["train", "--preset", "fast", "--no-augment"]))
    assert config.augment is False and config.lr == 3e-3
    assert config_from_args(build_parser().parse_args(["train", "--preset", "fast"])).augment is True
    assert config_from_args(build_parser().parse_args(["train", "--augment-share", "0.25"])).augment_share == 0.25


def test_the_fast_preset_trains_the_same_network_and_schedule_in_bf16_and_fp32():
    """README's timings of bf16 and fp32 runs compare one training: the precision is the only difference."""

    def config(*flags: str):
        return config_from_args(build_parser().parse_args(["train", "--preset", "fast", "--device", "cpu", *flags]))

    fp32 = config("--precision", "fp32")  # what a CPU without native bf16 runs
    assert (fp32.model, fp32.epochs, fp32.batch_size, fp32.lr) == ("glyphnet", 8, 256, 3e-3)
    assert config("--precision", "bf16") == fp32.replace(precision="bf16")


@pytest.mark.slow
def test_train_then_resume(tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        ["train", *TINY, "--data-dir", str(tiny_data_dir), "--epochs", "1", "--output-dir", str(run), "--skip-eval"]
    )
    assert code == 0
    for name in ("best_model.pth", "latest_checkpoint.pth", "config.json", "history.json", "training_history.png"):
        assert (run / name).is_file(), name
    code = main(
        [
            "train",
            "--resume",
            str(run),
            "--epochs",
            "2",
            "--data-dir",
            str(tiny_data_dir),
            "--skip-eval",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "after epoch 1 of 2" in capsys.readouterr().out
    assert json.loads((run / "history.json").read_text())["epoch"] == [1, 2]


@pytest.mark.slow
def test_lr_finder_without_a_terminal_takes_the_suggestion(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glyphkit",
            "train",
            *TINY,
            "--data-dir",
            str(tiny_data_dir),
            "--epochs",
            "1",
            "--output-dir",
            str(run),
            "--lr-finder",
            "--skip-eval",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no terminal to ask, so it is used" in proc.stdout
    choice = json.loads((run / "lr.json").read_text())
    assert choice["choice"] == "suggestion" and choice["lr"] == choice["suggestion"]
    assert (run / "lr_finder.png").stat().st_size > 10_000
    assert json.loads((run / "config.json").read_text())["lr"] == choice["lr"]


@pytest.mark.slow
def test_lr_finder_on_a_terminal_asks(tiny_data_dir, tmp_path, monkeypatch, capsys):
    import glyphkit.cli as cli

    monkeypatch.setattr(cli.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                *TINY,
                "--data-dir",
                str(tiny_data_dir),
                "--epochs",
                "1",
                "--output-dir",
                str(run),
                "--lr-finder",
                "--lr",
                "0.002",
                "--skip-eval",
            ]
        )
        == 0
    )
    choice = json.loads((run / "lr.json").read_text())
    assert choice["choice"] == "rejected" and choice["lr"] == 0.002


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "-1"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lr", "0"], "--lr"),
        (["--lr", "abc"], "--lr"),
        (["--val-split", "1.5"], "--val-split"),
        (["--weight-decay", "-0.1"], "--weight-decay"),
        (["--weight-decay", "nan"], "--weight-decay"),
        (["--label-smoothing", "1"], "--label-smoothing"),
        (["--label-smoothing", "-0.1"], "--label-smoothing"),
        (["--progressive-size", "28"], "--progressive-size"),
        (["--progressive-size", "4"], "--progressive-size"),
        (["--augment-share", "0"], "--augment-share"),
        (["--augment-share", "1.5"], "--augment-share"),
    ],
)
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_training_calibrates_and_calibrate_does_it_for_older_runs(tiny_data_dir, tmp_path, capsys):
    import torch

    run = tmp_path / "run"
    # 120 validation images: enough to calibrate on (workflows.MIN_CALIBRATION_IMAGES)
    assert (
        main(
            [
                "train",
                *TINY,
                "--data-dir",
                str(tiny_data_dir),
                "--epochs",
                "1",
                "--output-dir",
                str(run),
                "--skip-eval",
                "--val-split",
                "0.2",
            ]
        )
        == 0
    )
    assert "calibrated: temperature" in capsys.readouterr().out
    state = torch.load(run / "best_model.pth", weights_only=True)
    assert state["calibration"]["method"] == "temperature" and state["calibration"]["scale"] > 0  # one number
    del state["calibration"]  # as a run trained before glyphkit calibrated
    torch.save(state, run / "best_model.pth")
    assert main(["calibrate", str(run), "--data-dir", str(tiny_data_dir), "--no-progress"]) == 0
    assert "validation images" in capsys.readouterr().out
    assert torch.load(run / "best_model.pth", weights_only=True)["calibration"]["method"] == "temperature"
    # The opt-in method: a scale and a bias per class.
    assert main(["calibrate", str(run), "--data-dir", str(tiny_data_dir), "--no-progress", "--method", "vector"]) == 0
    assert "calibrated: vector scaling" in capsys.readouterr().out
    again = torch.load(run / "best_model.pth", weights_only=True)
    assert len(again["calibration"]["bias"]) == len(again["calibration"]["scale"]) == len(again["config"]["classes"])


# ---------------------------------------------------------------------------------------------- the LR question


def _type_answers(monkeypatch, *lines: str) -> list[str]:
    """Answer input() with `lines`, one per question, then end of input (Ctrl-D); returns the questions asked."""
    asked, waiting = [], list(lines)

    def answer(prompt: str) -> str:
        asked.append(prompt)
        if not waiting:
            raise EOFError
        return waiting.pop(0)

    monkeypatch.setattr("builtins.input", answer)
    return asked


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("", (SUGGESTED, "suggestion")),  # Enter takes the suggestion
        ("y", (SUGGESTED, "suggestion")),
        ("  2.5e-3 ", (2.5e-3, "typed")),  # a number is the rate to train with
        ("0.01", (0.01, "typed")),
        ("n", (CURRENT, "rejected")),  # no keeps the rate the run would have used
    ],
    ids=["enter", "y", "number", "decimal", "n"],
)
def test_the_terminal_question_takes_the_answer(monkeypatch, typed, expected):
    asked = _type_answers(monkeypatch, typed)
    assert cli.ask_accept_lr(SUGGESTED, CURRENT, interactive=True) == expected
    assert len(asked) == 1 and "3.00e-04" in asked[0] and "1.00e-03" in asked[0]


def test_an_answer_that_is_no_rate_is_asked_again(monkeypatch, capsys):
    """A typo must not train with a rate nobody chose: the question comes again, with what it accepts."""
    asked = _type_answers(monkeypatch, "fast", "-1", "0", "nan", "3e-4x", "4e-4")
    assert cli.ask_accept_lr(SUGGESTED, CURRENT, interactive=True) == (4e-4, "typed")
    assert len(asked) == 6
    out = capsys.readouterr().out
    assert out.count("could not read") == 5 and "'fast'" in out and "'3e-4x'" in out
    assert "Enter" in out and "n to keep 1.00e-03" in out


def test_ctrl_d_at_the_question_is_a_user_error(monkeypatch):
    _type_answers(monkeypatch)
    with pytest.raises(ConfigError, match="end of input") as error:
        cli.ask_accept_lr(SUGGESTED, CURRENT, interactive=True)
    assert "--lr 3.00e-04" in str(error.value)  # how to go on without being asked


def _train_on_a_terminal(data_dir, run, typed: bytes) -> subprocess.CompletedProcess:
    """`glyphkit train --lr-finder` in a fresh process whose stdin is a real terminal (a pseudo-terminal), with
    `typed` already typed on it; stdout and stderr are captured."""
    main_end, terminal = os.openpty()
    try:
        os.write(main_end, typed)
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "glyphkit",
                "train",
                *SMALL,
                *ONE_THREAD,
                "--data-dir",
                str(data_dir),
                "--output-dir",
                str(run),
                "--epochs",
                "1",
                "--lr-finder",
                "--skip-eval",
            ],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        os.close(main_end)
        os.close(terminal)


needs_pty = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals (os.openpty)")


@pytest.mark.slow
@needs_pty
def test_on_a_real_terminal_a_typo_is_asked_again_and_the_typed_rate_trains(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    proc = _train_on_a_terminal(tiny_data_dir, run, b"oops\n3e-3\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Use it? [Y/n or a number]") == 2 and "could not read 'oops'" in proc.stdout
    choice = json.loads((run / "lr.json").read_text())
    assert choice["lr"] == 3e-3 and choice["choice"] == "typed" and choice["source"] == "cli"
    assert json.loads((run / "config.json").read_text())["lr"] == 3e-3


@pytest.mark.slow
@needs_pty
def test_on_a_real_terminal_ctrl_d_is_one_error_line_and_exit_2(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    proc = _train_on_a_terminal(tiny_data_dir, run, b"\x04")  # Ctrl-D on an empty line: end of input
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no answer to the LR finder's question"), proc.stderr
    assert not (run / "lr.json").exists() and not list(run.glob("*.pth"))  # nothing chosen, nothing trained


# ---------------------------------------------------------------------------------------------- lr-find, evaluate


@pytest.mark.slow
def test_lr_find_writes_the_choice_and_the_curve(tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["lr-find", *SMALL, *ONE_THREAD, "--data-dir", str(tiny_data_dir), "--output-dir", str(run)]) == 0
    choice = json.loads((run / "lr.json").read_text())
    assert choice["lr"] == choice["suggestion"] and 1e-7 <= choice["lr"] <= 10  # inside the range tested
    assert choice["choice"] == "suggestion"
    figure = (run / "lr_finder.png").read_bytes()
    assert figure.startswith(PNG_MAGIC) and len(figure) > 10_000
    assert f"saved lr {choice['lr']:.2e}" in capsys.readouterr().out
    # no training, no run yet: the choice, its figure, and its TensorBoard curve
    assert sorted(p.name for p in run.iterdir()) == ["lr.json", "lr_finder", "lr_finder.png"]
    assert [p.name.startswith("events.out.tfevents.") for p in (run / "lr_finder").iterdir()] == [True]


def _assert_evaluated(run, test_images: int) -> None:
    """The evaluation's files are in `run`, and metrics.json describes `test_images` images."""
    for name in EVALUATION_FILES:
        assert (run / name).is_file(), name
        if name.endswith(".png"):
            assert (run / name).read_bytes().startswith(PNG_MAGIC), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_test_images"] == test_images and 0 <= metrics["accuracy"] <= 1


@pytest.mark.slow
def test_train_without_skip_eval_evaluates_at_the_end(tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            ["train", *SMALL, *ONE_THREAD, "--data-dir", str(tiny_data_dir), "--output-dir", str(run), "--epochs", "1"]
        )
        == 0
    )
    _assert_evaluated(run, test_images=40)
    out = capsys.readouterr().out
    assert "test accuracy" in out and f"reports and figures written to {run}" in out


@pytest.mark.slow
def test_evaluate_writes_metrics_and_figures(tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                *SMALL,
                *ONE_THREAD,
                "--data-dir",
                str(tiny_data_dir),
                "--output-dir",
                str(run),
                "--epochs",
                "1",
                "--skip-eval",
            ]
        )
        == 0
    )
    assert not any((run / name).exists() for name in EVALUATION_FILES)  # --skip-eval: the files come from evaluate
    capsys.readouterr()
    assert main(["evaluate", str(run), "--no-progress"]) == 0
    _assert_evaluated(run, test_images=40)
    assert f"reports and figures written to {run}" in capsys.readouterr().out
