"""Issue 5: bad input gets a clear error, a killed run loses nothing, checkpoints load safely.

Every run here is tiny (120 generated images, one thread) so the whole file takes seconds. The CLI is called
in-process through `glyphkit.cli.main` (exit code + captured output); the two tests that need a real signal
(SIGINT, SIGKILL) run it in a subprocess.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import pathlib
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from glyphkit import cli
from glyphkit import rundir as ckpt
from glyphkit.config import Config, ConfigError
from glyphkit.data import DataError, load_split
from glyphkit.synthetic import idx_bytes, write_emnist_split
from glyphkit.training import Trainer, TrainingDiverged

CHARS = "0123456789ABCDEFGHIJ"  # the `tiny` split of conftest's tiny_data_dir
# Keep every CLI run tiny: 120 images (108 train / 12 val), glyphnet, one thread (the CPU is shared).
FAST = [
    "--model",
    "glyphnet",
    "--batch-size",
    "32",
    "--limit-train",
    "120",
    "--limit-test",
    "20",
    "--no-progress",
    "--skip-eval",
    "--num-threads",
    "1",
]
IMAGES = "emnist-tiny-train-images-idx3-ubyte.gz"
LABELS = "emnist-tiny-train-labels-idx1-ubyte.gz"
MAPPING = "emnist-tiny-mapping.txt"


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No real cache or data folder leaks in; torch's thread count is restored after each test."""
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GLYPHKIT_DATA_DIR", raising=False)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `glyphkit ...argv`; argparse errors count as their exit code."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def train_args(data_dir, out, *extra, epochs=2) -> list:
    return ["train", "--split", "tiny", "--data-dir", data_dir, "--output-dir", out, "--epochs", epochs, *FAST, *extra]


