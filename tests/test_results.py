"""Results records (glyphkit.results): what a benchmark writes is the documented schema, and a broken record is
refused with a message that names the file."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from glyphkit import results
from glyphkit.results import ResultError, format_value, load_result, machine_info, write_result

COLUMNS = [
    {"key": "lever", "header": "lever"},
    {"key": "test_acc", "header": "test accuracy", "format": "percent"},
    {"key": "speedup", "header": "vs baseline", "format": "ratio"},
]


def _write(path, **changes):
    fields = dict(
        what="A test record.",
        command="python benchmarks/x.py --quick",
        columns=COLUMNS,
        rows=[{"lever": "baseline", "test_acc": 0.9057, "speedup": 1.0}, {"lever": "wide", "test_acc": None}],
        summary={"epochs": 3},
        data="tiny test, 200 images",
    )
    return write_result(path, **{**fields, **changes})


def test_a_written_record_has_the_schema_and_reads_back(tmp_path):
    path = _write(tmp_path / "sub" / "x.json")
    record = json.loads(path.read_text())
    assert list(record) == [
        "schema",
        "what",
        "command",
        "commit",
        "date",
        "machine",
        "data",
        "notes",
        "columns",
        "rows",
        "summary",
    ]
    assert record["schema"] == 1 and record["notes"] is None and record["summary"] == {"epochs": 3}
    assert record["columns"][0] == {"format": "text", "key": "lever", "header": "lever"}  # text by default
    assert record["rows"][0]["test_acc"] == 0.9057 and record["rows"][1]["test_acc"] is None
    assert len(record["date"]) == 10 and record["date"][4] == "-"
    assert load_result(path) == record
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # written atomically, nothing left


def test_numpy_and_torch_numbers_are_written_as_plain_numbers(tmp_path):
    import numpy as np

    path = _write(tmp_path / "x.json", rows=[{"lever": "a", "test_acc": np.float32(0.5), "speedup": torch.tensor(2.0)}])
    assert load_result(path)["rows"][0] == {"lever": "a", "test_acc": 0.5, "speedup": 2.0}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"rows": [{"lever": "a", "accuracy": 0.9}]}, "no column: accuracy"),
        ({"columns": [{"key": "lever", "header": "lever", "format": "percentage"}], "rows": []}, "unknown format"),
        ({"rows": [{"lever": "a", "test_acc": float("nan")}]}, "not a finite number"),
        ({"rows": [{"lever": "a", "test_acc": [0.9]}]}, "not a JSON scalar"),
        ({"summary": {"profile": {"a": 1}}}, "not a JSON scalar"),
    ],
)
def test_a_record_off_the_schema_is_refused_before_anything_is_written(tmp_path, changes, message):
    with pytest.raises(ResultError, match=message):
        _write(tmp_path / "x.json", **changes)
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.pop("machine"), "missing key"),
        (lambda r: r.update(schema=2), "schema is 2"),
        (lambda r: r.update(date="2 Dec 2026"), "not YYYY-MM-DD"),
        (lambda r: r["machine"].pop("native_bf16"), "machine lacks native_bf16"),
        (lambda r: r["rows"].append({"typo": 1}), "no column: typo"),
        (lambda r: r.update(extra=1), "unknown key"),
    ],
)
def test_loading_a_broken_record_names_the_file_and_the_fault(tmp_path, edit, message):
    path = _write(tmp_path / "broken.json")
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ResultError, match=message) as info:
        load_result(path)
    assert str(info.value).startswith(f"{path}: ")


def test_loading_a_file_that_is_not_json_names_it(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ResultError, match="bad.json: not a readable JSON file"):
        load_result(path)


def test_machine_info_describes_this_machine():
    info = machine_info("cpu")
    assert list(info) == ["cpu", "cores", "native_bf16", "cpu_flags", "torch", "device", "gpu"]
    assert info["device"] == "cpu" and info["gpu"] is None and info["torch"] == torch.__version__
    assert isinstance(info["native_bf16"], bool) and info["cores"] >= 1 and info["cpu"]
    assert info["cpu_flags"] == sorted(info["cpu_flags"])
    assert set(info["cpu_flags"]) <= {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


def test_git_commit_is_the_checkouts_head_and_says_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    assert results.git_commit(tmp_path) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert results.git_commit(tmp_path) == head
    record = tmp_path / "benchmarks" / "results" / "tool-run.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "b")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    record.write_text('{"rows": []}')  # a record the same measuring run wrote a moment ago
    assert results.git_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("changed")
    assert results.git_commit(tmp_path) == head + "+dirty"


def test_default_result_path_is_under_benchmarks_results():
    path = results.default_result_path("paper_test", "runs/glyphnet 3ep")
    assert path.parent.parts[-2:] == ("benchmarks", "results") and path.name == "paper_test-runs_glyphnet_3ep.json"


@pytest.mark.parametrize(
    "value, fmt, shown",
    [
        (0.9057, "percent", "90.57%"),
        (0.9057, "percent1", "90.6%"),
        (0.89454, "percent3", "89.454%"),
        (1.2811, "ratio", "1.28x"),
        (210, "minutes", "3.5 min"),
        (115004, "int", "115,004"),
        (14.751, "ms", "14.75 ms"),
        (0.000123, "sci", "1.2e-04"),
        (None, "percent", ""),
        ("final", "int", "final"),
        (12.34, "seconds", "12.3 s"),
        (0.12345, "float4", "0.1235"),
        ("AB\nCD", "text", "AB / CD"),  # a page read: one table row still
        ("a|b", "text", "a\\|b"),
    ],
)
def test_format_value_shows_each_format(value, fmt, shown):
    assert format_value(value, fmt) == shown


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["lever", "test_acc", "speedup"]),
            st.none() | st.text(max_size=5) | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
            max_size=3,
        ),
        max_size=4,
    )
)
@pytest.mark.slow
def test_any_rows_of_scalars_round_trip(tmp_path_factory, rows):
    path = _write(tmp_path_factory.mktemp("r") / "x.json", rows=rows)
    assert load_result(path)["rows"] == rows
