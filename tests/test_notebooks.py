"""The notebooks: committed clean, parameterised for papermill, and 03_train runs end to end in quick mode.

Executing every notebook is `pytest --nbval-lax notebooks` (notebooks/conftest.py puts it in quick mode);
here papermill runs 03_train on tiny synthetic data, and glyphkit.notebook's split choice is checked directly.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest

from glyphkit import notebook as nb
from tests.test_benchmarks import tiny_run  # noqa: F401 - the fixture

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = [
    "01_data_exploration",
    "02_lr_finder",
    "03_train",
    "04_evaluate",
    "05_misclassifications",
    "06_predict",
    "07_compare_runs",
]
TRAINING = {"03_train"}  # notebooks whose job is training: they take `epochs`
RUN_FOLDER = {
    "02_lr_finder",
    "03_train",
    "04_evaluate",
    "05_misclassifications",
    "06_predict",
    "07_compare_runs",
}  # read/write run_dir
MAX_CODE_LINES = 10  # cells are glyphkit calls plus a little glue


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def parameters_cell(notebook) -> nbformat.NotebookNode:
    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged `parameters`"
    assert cells[0].cell_type == "code"
    return cells[0]


def assigned_names(source: str) -> dict[str, object]:
    values = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"not a plain assignment: {ast.unparse(node)}"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """No real data, no cache, no quick mode, no run folder from the caller's environment."""
    monkeypatch.delenv("GLYPHKIT_DATA_DIR", raising=False)
    monkeypatch.delenv(nb.QUICK_ENV, raising=False)
    monkeypatch.delenv(nb.RUN_DIR_ENV, raising=False)
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))  # the synthetic fallback is written there too
    return tmp_path


# ----------------------------------------------------------------------------------------------------------------
# The committed files
# ----------------------------------------------------------------------------------------------------------------


def test_the_notebooks_are_there():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_clean(name):
    notebook = read(name)
    nbformat.validate(notebook)
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"
    assert set(notebook.metadata) <= {"kernelspec", "language_info"}, "no papermill/widget state in the metadata"
    for i, cell in enumerate(notebook.cells):
        assert set(cell.get("metadata", {})) <= {"tags"}, f"cell {i} carries metadata {dict(cell.metadata)}"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"cell {i} has an execution count: clear it before committing"


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell(name):
    values = assigned_names(parameters_cell(read(name)).source)
    assert "split" in values and "data_dir" in values
    assert values["data_dir"] is None  # None: $GLYPHKIT_DATA_DIR
    if name in TRAINING:
        assert isinstance(values.get("epochs"), int) and values["epochs"] >= 1
    if name in RUN_FOLDER:
        assert "run_dir" in values and values["run_dir"] is None  # None: $GLYPHKIT_RUN_DIR, else runs/notebook
    if name in {"04_evaluate", "05_misclassifications", "06_predict", "07_compare_runs"}:
        assert values["split"] is None  # the split the model was trained on
    else:
        assert values["split"] == "balanced"  # the product default


@pytest.mark.parametrize("name", NAMES)
def test_reads_like_a_tutorial(name):
    """Markdown first, and code cells short enough to read (glyphkit calls plus a few lines of glue)."""
    notebook = read(name)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    kinds = [c.cell_type for c in notebook.cells]
    assert kinds.count("markdown") >= kinds.count("code") // 2
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert len(cell.source.splitlines()) <= MAX_CODE_LINES, cell.source