def assert_user_error(code: int, err: str, *phrases: str, exit_code: int = 2) -> None:
    """The CLI's contract for a user's mistake: one `error:` line naming what is wrong, no traceback."""
    assert code == exit_code, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for phrase in phrases:
        assert phrase in err, f"{phrase!r} not in {err!r}"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime, to prove a folder was left untouched."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def checkpoints_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.pth")) if folder.exists() else []


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def assert_valid_checkpoint(path: Path, epoch: int) -> dict:
    state = ckpt.load_checkpoint(path)
    assert state["epoch"] == epoch
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    return state


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data_dir):
    """A finished 2-epoch CLI run folder (copy it before changing anything)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    code = cli.main([str(a) for a in train_args(tiny_data_dir, out)])
    assert code == 0
    return out


@pytest.fixture
def run_copy(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


@pytest.fixture
def data_copy(tiny_data_dir, tmp_path):
    """A private copy of the tiny data folder, free to damage."""
    folder = tmp_path / "data"
    shutil.copytree(tiny_data_dir, folder)
    return folder


# ------------------------------------------------------------------------------------------------ data


def test_unknown_split_names_split_where_it_looked_and_what_it_found(capsys, tiny_data_dir, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--split", "tinny", "--data-dir", tiny_data_dir, "--output-dir", out, *FAST)
    assert_user_error(code, err, "'tinny'", str(tiny_data_dir), "Splits found there: tiny")
    assert checkpoints_in(out) == []


def test_official_split_missing_offline_is_one_line(capsys, tiny_data_dir, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a local port nothing listens on: the download is refused at once
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/gzip.zip"
    monkeypatch.setenv("GLYPHKIT_EMNIST_URL", url)
    code, _, err = run_cli(
        capsys, "train", "--split", "letters", "--data-dir", tiny_data_dir, "--output-dir", tmp_path / "run", *FAST
    )
    assert_user_error(
        code,
        err,
        "'letters'",
        str(tiny_data_dir),
        "tiny",
        f"download failed: could not download {url}",
        str(tmp_path / "cache" / "gzip.zip"),
    )


def test_missing_data_folder(capsys, tmp_path):
    code, _, err = run_cli(capsys, *train_args(tmp_path / "nowhere", tmp_path / "run"))
    assert_user_error(code, err, str(tmp_path / "nowhere"), "does not exist", "--data-dir")


def test_incomplete_split_names_missing_file(capsys, data_copy, tmp_path):
    (data_copy / "emnist-tiny-test-labels-idx1-ubyte.gz").unlink()
    code, _, err = run_cli(capsys, *train_args(data_copy, tmp_path / "run"))
    assert_user_error(code, err, "incomplete", "emnist-tiny-test-labels-idx1-ubyte.gz")


def _truncate_gz(folder):
    data = (folder / IMAGES).read_bytes()
    (folder / IMAGES).write_bytes(data[: len(data) // 2])


def _corrupt_gz(folder):
    data = bytearray((folder / IMAGES).read_bytes())
    for i in range(100, 400):  # damage the deflate stream (zlib.error, not a gzip header problem)
        data[i] ^= 0x55
    (folder / IMAGES).write_bytes(bytes(data))


def _text_named_like_idx_gz(folder):
    (folder / IMAGES).write_text("these are my notes, not images\n" * 20)


def _text_named_like_idx(folder):
    (folder / IMAGES).unlink()
    (folder / IMAGES.removesuffix(".gz")).write_text("these are my notes, not images\n" * 20)


def _png_named_like_idx_gz(folder):
    from PIL import Image

    Image.new("L", (28, 28)).save(folder / "glyph.png")
    (folder / IMAGES).write_bytes(gzip.compress((folder / "glyph.png").read_bytes()))


def _wrong_magic(folder):  # a labels file where the images should be
    (folder / IMAGES).write_bytes((folder / LABELS).read_bytes())


def _truncated_idx_payload(folder):  # valid gzip, but the IDX inside is cut short
    data = gzip.decompress((folder / IMAGES).read_bytes())
    (folder / IMAGES).write_bytes(gzip.compress(data[:-1000]))


def _count_mismatch(folder):
    import numpy as np

    labels = np.frombuffer(gzip.decompress((folder / LABELS).read_bytes())[8:], dtype=np.uint8)
    (folder / LABELS).write_bytes(gzip.compress(idx_bytes(labels[:-7])))


def _labels_outside_mapping(folder):
    (folder / MAPPING).write_text("".join(f"{i} {ord(c)}\n" for i, c in enumerate(CHARS[:10])))


BAD_DATA = {
    "truncated gz": (_truncate_gz, IMAGES, "truncated"),
    "corrupt gz": (_corrupt_gz, IMAGES, "corrupt"),
    "text file named like an IDX .gz": (_text_named_like_idx_gz, IMAGES, "not gzip data"),
    "text file named like an IDX file": (_text_named_like_idx, IMAGES.removesuffix(".gz"), "wrong IDX magic"),
    "png named like an IDX .gz": (_png_named_like_idx_gz, IMAGES, "wrong IDX magic"),
    "wrong IDX magic": (_wrong_magic, IMAGES, "wrong IDX magic 0x00000801, expected images"),
    "truncated IDX payload": (_truncated_idx_payload, IMAGES, "truncated or corrupt"),
    "image/label count mismatch": (_count_mismatch, LABELS, "600 images but"),
    "labels outside the mapping": (_labels_outside_mapping, "emnist-tiny-train-labels-idx1", "outside the mapping"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_file_is_named_and_nothing_is_trained(capsys, data_copy, tmp_path, case):
    damage, filename, phrase = BAD_DATA[case]
    damage(data_copy)
    with pytest.raises(DataError) as info:
        load_split("tiny", data_copy)
    assert filename in str(info.value) and phrase in str(info.value)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *train_args(data_copy, out))
    assert_user_error(code, err, filename, phrase)
    assert checkpoints_in(out) == []


BAD_MAPPINGS = {
    "missing": None,
    "not two integers": "0 48\n1 B\n",
    "three columns": "0 48 x\n",
    "empty": "\n\n",
    "labels with a gap": "0 48\n2 50\n",
    "binary": b"\xff\xfe\x00garbage\x9c",
    "not a character code": "0 99999999\n",
    "a digit int() cannot read": "0 48\n1 \u00b2\n",  # '\u00b2'.isdigit() is True, int('\u00b2') raises
}


@pytest.mark.parametrize("case", list(BAD_MAPPINGS))
def test_bad_mapping_file_names_file_and_format(capsys, data_copy, tmp_path, case):
    content = BAD_MAPPINGS[case]
    if content is None:
        (data_copy / MAPPING).unlink()
    elif isinstance(content, bytes):
        (data_copy / MAPPING).write_bytes(content)
    else:
        (data_copy / MAPPING).write_text(content)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *train_args(data_copy, out))
    assert_user_error(code, err, MAPPING, "'label ascii_code'")
    assert checkpoints_in(out) == []


# ------------------------------------------------------------------------------------------------ CLI values


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--epochs", "-1"),
        ("--epochs", "0"),
        ("--epochs", "two"),
        ("--batch-size", "0"),
        ("--batch-size", "-8"),
        ("--lr", "0"),
        ("--lr", "-0.001"),
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--val-split", "0"),
        ("--val-split", "1"),
        ("--val-split", "1.5"),
        ("--val-split", "-0.1"),
    ],
)
def test_bad_cli_values_are_argparse_errors(capsys, tmp_path, flag, value):
    code, _, err = run_cli(capsys, "train", "--output-dir", tmp_path / "run", flag, value)
    assert code == 2
    assert "usage:" in err and f"argument {flag}" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_setting_that_config_rejects_is_one_error_line(capsys, tiny_data_dir, tmp_path):
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, tmp_path / "run", "--limit-train", "1"))
    assert_user_error(code, err, "limit_train must be >= 2")


# ------------------------------------------------------------------------------------------------ run folders


@pytest.mark.parametrize("content", ["null", "[]", "42"])
def test_config_json_that_is_no_object_is_one_error_line(capsys, run_copy, tiny_data_dir, content):
    (run_copy / "config.json").write_text(content)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, run_copy))
    assert_user_error(code, err, str(run_copy), "config.json is unreadable", "--resume", "--overwrite")
    assert snapshot(run_copy) == before
    with pytest.raises(ConfigError, match="instead of a JSON object"):
        Config.load(run_copy / "config.json")


@pytest.mark.parametrize("content", ["[1, 2]", '"text"'])
def test_history_json_that_is_no_object_falls_back_to_the_checkpoint(tmp_path, content):
    (tmp_path / "history.json").write_text(content)
    kept = {"epoch": [1], "val_acc": [0.5]}
    assert ckpt.read_history(tmp_path, {"history": kept}) == kept
    assert ckpt.read_history(tmp_path) is None


@pytest.mark.slow
def test_ctrl_d_at_the_lr_finder_prompt_is_one_error_line(capsys, tiny_data_dir, tmp_path, monkeypatch):
    def end_of_input(prompt):
        raise EOFError

    monkeypatch.setattr(cli.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", end_of_input)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, out, "--lr-finder", epochs=1))
    assert_user_error(code, err, "end of input", "--lr")
    assert checkpoints_in(out) == [] and not (out / "lr.json").exists()


def test_existing_run_with_different_config_is_not_overwritten(capsys, run_copy, tiny_data_dir):
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, run_copy, "--lr", "0.01"))
    assert_user_error(code, err, "different config (lr)", "--resume", "--overwrite")
    assert snapshot(run_copy) == before


def test_existing_run_with_same_config_still_asks(capsys, run_copy, tiny_data_dir):
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, run_copy))
    assert_user_error(code, err, "already holds a run", "--resume", "--overwrite")
    assert "different config" not in err  # derived fields (classes, width...) are not a difference
    assert snapshot(run_copy) == before


@pytest.mark.slow
def test_overwrite_replaces_the_run(capsys, run_copy, tiny_data_dir):
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, run_copy, "--lr", "0.01", "--overwrite", epochs=1))
    assert code == 0, err
    assert Config.load(run_copy / "config.json").lr == 0.01
    assert_valid_checkpoint(run_copy / ckpt.LATEST, epoch=1)


def test_output_dir_that_is_a_file(capsys, tiny_data_dir, tmp_path):
    target = tmp_path / "run"
    target.write_text("not a folder")
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, target))
    assert_user_error(code, err, str(target))
    assert target.read_text() == "not a folder"


def test_unwritable_output_dir(capsys, tiny_data_dir, tmp_path, monkeypatch):
    target = tmp_path / "locked" / "run"
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):  # chmod cannot stop root, so the refusal is simulated
        if self == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, target))
    assert_user_error(code, err, str(target), "Permission denied", "writable")


# ------------------------------------------------------------------------------------------------ resume


@pytest.mark.parametrize("exists", [True, False])
def test_resume_without_checkpoint(capsys, tmp_path, exists):
    folder = tmp_path / "empty_run"
    if exists:
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
    before = snapshot(folder) if exists else None
    code, _, err = run_cli(capsys, "train", "--resume", folder, *FAST)
    assert_user_error(code, err, str(folder), "has no latest_checkpoint.pth" if exists else "does not exist")
    if exists:
        assert snapshot(folder) == before
    else:
        assert not folder.exists()


def test_resume_names_the_training_flags_it_ignores(capsys, run_copy, tiny_data_dir):
    lr = Config.load(run_copy / "config.json").lr
    code, out, err = run_cli(
        capsys,
        "train",
        "--resume",
        run_copy,
        "--epochs",
        3,
        "--data-dir",
        tiny_data_dir,
        "--lr",
        "0.5",
        "--preset",
        "fast",
        "--seed",
        "0",
        "--weight-decay",
        "0",
        "--lr-finder",
        "--overwrite",
        "--no-progress",
        "--skip-eval",
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("warning: ignored with --resume: ")
    listed, advice = warnings[0].removeprefix("warning: ignored with --resume: ").split(". ", 1)
    assert set(re.findall(r"--[a-z-]+", listed)) == {
        "--lr",
        "--preset",
        "--seed",
        "--weight-decay",
        "--lr-finder",
        "--overwrite",
    }, warnings[0]
    assert "--epochs" in advice  # named as the one setting a resume changes
    assert Config.load(run_copy / "config.json").lr == lr  # ignored indeed
    assert_valid_checkpoint(run_copy / ckpt.LATEST, epoch=3)  # --epochs is honoured


def test_resume_with_only_the_flags_it_uses_warns_of_nothing(capsys, run_copy, tiny_data_dir):
    code, _, err = run_cli(
        capsys,
        "train",
        "--resume",
        run_copy,
        "--epochs",
        3,
        "--data-dir",
        tiny_data_dir,
        "--split",
        "tiny",
        "--model",
        "glyphnet",
        "--no-progress",
        "--skip-eval",
    )
    assert code == 0, err
    assert "warning" not in err


def test_resume_truncated_checkpoint(capsys, run_copy, tiny_data_dir):
    data = (run_copy / ckpt.LATEST).read_bytes()
    (run_copy / ckpt.LATEST).write_bytes(data[: len(data) // 3])
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--data-dir", tiny_data_dir, *FAST)
    assert_user_error(code, err, str(run_copy / ckpt.LATEST), "truncated, corrupt")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n"])
def test_resume_empty_or_text_checkpoint(capsys, run_copy, tiny_data_dir, content):
    (run_copy / ckpt.LATEST).write_bytes(content)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--data-dir", tiny_data_dir, *FAST)
    assert_user_error(code, err, str(run_copy / ckpt.LATEST), "not a checkpoint")
    assert snapshot(run_copy) == before


def test_resume_with_another_split(capsys, run_copy, tmp_path):
    other = write_emnist_split(tmp_path / "other", "tiny2", CHARS, train_per_class=6, test_per_class=1)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--split", "tiny2", "--data-dir", other, *FAST)
    assert_user_error(code, err, "does not fit", "split 'tiny' in the checkpoint vs 'tiny2'")
    assert snapshot(run_copy) == before


def test_resume_with_another_class_count(capsys, run_copy, tmp_path):
    ten = write_emnist_split(tmp_path / "ten", "tiny", CHARS[:10], train_per_class=12, test_per_class=2)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--data-dir", ten, *FAST)
    assert_user_error(code, err, "does not fit", "num_classes 20 in the checkpoint vs 10")
    assert snapshot(run_copy) == before


def test_resume_with_another_architecture(capsys, run_copy, tiny_data_dir):
    before = snapshot(run_copy)
    code, _, err = run_cli(
        capsys, "train", "--resume", run_copy, "--data-dir", tiny_data_dir, "--model", "enhanced", "--no-progress"
    )
    assert_user_error(code, err, "does not fit", "model 'glyphnet' in the checkpoint vs 'enhanced'")
    assert snapshot(run_copy) == before


def test_resume_checkpoint_whose_weights_do_not_fit_its_config(capsys, run_copy, tiny_data_dir):
    state = torch.load(run_copy / ckpt.LATEST, weights_only=True)
    state["config"]["width"] = 16  # the weights are width 32: written by another architecture
    torch.save(state, run_copy / ckpt.LATEST)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--data-dir", tiny_data_dir, *FAST)
    assert_user_error(code, err, str(run_copy / ckpt.LATEST), "does not fit the glyphnet network", "size mismatch")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize(
    "weights",
    [None, [1, 2, 3], torch.zeros(3), {"conv.weight": "not a tensor"}, {}],
    ids=["None", "list", "tensor", "dict of strings", "empty dict"],
)
def test_evaluate_checkpoint_whose_model_is_not_a_state_dict(capsys, run_copy, tiny_data_dir, weights):
    state = torch.load(run_copy / ckpt.BEST, weights_only=True)
    state["model"], state["ema"] = weights, None
    torch.save(state, run_copy / ckpt.BEST)
    code, _, err = run_cli(capsys, "evaluate", run_copy, "--data-dir", tiny_data_dir, "--no-progress")
    assert_user_error(code, err, str(run_copy / ckpt.BEST), "'model' entry", "use another checkpoint")


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_of_random_bytes_is_called_corrupt_not_unsafe(capsys, run_copy, tiny_data_dir):
    """Bytes that are no pickle at all (a file overwritten by something else) are a damaged checkpoint; torch's
    page of advice about weights_only (which says to file an issue) is not shown."""
    (run_copy / ckpt.BEST).write_bytes(b"not a checkpoint at all")
    code, _, err = run_cli(capsys, "evaluate", run_copy, "--data-dir", tiny_data_dir, "--no-progress")
    assert_user_error(code, err, str(run_copy / ckpt.BEST), "truncated, corrupt")
    assert "refused" not in err and "file an issue" not in err


def test_pickled_payload_is_refused_and_never_runs(capsys, run_copy, tiny_data_dir, tmp_path):
    state = torch.load(run_copy / ckpt.LATEST, weights_only=True)
    # The payload is live: an unsafe load runs it (on a copy, with its own marker)...
    probe_marker = tmp_path / "probe_marker"
    torch.save({**state, "extra": _Payload(probe_marker)}, tmp_path / "probe.pth")
    torch.load(tmp_path / "probe.pth", weights_only=False)
    assert probe_marker.exists()
    # ...and glyphkit never does.
    marker = tmp_path / "marker"
    torch.save({**state, "extra": _Payload(marker)}, run_copy / ckpt.LATEST)
    shutil.copy(run_copy / ckpt.LATEST, run_copy / ckpt.BEST)
    before = snapshot(run_copy)
    with pytest.raises(ckpt.CheckpointError, match="refused.*io.open"):
        ckpt.load_checkpoint(run_copy / ckpt.LATEST)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--data-dir", tiny_data_dir, *FAST)
    assert_user_error(code, err, str(run_copy / ckpt.LATEST), "refused", "could run code")
    code, _, err = run_cli(capsys, "evaluate", run_copy, "--data-dir", tiny_data_dir, "--no-progress")
    assert_user_error(code, err, "refused")
    assert not marker.exists()
    assert snapshot(run_copy) == before


def _torch_load_must_not_run(*args, **kwargs):
    raise AssertionError("torch.load ran on a torch that cannot load safely")


@pytest.mark.parametrize("version", ["2.5.1", "2.5.1+cu124", "2.2.0", "1.13.1"])
def test_a_torch_before_2_6_refuses_to_load_any_checkpoint(capsys, run_copy, tiny_data_dir, monkeypatch, version):
    """weights_only=True can be bypassed before torch 2.6 (CVE-2025-32434): there nothing is unpickled at all."""
    monkeypatch.setattr(ckpt, "torch_version", lambda: version)
    monkeypatch.setattr(torch, "load", _torch_load_must_not_run)
    with pytest.raises(ckpt.CheckpointError, match=re.escape(f"torch {version} cannot load checkpoints safely")):
        ckpt.load_checkpoint(run_copy / ckpt.BEST)
    code, _, err = run_cli(capsys, "evaluate", run_copy, "--data-dir", tiny_data_dir, "--no-progress")
    assert_user_error(code, err, str(run_copy / ckpt.BEST), "CVE-2025-32434", "torch>=2.6")


@pytest.mark.parametrize("version", ["2.6.0", "2.6.0+cpu", "2.14.1+cu130", "3.0.0"])
def test_a_torch_from_2_6_on_loads_checkpoints(run_copy, monkeypatch, version):
    monkeypatch.setattr(ckpt, "torch_version", lambda: version)
    assert ckpt.load_checkpoint(run_copy / ckpt.BEST)["config"]["split"] == "tiny"


# ------------------------------------------------------------------------------------------------ divergence


def _nan_from_epoch(monkeypatch, bad_epoch: int) -> None:
    """From `bad_epoch` on, the model's outputs are NaN (as after an exploding update)."""
    real = Trainer.train_one_epoch

    def train_one_epoch(self):
        if self.epoch + 1 == bad_epoch:
            self.model.register_forward_hook(lambda module, inputs, output: output * float("nan"))
        return real(self)

    monkeypatch.setattr(Trainer, "train_one_epoch", train_one_epoch)


