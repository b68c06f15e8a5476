"""The lasting measuring tools in benchmarks/ run from the command line (`--quick` on tiny synthetic data) and write
a results record in the documented schema (glyphkit.results) with finite numbers in range. No speed is asserted."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glyphkit.results import load_result

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # each tool imports torch and trains or reads a network: seconds to a minute


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data_dir, tiny_data):
    """A tiny trained, calibrated glyphnet run on the tiny split (its config records the data folder)."""
    from glyphkit.config import Config
    from glyphkit.training import Trainer

    run = tmp_path_factory.mktemp("run") / "tinyrun"
    config = Config(
        split="tiny",
        data_dir=str(tiny_data_dir),
        model="glyphnet",
        width=8,
        epochs=1,
        batch_size=64,
        precision="fp32",
        device="cpu",
        val_split=0.2,
        seed=0,
    )
    Trainer(config, tiny_data, run, progress=False, log=lambda *_: None, max_batches=3).fit()
    return run


def run_tool(script: str, *args: str, tmp_path: Path) -> dict:
    """Run `python benchmarks/SCRIPT ARGS --quick --results FILE` and return the record it wrote."""
    record = tmp_path / f"{script}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--quick", "--results", str(record)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"results record: {record}" in done.stdout
    result = load_result(record)  # the schema, checked
    assert result["rows"] and result["machine"]["torch"] and result["notes"].startswith("a --quick smoke run")
    assert result["command"].startswith("python ") and script in result["command"] and "--quick" in result["command"]
    for row in result["rows"]:
        for value in row.values():
            assert not isinstance(value, float) or math.isfinite(value)
    return result


def column(result: dict, key: str) -> list:
    return [row[key] for row in result["rows"] if row.get(key) is not None]


def assert_fractions(values: list) -> None:
    assert values and all(0 <= v <= 1 for v in values), values


def test_paper_test(tiny_run, tiny_data_dir, tmp_path):
    result = run_tool(
        "paper_test.py",
        str(tiny_run),
        "--data-dir",
        str(tiny_data_dir),
        "--split",
        "tiny",
        "--out",
        str(tmp_path / "out"),
        tmp_path=tmp_path,
    )
    assert len(result["rows"]) == 4 and column(result, "count")[0] == 20  # --quick: 20 scans
    assert_fractions(column(result, "accuracy"))
    assert result["summary"]["scans"] == 20 and result["summary"]["lines"] == 3
    assert 0 <= result["summary"]["lines_counted_right"] <= 1 and result["data"].startswith("tiny test")

    # Issue 30's parts, each in its own record beside the scans part's (--results PATH: PATH's name plus -PART).
    part = lambda name: load_result(tmp_path / f"paper_test.py-{name}.json")  # noqa: E731
    conditions = part("conditions")
    assert column(conditions, "condition") == [
        "28x28 arrays",
        "plain",
        "ruled",
        "squared",
        "chalk",
        "shadow",
        "tilted",
        "small",
        "jpeg",
        "sticky",
        "cropped",
    ]
    assert set(column(conditions, "glyphs")) == {2} and conditions["rows"][1]["vs_plain"] == 0  # --quick: 2 each
    assert_fractions(column(conditions, "accuracy"))
    lines = part("lines")
    assert column(lines, "lines") == ["gapped", "touching"] and set(column(lines, "count")) == {3}
    assert_fractions(column(lines, "counted_right"))
    assert all(v >= 0 for key in ("cer", "cer_28x28", "cer_vs_28x28") for v in column(lines, key))
    pages = part("pages")
    # --quick: 3 pages, one on each paper, then 3 more turned (the first three turns are all 3 degrees), and 3 more
    # on a desk, whose turn is not counted
    assert column(pages, "paper") == [
        "plain",
        "ruled",
        "squared",
        "all",
        "all, turned 3 degrees",
        "all, turned 3-9 degrees",
        "plain, on a desk",
        "ruled, on a desk",
        "squared, on a desk",
        "all, on a desk",
    ]
    assert column(pages, "pages") == [1, 1, 1, 3, 3, 3, 1, 1, 1, 3]
    assert_fractions(column(pages, "lines_right"))
    assert_fractions([row["turn_found"] for row in pages["rows"][:6]])
    assert all("turn_found" not in row for row in pages["rows"][6:])
    assert 9 <= pages["rows"][-1]["lines"] <= 15  # 3 pages of 3-5 lines
    blank = part("blank")
    assert column(blank, "paper") == ["plain", "ruled", "squared", "textured", "shadowed", "desk"]
    assert_fractions(column(blank, "nothing_read"))
    (speed,) = part("speed")["rows"]
    assert speed["image"].startswith("1200x900 photo") and speed["calls"] == 1  # --quick: a smaller page, once
    assert 0 < speed["min_s"] <= speed["median_s"] <= speed["max_s"]


def test_paper_test_refuses_an_unknown_part(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "paper_test.py"), "RUN", "--data-dir", ".", "--parts", "lines,ink"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "unknown part(s) ink" in done.stderr


def test_export_parity(tiny_run, tiny_data_dir, tmp_path):
    result = run_tool(
        "export_parity.py",
        str(tiny_run),
        "--data-dir",
        str(tiny_data_dir),
        "--out",
        str(tmp_path / "out"),
        tmp_path=tmp_path,
    )
    (row,) = result["rows"]  # --quick: ONNX only
    assert row["format"] == "ONNX" and row["run"] == "tinyrun" and row["images"] == 64
    assert_fractions([row["same_top1_as_evaluate"], row["same_top1_as_fp32"], row["export_accuracy"]])
    assert row["same_top1_as_fp32"] > 0.9  # an fp32 export answers as the fp32 network does
    assert 0 <= row["max_probability_difference"] < 1e-3


def test_drawing_latency(tiny_run, tiny_data_dir, tmp_path):
    result = run_tool(
        "drawing_latency.py", str(tiny_run), "--data-dir", str(tiny_data_dir), "--split", "tiny", tmp_path=tmp_path
    )
    (row,) = result["rows"]
    assert row["glyphs"] == 5 and row["model"] == "glyphnet"  # --quick: 10 glyphs, 5 of them warm-up
    assert 0 < row["median_ms"] <= row["p90_ms"] < 60_000 and row["mean_ms"] > 0
    assert row["accuracy"] in {k / 5 for k in range(6)}  # a share of the 5 glyphs read right


def test_calibration(tiny_run, tiny_data_dir, tmp_path):
    result = run_tool(
        "calibration.py",
        str(tiny_run),
        "--data-dir",
        str(tiny_data_dir),
        "--out",
        str(tmp_path / "out"),
        tmp_path=tmp_path,
    )
    assert column(result, "method") == [
        "none",
        "temperature scaling",
        "temperature fitted on the test split (bound)",
        "vector scaling",
    ]
    assert_fractions(column(result, "ece"))
    assert_fractions(column(result, "accuracy"))


def test_fp32_levers(tiny_data_dir, tmp_path):
    result = run_tool(
        "fp32_levers.py",
        "--data-dir",
        str(tiny_data_dir),
        "--split",
        "tiny",
        "--only",
        "inference",
        "--out",
        str(tmp_path / "out"),
        tmp_path=tmp_path,
    )
    levers = column(result, "lever")
    assert "batch norms kept as layers (not folded)" in levers
    assert not [lever for lever in levers if "compiled" in lever]  # --quick leaves out the compiler
    assert result["rows"][0]["vs_baseline"] == 1.0 and all(v > 0 for v in column(result, "images_per_s"))
    assert set(column(result, "part")) == {"inference"}


def test_time_to_90_levers(tiny_data_dir, tmp_path):
    result = run_tool(
        "time_to_90_levers.py",
        "--data-dir",
        str(tiny_data_dir),
        "--split",
        "tiny",
        "--levers",
        "preset",
        "--precision",
        "fp32",
        "--out",
        str(tmp_path / "out"),
        tmp_path=tmp_path,
    )
    (row,) = result["rows"]
    assert row["key"] == "preset" and row["precision"] == "fp32" and row["epochs"] == 2  # --quick: 2 epochs
    assert_fractions([row["peak_test_acc"], row["final_test_acc"]])
    assert row["total_wall_s"] > 0 and row["median_epoch_s"] > 0


def test_preset_run(tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    result = run_tool(
        "preset_run.py",
        "--preset",
        "best",
        "--data-dir",
        str(tiny_data_dir),
        "--splits",
        "tiny",
        "--precision",
        "fp32",
        "--out",
        str(out),
        tmp_path=tmp_path,
    )
    (row,) = result["rows"]
    metrics = json.loads((out / "best-tiny" / "metrics.json").read_text())  # the user's own command wrote it
    assert row["split"] == "tiny" and row["best_epoch"] == 1 and row["wall_s"] > 0  # --quick: one epoch
    assert row["test_acc"] == metrics["accuracy"] and row["test_acc_tta"] == metrics["tta_metrics"]["accuracy"]
    assert_fractions([row["best_val_acc"], row["balanced_acc"], row["balanced_acc_tta"]])
    summary = result["summary"]  # what README's presets table reads, named by the precision the run used
    assert summary["headline_fp32_test_acc_tta"] == row["test_acc_tta"] and summary["headline_fp32_total_s"] > 0
    assert summary["model"] == "glyphnet-wide" and summary["preset"] == "best"


def test_quick_runs_write_no_record_unless_asked(tiny_run, tiny_data_dir, tmp_path):
    """Smoke runs never touch the committed records: without --results, --quick writes none."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    before = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "drawing_latency.py"),
            str(tiny_run),
            "--data-dir",
            str(tiny_data_dir),
            "--split",
            "tiny",
            "--quick",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "results record" not in done.stdout
    assert sorted((ROOT / "benchmarks" / "results").glob("*.json")) == before