# ----------------------------------------------------------------------------------------------------------------
# papermill: 03_train with injected parameters, in quick mode
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_papermill_runs_03_train_in_quick_mode(tiny_data_dir, isolated_env, monkeypatch):
    papermill = pytest.importorskip("papermill")
    from glyphkit.lr_finder import save_lr_choice

    monkeypatch.setenv(nb.QUICK_ENV, "1")  # the kernel inherits this environment
    run_dir = isolated_env / "runs" / "notebook"
    save_lr_choice(run_dir, 2e-3, 2e-3, "suggestion", source="test")  # as 02_lr_finder would leave it
    output = isolated_env / "03_train.out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / "03_train.ipynb"),
        str(output),
        kernel_name="python3",
        cwd=str(isolated_env),
        parameters={"split": "tiny", "epochs": 3, "data_dir": str(tiny_data_dir), "run_dir": str(run_dir)},
        progress_bar=False,
    )

    executed = nbformat.read(output, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert executed.cells.index(injected[0]) == executed.cells.index(parameters_cell(executed)) + 1
    assert assigned_names(injected[0].source) == {
        "split": "tiny",
        "epochs": 3,
        "data_dir": str(tiny_data_dir),
        "run_dir": str(run_dir),
    }
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "QUICK MODE" in text

    for name in ("best_model.pth", "latest_checkpoint.pth", "config.json", "history.json", "training_history.png"):
        assert (run_dir / name).is_file(), f"{name} missing from the run folder"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["split"] == "tiny" and config["epochs"] == 1  # quick mode caps the 3 epochs asked for
    assert config["lr"] == pytest.approx(2e-3)  # lr.json from 02_lr_finder was used
    assert config["extra"].get("quick_mode") is True
    assert len(json.loads((run_dir / "history.json").read_text())["epoch"]) == 1


# ----------------------------------------------------------------------------------------------------------------
# glyphkit.notebook: quick mode, split choice, run folder
# ----------------------------------------------------------------------------------------------------------------


def test_quick_mode_switch(monkeypatch):
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False), ("false", False)):
        monkeypatch.setenv(nb.QUICK_ENV, value)
        assert nb.quick_mode() is expected
    monkeypatch.delenv(nb.QUICK_ENV)
    assert nb.quick_mode() is False
    assert nb.lr_finder_steps() == nb.LR_FINDER_STEPS and nb.eval_limit() is None
    monkeypatch.setenv(nb.QUICK_ENV, "1")
    assert nb.lr_finder_steps() == nb.QUICK["lr_finder_steps"] and nb.eval_limit() == nb.QUICK["limit_test"]
    assert nb.lr_finder_steps(7) == 7 and nb.eval_limit(5) == 5


def test_run_dir_resolution(monkeypatch):
    monkeypatch.delenv(nb.RUN_DIR_ENV, raising=False)
    assert nb.resolve_run_dir() == Path("runs/notebook")
    monkeypatch.setenv(nb.RUN_DIR_ENV, "/tmp/somewhere")
    assert nb.resolve_run_dir() == Path("/tmp/somewhere")
    assert nb.resolve_run_dir("mine") == Path("mine")


def test_quick_config_caps_the_work(tiny_data_dir, isolated_env, monkeypatch):
    monkeypatch.setenv(nb.QUICK_ENV, "1")
    said = []
    config = nb.notebook_config(
        "tiny",
        epochs=20,
        run_dir=isolated_env / "run",
        data_dir=tiny_data_dir,
        limit_train=10_000,
        batch_size=None,
        log=said.append,
    )
    assert (config.epochs, config.limit_train, config.limit_test) == (1, 3000, 2000)
    assert config.batch_size == 128 and config.split == "tiny" and config.output_dir == str(isolated_env / "run")
    assert any("QUICK MODE" in m for m in said)
    monkeypatch.delenv(nb.QUICK_ENV)
    full = nb.notebook_config("tiny", epochs=20, data_dir=tiny_data_dir, log=said.append)
    assert (full.epochs, full.limit_train, full.limit_test) == (20, None, None)
    with pytest.raises(TypeError, match="unknown"):
        nb.notebook_config("tiny", data_dir=tiny_data_dir, learning_rate=1.0)


def test_choose_split_uses_a_local_split_as_is(tiny_data_dir, isolated_env):
    assert nb.choose_split("tiny", tiny_data_dir, quick=True, log=pytest.fail) == ("tiny", str(tiny_data_dir))


def test_quick_mode_falls_back_to_a_proxy_split(isolated_env):
    from glyphkit.synthetic import write_emnist_split

    folder = write_emnist_split(isolated_env / "data", "proxy47", "0123456789", train_per_class=3, test_per_class=1)
    said = []
    assert nb.choose_split("balanced", folder, quick=True, log=said.append) == ("proxy47", str(folder))
    assert "proxy47" in said[0] and "balanced" in said[0]


@pytest.mark.slow
def test_quick_mode_without_data_uses_labelled_synthetic_glyphs(isolated_env):
    said = []
    split, folder = nb.choose_split("balanced", None, quick=True, log=said.append)
    assert nb.is_synthetic(split) and split == "synthetic47"
    assert "SYNTHETIC" in said[0] and "not handwriting" in said[0]
    from glyphkit.data import load_split

    data = load_split(split, folder)
    assert data.num_classes == 47 and data.classes == list(nb.BALANCED_CHARS)
    assert nb.choose_split("balanced", None, quick=True, log=said.append) == (split, folder)  # reused