@pytest.mark.slow
def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoints(capsys, tiny_data_dir, tmp_path, monkeypatch):
    _nan_from_epoch(monkeypatch, bad_epoch=2)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, out, epochs=3))
    assert_user_error(
        code,
        err,
        "loss became nan at epoch 2, step 1",
        "latest_checkpoint.pth holds the last good epoch (1), best_model.pth the best one",
        "--lr",
        exit_code=1,
    )
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=1)
    assert_valid_checkpoint(out / ckpt.BEST, epoch=1)
    assert json.loads((out / "history.json").read_text())["epoch"] == [1]
    monkeypatch.undo()  # the cause is gone (a lower lr, in real life): the previous latest checkpoint resumes
    code, _, err = run_cli(
        capsys,
        "train",
        "--resume",
        out,
        "--data-dir",
        tiny_data_dir,
        "--model",
        "glyphnet",
        "--no-progress",
        "--skip-eval",
        "--num-threads",
        "1",
    )
    assert code == 0, err
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=3)


def _infinite_weights_after_epoch(monkeypatch, bad_epoch: int) -> None:
    """Epoch `bad_epoch`'s last update leaves non-finite weights (every step's loss was finite)."""
    real = Trainer.train_one_epoch

    def train_one_epoch(self):
        result = real(self)
        if self.epoch + 1 == bad_epoch:
            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(float("inf"))
        return result

    monkeypatch.setattr(Trainer, "train_one_epoch", train_one_epoch)


