"""Smoke test of the benchmark on tiny data: it runs every part and writes its results (no speed asserted)."""

import json

import pytest

from glyphkit.cli import main
from glyphkit.results import load_result, results_dir


@pytest.mark.slow
def test_bench_quick_writes_json_and_markdown(tiny_data_dir, tmp_path):
    out = tmp_path / "bench"
    assert (
        main(
            [
                "bench",
                "--split",
                "tiny",
                "--data-dir",
                str(tiny_data_dir),
                "--quick",
                "--output-dir",
                str(out),
                "--no-progress",
                "--precision",
                "fp32",
                "--results",
                str(tmp_path / "record.json"),
            ]
        )
        == 0
    )
    result = json.loads((out / "bench.json").read_text())
    rows = result["throughput"]
    assert {"original", "enhanced", "enhanced28", "default"} <= set(rows)
    for key in ("enhanced", "enhanced28", "default"):  # fp32 side by side with bf16 where the machine has it
        assert "fp32" in {r["precision"] for k, r in rows.items() if k in (key, key + "_fp32")}
    assert all(r["train_images_per_s"] > 0 for r in result["throughput"].values())
    assert result["throughput"]["enhanced28"]["input_size"] == 28
    assert result["throughput"]["default"]["model"] == "glyphnet"  # (c) is the default network
    assert result["throughput"]["default"]["infer_images_per_s"] > 0
    assert result["throughput"]["default"]["infer_compiled_images_per_s"] > 0
    exported = result["exported_inference"]  # the ONNX export beside PyTorch eager, batch 256 and one glyph
    for runtime in ("pytorch_eager", "pytorch_eager_fp32", "onnxruntime"):
        assert exported[runtime]["batch256_images_per_s"] > 0 and exported[runtime]["batch1_latency_ms"] > 0
    assert exported["precision"]["onnxruntime"] == "fp32"
    (run,) = result["accuracy"]  # one time-to-accuracy run, in the precision asked for
    assert run["precision"] == "fp32" and run["config"]["precision"] == "fp32"
    assert run["epochs"][0]["epoch"] == 1 and "time_to_90_s" in run
    assert run["time_to_90_s"] is None or run["time_to_90_s"] <= run["epochs"][0]["wall_s"]
    assert 0 <= run["final"]["plain"]["test_acc"] <= 1
    table = (out / "bench.md").read_text()
    assert "(a) original" in table and "(b28)" in table and "Time to 90% test accuracy" in table
    assert "| ONNX export in onnxruntime | fp32 |" in table
    assert "| fast | glyphnet, 1 | fp32 |" in table  # the preset, its network, the quick run's 1 epoch
    assert "None" not in table and result["machine"]["torch"] in table
    record = load_result(tmp_path / "record.json")  # the same numbers as a results record
    parts = [r["part"] for r in record["rows"]]
    assert parts.count("throughput") == len(rows)  # one row per pipeline and precision measured
    assert parts.count("exported inference") == 3 and parts.count("time to 90%") == 1
    (a,) = [r for r in record["rows"] if r["what"].startswith("(a)")]
    assert a["vs_original"] == 1.0 and a["train_images_per_s"] == rows["original"]["train_images_per_s"]
    (acc,) = [r for r in record["rows"] if r["part"] == "time to 90%"]
    assert acc["test_acc"] == run["final"]["plain"]["test_acc"] and acc["precision"] == "fp32"
    assert record["machine"]["native_bf16"] == result["machine"]["native_bf16"] and "--quick" in record["command"]


@pytest.mark.slow
def test_bench_time_to_accuracy_alone_trains_the_preset_asked_for(tiny_data_dir, tmp_path):
    out = tmp_path / "bench"
    committed = lambda: set(results_dir().glob("*.json")) if results_dir() else set()  # noqa: E731
    records = committed()
    assert (
        main(
            [
                "bench",
                "--split",
                "tiny",
                "--data-dir",
                str(tiny_data_dir),
                "--quick",
                "--output-dir",
                str(out),
                "--no-progress",
                "--precision",
                "fp32",
                "--skip-throughput",
                "--preset",
                "best",
            ]
        )
        == 0
    )
    result = json.loads((out / "bench.json").read_text())
    assert "throughput" not in result and "exported_inference" not in result
    (run,) = result["accuracy"]
    assert run["config"]["preset"] == "best" and run["config"]["model"] == "glyphnet-wide"  # the best preset's own
    assert isinstance(result["machine"]["cpu_flags"], list)  # which vector units (bf16 or not) ran it
    table = (out / "bench.md").read_text()
    assert "| best | glyphnet-wide, 1 | fp32 |" in table and "(a) original" not in table
    assert "--skip-throughput --preset best --precision fp32" in result["command"]
    # a quick run writes no record unless --results is given: the committed ones are left alone
    assert not list(out.glob("bench-*.json")) and committed() == records