@pytest.mark.slow
def test_the_synthetic_fallback_lives_in_the_users_cache_not_in_tmp(monkeypatch, tmp_path):
    """A fixed folder in the shared /tmp could be created (and filled) by another user first."""
    monkeypatch.delenv("GLYPHKIT_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert nb.synthetic_dir() == tmp_path / "home" / ".cache" / "glyphkit" / "synthetic"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert nb.synthetic_dir() == tmp_path / "xdg" / "glyphkit" / "synthetic"
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "mine"))
    assert nb.synthetic_dir() == tmp_path / "mine" / "synthetic"
    assert nb.write_synthetic("balanced") == ("synthetic47", tmp_path / "mine" / "synthetic" / "synthetic47")


@pytest.mark.slow
@pytest.mark.parametrize("kept", [4, 1], ids=["one file missing", "one file there"])
def test_a_half_written_synthetic_split_is_not_reused(isolated_env, kept):
    """Part of the files (what a write killed while moving them into place left) is written again, never
    loaded as the split."""
    from glyphkit.data import load_split

    name, folder = nb.write_synthetic("balanced")
    for path in sorted(folder.iterdir())[kept:]:
        path.unlink()
    again, folder = nb.write_synthetic("balanced")
    data = load_split(again, folder)
    assert data.classes == list(nb.BALANCED_CHARS) and data.sizes()["test"] == 47 * nb.SYNTHETIC_TEST_PER_CLASS
    assert [p.name for p in folder.parent.iterdir()] == [name]  # no staging folder left beside it


def test_outside_quick_mode_a_missing_split_is_a_clear_error(isolated_env):
    from glyphkit.data import DataError

    said = []
    assert nb.choose_split("nosuch", None, quick=False, log=said.append) == ("nosuch", None)
    assert said == []
    config = nb.notebook_config("nosuch", log=said.append)
    with pytest.raises(DataError, match="nosuch"):
        nb.load_data(config, log=said.append)


def test_a_missing_data_folder_is_an_error_not_a_fallback(isolated_env):
    from glyphkit.data import DataError

    with pytest.raises(DataError, match="does not exist"):
        nb.choose_split("balanced", isolated_env / "typo", quick=True)


def test_evaluation_notebooks_need_a_model_outside_quick_mode(isolated_env):
    from glyphkit.rundir import CheckpointError

    with pytest.raises(CheckpointError, match="03_train"):
        nb.ensure_trained_run(isolated_env / "empty-run", log=lambda _: None)


@pytest.mark.slow
def test_a_synthetic_run_finds_its_data_again(isolated_env):
    """04/05 evaluate a run trained on the synthetic fallback even when its temporary folder is gone."""
    said = []
    split, folder = nb.choose_split("synthetic47", isolated_env / "gone", quick=False, log=said.append)
    assert (split, folder) == ("synthetic47", str(isolated_env / "cache" / "synthetic" / "synthetic47"))
    assert "SYNTHETIC" in said[0]
    assert nb.choose_split(split, folder, quick=False, log=pytest.fail) == (split, folder)


@pytest.mark.slow
def test_papermill_runs_06_with_a_line_model_showing_both_readings(tiny_run, tiny_data_dir, isolated_env, monkeypatch):  # noqa: F811
    """With a line model in the run, 06 reads the sample pages with it and shows them cut into characters beside."""
    papermill = pytest.importorskip("papermill")
    from tests.test_lines import copy_of, reading_line_model

    monkeypatch.setenv(nb.QUICK_ENV, "1")
    run_dir = copy_of(tiny_run, isolated_env / "run")
    reading_line_model(run_dir)
    output = isolated_env / "06_predict.out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / "06_predict.ipynb"),
        str(output),
        kernel_name="python3",
        cwd=str(isolated_env),
        parameters={"data_dir": str(tiny_data_dir), "run_dir": str(run_dir)},
        progress_bar=False,
    )
    executed = nbformat.read(output, as_version=4)
    shown = {c.id: c.outputs for c in executed.cells if c.cell_type == "code"}
    assert "rows of touching letters are read whole" in "".join(o.get("text", "") for o in shown["06-09c"])
    table = "".join(o.get("data", {}).get("text/plain", "") for o in shown["06-11c"])
    assert "rows read whole" in table and "cut into characters" in table