@pytest.mark.parametrize(
    "damage, phrase",
    [
        (_nan_from_epoch, "loss became nan at epoch 1, step 1"),
        (_infinite_weights_after_epoch, "validation loss became nan at epoch 1"),
    ],
    ids=["training loss", "validation loss"],
)
def test_divergence_in_epoch_1_does_not_promise_a_best_model(
    capsys, tiny_data_dir, tmp_path, monkeypatch, damage, phrase
):
    damage(monkeypatch, 1)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, out, "--lr", "0.002"))
    assert_user_error(
        code,
        err,
        phrase,
        "No epoch completed",
        "no best_model.pth",
        "lower --lr (e.g. 2.0e-04)",
        "--overwrite",
        exit_code=1,
    )
    assert "hold the last good epoch" not in err
    assert not (out / ckpt.BEST).exists()
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=0)


def test_weights_broken_by_last_step_do_not_reach_checkpoints(tiny_data, tiny_config, tmp_path, monkeypatch):
    """Loss finite on every step, but the epoch's last update leaves non-finite weights: caught at validation."""
    _infinite_weights_after_epoch(monkeypatch, 2)
    trainer = Trainer(
        tiny_config.replace(epochs=3, num_threads=1), tiny_data, tmp_path / "run", progress=False, log=lambda msg: None
    )
    with pytest.raises(TrainingDiverged, match="epoch 2"):
        trainer.fit()
    assert_valid_checkpoint(tmp_path / "run" / ckpt.LATEST, epoch=1)
    assert_valid_checkpoint(tmp_path / "run" / ckpt.BEST, epoch=1)


# ------------------------------------------------------------------------------------------------ failed writes


@pytest.mark.slow
def test_rename_failure_mid_save_keeps_previous_checkpoint(capsys, tiny_data_dir, tmp_path, monkeypatch):
    """The process dies (here: os.replace raises) between writing the new checkpoint and renaming it."""
    out = tmp_path / "run"
    real_replace = os.replace
    calls, seen = [], {}

    def replace(src, dst):
        if str(dst).endswith(ckpt.LATEST):
            calls.append(dst)
            if len(calls) == 3:  # epoch 0, epoch 1, then the save of epoch 2 fails
                seen["before"] = Path(dst).read_bytes()
                raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, out, epochs=3))
    monkeypatch.undo()
    assert_user_error(code, err, str(out / ckpt.LATEST), "previous checkpoint is unchanged")
    assert (out / ckpt.LATEST).read_bytes() == seen["before"]
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=1)
    assert temp_files(out) == []
    code, out_text, err = run_cli(
        capsys,
        "train",
        "--resume",
        out,
        "--data-dir",
        tiny_data_dir,
        "--no-progress",
        "--skip-eval",
        "--num-threads",
        "1",
    )
    assert code == 0, err
    assert "resuming" in out_text
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=3)


def test_disk_full_keeps_previous_checkpoint(capsys, tiny_data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_write_bytes = pathlib.Path.write_bytes
    calls, seen = [], {}

    def write_bytes(self, data):
        if self.name.startswith(f".{ckpt.LATEST}."):
            calls.append(self)
            if len(calls) == 2:  # epoch 0 is written, epoch 1 finds the disk full
                seen["before"] = (self.parent / ckpt.LATEST).read_bytes()
                real_write_bytes(self, data[: len(data) // 2])  # a partial write, as a full disk leaves
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, out))
    monkeypatch.undo()
    assert_user_error(code, err, "No space left on device", str(out / ckpt.LATEST), "previous checkpoint is unchanged")
    assert (out / ckpt.LATEST).read_bytes() == seen["before"]
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=0)
    assert temp_files(out) == []


def test_disk_full_on_history_is_a_clear_error(capsys, tiny_data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_write_text = pathlib.Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(".history.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, out, epochs=1))
    monkeypatch.undo()
    assert_user_error(code, err, str(out / "history.json"), "No space left on device")
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=0)
    assert temp_files(out) == []


def test_atomic_writes_never_touch_the_umask(tmp_path, monkeypatch):
    """The umask is process-wide: reading it with os.umask sets it for a moment, for every thread."""

    def no_umask(mask):
        raise AssertionError("os.umask was called")

    previous = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", no_umask)
        ckpt.write_json(tmp_path / "a.json", {"x": 1})
        ckpt.atomic_write_text(tmp_path / "a.json", "replaced\n")
        ckpt.save_checkpoint({"model": {"w": torch.ones(2)}, "config": {}}, tmp_path / "c.pth")
    finally:
        monkeypatch.undo()
        os.umask(previous)
    for name in ("a.json", "c.pth"):  # the permissions the umask gives a new file: 0o666 & ~0o027
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
    assert (tmp_path / "a.json").read_text() == "replaced\n" and temp_files(tmp_path) == []


def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync", "folder" if stat.S_ISDIR(info.st_mode) else "file", info.st_ino))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    ckpt.write_json(tmp_path / "run" / "a.json", [1])
    folder = (tmp_path / "run").stat().st_ino
    assert events[0][:2] == ("fsync", "file")
    assert events[1:] == [("replace", "a.json"), ("fsync", "folder", folder)]


def test_folder_fsync_is_skipped_where_the_file_system_refuses_it(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    ckpt.write_json(tmp_path / "a.json", [1])
    assert json.loads((tmp_path / "a.json").read_text()) == [1]


@pytest.mark.parametrize("how", ["resume", "overwrite"])
def test_temp_files_a_killed_write_left_are_removed_when_a_run_starts(capsys, run_copy, tiny_data_dir, how):
    stale = [run_copy / ".latest_checkpoint.pth.k1ll3d00.tmp", run_copy / ".history.json.abcd1234.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    mine = run_copy / ".my-notes.tmp"
    mine.write_text("the user's own file")
    argv = (
        ["train", "--resume", run_copy, "--epochs", 3, "--data-dir", tiny_data_dir, "--no-progress", "--skip-eval"]
        if how == "resume"
        else train_args(tiny_data_dir, run_copy, "--overwrite", epochs=1)
    )
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert temp_files(run_copy) == [mine] and mine.read_text() == "the user's own file"
    assert f"removed 2 temporary file(s) a killed write left in {run_copy}" in out


# ------------------------------------------------------------------------------------------------ exact resume


class _Killed(KeyboardInterrupt):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("how", ["killed after epoch 2", "2 epochs then --epochs 3"])
def test_resume_matches_uninterrupted_run(tiny_data, tiny_config, tmp_path, how):
    config = tiny_config.replace(epochs=3, num_threads=1, deterministic=True)
    quiet = dict(progress=False, log=lambda msg: None)
    straight = Trainer(config, tiny_data, tmp_path / "straight", **quiet)
    straight.fit()

    def kill_after_two(trainer):
        if trainer.epoch == 2:
            raise _Killed

    if how.startswith("killed"):
        first = Trainer(config, tiny_data, tmp_path / "resumed", on_epoch_end=kill_after_two, **quiet)
        with pytest.raises(_Killed):
            first.fit()
        resumed = Trainer.resume(tmp_path / "resumed", tiny_data, **quiet)
    else:
        Trainer(config.replace(epochs=2), tiny_data, tmp_path / "resumed", **quiet).fit()
        resumed = Trainer.resume(tmp_path / "resumed", tiny_data, epochs=3, **quiet)
    assert resumed.epoch == 2
    resumed.fit()

    for name in (ckpt.LATEST, ckpt.BEST):
        a, b = (ckpt.load_checkpoint(tmp_path / run / name) for run in ("straight", "resumed"))
        assert a["epoch"] == b["epoch"]
        assert a["model"].keys() == b["model"].keys()
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
    final_a, final_b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    ha, hb = straight.history.to_dict(), resumed.history.to_dict()
    for key in ha:
        if key != "epoch_time":
            assert ha[key] == hb[key], key
    assert ha["epoch"] == [1, 2, 3]


# ------------------------------------------------------------------------------------------------ real signals


def _spawn(*argv, cwd: Path, env_extra: dict | None = None, script: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "GLYPHKIT_CACHE": str(cwd / "cache"), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.pop("GLYPHKIT_DATA_DIR", None)
    head = ["-c", script] if script else ["-m", "glyphkit"]
    # Ctrl-C as a terminal delivers it: a shell running the tests in the background (`cmd &`, nohup) starts them
    # with SIGINT ignored, which the child would inherit, and Python then never raises KeyboardInterrupt.
    return subprocess.Popen(
        [sys.executable, *head, *map(str, argv)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_epoch(run: Path, epoch: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(json.loads((run / "history.json").read_text())["epoch"]) >= epoch:
                return
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no epoch {epoch} after {timeout}s")


# SIGTERM is what schedulers, `kill` and torchrun send on preemption: handled like Ctrl-C, exit 128 + 15.
@pytest.mark.slow
@pytest.mark.parametrize("sent, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_epoch_saves_and_says_how_to_resume(capsys, tiny_data_dir, tmp_path, sent, status):
    out = tmp_path / "run"
    # Batches of 2: epochs of 54 steps, so the run (early stopping ends it after ~11 epochs) is still going when the
    # signal comes, even on a busy machine where this process polls slowly.
    proc = _spawn(*train_args(tiny_data_dir, out, "--batch-size", "2", epochs=200), cwd=tmp_path)
    try:
        _wait_for_epoch(out, 1, proc)
        proc.send_signal(sent)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "interrupted during epoch" in stdout and f"--resume {out}" in stdout
    done = ckpt.load_checkpoint(out / ckpt.LATEST)["epoch"]
    assert 1 <= done < 200
    assert temp_files(out) == []
    code, text, err = run_cli(
        capsys,
        "train",
        "--resume",
        out,
        "--data-dir",
        tiny_data_dir,
        "--epochs",
        done + 1,
        "--no-progress",
        "--skip-eval",
        "--num-threads",
        "1",
    )
    assert code == 0, err
    assert f"resuming {out} after epoch {done}" in text
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=done + 1)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    """(stdout, stderr) of a spawned run once it ends; killed if it does not end in time."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        proc.kill()


def _same_tensors(a, b) -> bool:
    """Bitwise equality of two checkpoint entries: nested dicts and lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same_tensors, a, b))
    return a == b


def _history_without_times(run: Path) -> dict:
    history = json.loads((run / "history.json").read_text())
    del history["epoch_time"]  # wall-clock seconds: the one thing two identical runs do not share
    return history


DETERMINISTIC_EPOCHS = 8  # an epoch takes well under a second here: room to be stopped mid-run


@pytest.mark.slow
def test_deterministic_resume_after_ctrl_c_in_fresh_processes_matches_one_run(tiny_data_dir, tmp_path):
    """README's promise, as a user meets it: `train --deterministic` stopped by Ctrl-C mid-run (a real SIGINT),
    continued with the command it printed (a new process), ends with the same checkpoints and history as the
    same command run uninterrupted in a third process."""
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    proc = _spawn(*train_args(tiny_data_dir, stopped, "--deterministic", epochs=DETERMINISTIC_EPOCHS), cwd=tmp_path)
    _wait_for_epoch(stopped, 1, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = _finish(proc)
    assert proc.returncode == 130, (stdout, stderr)
    done = ckpt.load_checkpoint(stopped / ckpt.LATEST)["epoch"]
    assert 1 <= done < DETERMINISTIC_EPOCHS, "the signal must land before the run ends, or nothing is resumed"
    assert f"interrupted during epoch {done + 1}" in stdout
    printed = re.search(r"Continue with: python -m glyphkit (train --resume \S+)$", stdout, re.MULTILINE)
    assert printed and printed.group(1) == f"train --resume {stopped}", stdout
    assert json.loads((stopped / "config.json").read_text())["deterministic"] is True

    resumed = _spawn(*printed.group(1).split(), "--no-progress", "--skip-eval", cwd=tmp_path)
    once = _spawn(*train_args(tiny_data_dir, straight, "--deterministic", epochs=DETERMINISTIC_EPOCHS), cwd=tmp_path)
    said = {run: _finish(run) for run in (resumed, once)}
    assert resumed.returncode == 0 and once.returncode == 0, said
    assert f"resuming {stopped} after epoch {done} of {DETERMINISTIC_EPOCHS}" in said[resumed][0]
    assert "ignored with --resume" not in said[resumed][1]

    for name in (ckpt.LATEST, ckpt.BEST):
        a, b = (torch.load(run / name, weights_only=True) for run in (straight, stopped))
        assert a["epoch"] == b["epoch"], name
        for key in ("model", "optimizer", "lr_scheduler", "early_stopping", "calibration"):
            assert _same_tensors(a.get(key), b.get(key)), (name, key)
    assert torch.load(stopped / ckpt.LATEST, weights_only=True)["epoch"] == DETERMINISTIC_EPOCHS
    history = _history_without_times(straight)
    assert history["epoch"] == list(range(1, DETERMINISTIC_EPOCHS + 1))
    assert _history_without_times(stopped) == history


KILL_DURING_SAVE = """
import os, signal, sys
from glyphkit import cli
real_replace, saves = os.replace, []
def replace(src, dst):
    if str(dst).endswith("latest_checkpoint.pth"):
        saves.append(dst)
        if len(saves) == 3:  # epoch 0 and 1 are saved; die with epoch 2 written but not yet renamed
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)
os.replace = replace
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigkill_mid_save_keeps_previous_checkpoint(capsys, tiny_data_dir, tmp_path):
    out = tmp_path / "run"
    proc = _spawn(*train_args(tiny_data_dir, out, epochs=3), cwd=tmp_path, script=KILL_DURING_SAVE)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, (stdout, stderr)
    assert len(temp_files(out)) == 1  # it died with the new file written, before the rename
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=1)
    code, text, err = run_cli(
        capsys,
        "train",
        "--resume",
        out,
        "--data-dir",
        tiny_data_dir,
        "--no-progress",
        "--skip-eval",
        "--num-threads",
        "1",
    )
    assert code == 0, err
    assert f"resuming {out} after epoch 1" in text
    assert_valid_checkpoint(out / ckpt.LATEST, epoch=3)
    assert temp_files(out) == []  # the killed write's file is gone with the resume


# ------------------------------------------------------------------------------------------------ tracebacks


@pytest.mark.slow
def test_debug_shows_traceback_and_plain_run_does_not(tmp_path, tiny_data_dir):
    argv = ["train", "--split", "tinny", "--data-dir", tiny_data_dir, "--output-dir", tmp_path / "run", *FAST]
    plain = _spawn(*argv, cwd=tmp_path)
    plain_out, plain_err = plain.communicate(timeout=120)
    debug = _spawn(*argv, "--debug", cwd=tmp_path)
    debug_out, debug_err = debug.communicate(timeout=120)
    assert plain.returncode == 2
    assert "Traceback" not in plain_err and plain_err.startswith("error: split 'tinny' not found")
    assert debug.returncode != 0
    assert "Traceback" in debug_err and "DataError" in debug_err


INTERNAL_BUG = """
import sys
from glyphkit import cli, workflows
def load_data(config, **kwargs):
    raise ValueError("an internal bug, not the user's mistake")
workflows.load_data = load_data
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_internal_value_error_is_a_crash_with_traceback(tmp_path, tiny_data_dir):
    """Only glyphkit's own error types are a user's mistake; a bare ValueError from inside is a bug to report."""
    proc = _spawn(*train_args(tiny_data_dir, tmp_path / "run"), cwd=tmp_path, script=INTERNAL_BUG)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "Traceback" in stderr and "ValueError: an internal bug" in stderr
    assert not stderr.startswith("error:")


def _raise_from_load_data(monkeypatch, exc: BaseException) -> None:
    def load_data(config, **kwargs):
        raise exc

    monkeypatch.setattr("glyphkit.workflows.load_data", load_data)


TORCH_OOM = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.1 GiB of which "
    "1.2 GiB is free.\nOf the allocated memory 70 GiB is allocated by PyTorch. If reserved but unallocated "
    "memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
)


@pytest.mark.parametrize(
    "exc", [torch.OutOfMemoryError(TORCH_OOM), RuntimeError(TORCH_OOM)], ids=["OutOfMemoryError", "RuntimeError"]
)
def test_cuda_out_of_memory_says_lower_the_batch_size(capsys, tiny_data_dir, tmp_path, monkeypatch, exc):
    _raise_from_load_data(monkeypatch, exc)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, tmp_path / "run", "--batch-size", "64"))
    assert_user_error(code, err, "ran out of memory", "Tried to allocate 2.00 GiB", "lower --batch-size (now 64)")
    assert "PYTORCH_CUDA_ALLOC_CONF" not in err


def test_other_cuda_runtime_errors_are_not_blamed_on_the_user(capsys, tiny_data_dir, tmp_path, monkeypatch):
    _raise_from_load_data(monkeypatch, RuntimeError("CUDA error: device-side assert triggered"))
    with pytest.raises(RuntimeError, match="device-side assert"):
        cli.main([str(a) for a in train_args(tiny_data_dir, tmp_path / "run")])


def test_device_cuda_without_a_gpu_is_one_error_line(capsys, tiny_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(capsys, *train_args(tiny_data_dir, tmp_path / "run", "--device", "cuda"))
    assert_user_error(code, err, "--device cuda", "no CUDA GPU", "--device cpu")
