"""The LR accept/reject control (glyphkit.widgets.LRChooser), driven in plain Python: no browser, no kernel.
(tests/test_browser.py clicks the same control in JupyterLab.)"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from glyphkit.lr_finder import load_lr_choice
from glyphkit.rundir import LR_CHOICE as LR_CHOICE_FILE
from glyphkit.widgets import LRChooser

SUGGESTION, CURRENT = 3e-4, 1e-3


def test_headless_default_saves_the_suggestion_at_once(tmp_path):
    chooser = LRChooser(tmp_path, SUGGESTION, CURRENT)
    choice = load_lr_choice(tmp_path)
    assert choice == {"lr": SUGGESTION, "choice": "suggestion", "suggestion": SUGGESTION, "source": "notebook:default"}
    assert chooser.choice == choice and chooser.lr == SUGGESTION
    assert chooser.slider.value == pytest.approx(SUGGESTION)
    assert str(tmp_path / LR_CHOICE_FILE) in chooser.status.value


def test_slider_moves_update_the_saved_choice(tmp_path):
    chooser = LRChooser(tmp_path, SUGGESTION, CURRENT)
    chooser.slider.value = 2e-3
    choice = load_lr_choice(tmp_path)
    assert choice["lr"] == pytest.approx(2e-3) and choice["choice"] == "slider"
    assert choice["source"] == "notebook:slider" and choice["suggestion"] == SUGGESTION
    assert "2.00e-03" in chooser.status.value
    chooser.slider.value = SUGGESTION  # back to the suggestion: the record says so
    assert load_lr_choice(tmp_path)["choice"] == "suggestion"


def test_accept_saves_the_slider_value(tmp_path):
    chooser = LRChooser(tmp_path, SUGGESTION, CURRENT)
    chooser.accept()
    assert load_lr_choice(tmp_path) == {
        "lr": SUGGESTION,
        "choice": "suggestion",
        "suggestion": SUGGESTION,
        "source": "notebook:accept",
    }
    assert chooser.status.value.startswith("Accepted the suggestion 3.00e-04.")
    chooser.slider.value = 5e-4
    chooser.accept_button.click()  # the button runs the same callback
    choice = load_lr_choice(tmp_path)
    assert choice["lr"] == pytest.approx(5e-4) and choice["source"] == "notebook:accept"
    assert choice["choice"] == "slider"  # Accept on a moved slider: the slider's rate, plainly (not "accepted": false)
    assert chooser.status.value.startswith("Accepted 5.00e-04 from the slider.")


def test_reject_keeps_the_current_lr_and_moves_the_slider(tmp_path):
    chooser = LRChooser(tmp_path, SUGGESTION, CURRENT)
    chooser.reject_button.click()
    assert load_lr_choice(tmp_path) == {
        "lr": CURRENT,
        "choice": "rejected",
        "suggestion": SUGGESTION,
        "source": "notebook:reject",
    }  # not overwritten by the slider's move
    assert chooser.slider.value == pytest.approx(CURRENT)
    assert "Rejected" in chooser.status.value
    chooser.accept()  # accepting afterwards takes the slider's (now current) value
    assert load_lr_choice(tmp_path)["lr"] == pytest.approx(CURRENT)


def test_no_suggestion_keeps_current_lr(tmp_path):
    chooser = LRChooser(tmp_path, None, CURRENT)
    assert load_lr_choice(tmp_path) == {
        "lr": CURRENT,
        "choice": "no suggestion",
        "suggestion": None,
        "source": "notebook:default",
    }
    assert chooser.slider.value == pytest.approx(CURRENT)
    assert "no falling loss" in chooser.status.value


def test_slider_range_covers_suggestion_and_current_lr(tmp_path):
    chooser = LRChooser(tmp_path, 2e-6, 5e-2)
    low, high = 10**chooser.slider.min, 10**chooser.slider.max
    assert low < 2e-6 and high > 5e-2
    chooser.reject()
    assert math.isclose(chooser.slider.value, 5e-2)


def test_save_default_off_writes_nothing_until_a_choice(tmp_path):
    chooser = LRChooser(tmp_path, SUGGESTION, CURRENT, save_default=False)
    assert load_lr_choice(tmp_path) is None
    chooser.accept()
    assert load_lr_choice(tmp_path)["lr"] == SUGGESTION


def _chooser_cell() -> str:
    """The code cell of 02_lr_finder that builds and shows the control."""
    notebook = nbformat.read(Path(__file__).resolve().parent.parent / "notebooks" / "02_lr_finder.ipynb", 4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code" and "LRChooser(" in c.source]
    assert len(cells) == 1
    return cells[0]


def test_02_shows_one_status_line_that_each_change_replaces(tmp_path, capsys):
    """Run 02's control cell as Jupyter does (its last line is the result shown): the status line is the only
    text, so no line printed when the control appeared stays behind to contradict a later click."""
    *body, last = _chooser_cell().strip().splitlines()
    cell = {
        "config": SimpleNamespace(output_dir=str(tmp_path), lr=CURRENT),
        "result": SimpleNamespace(suggestion=SUGGESTION),
    }
    exec("\n".join(body), cell)
    shown = eval(last, cell)
    chooser = cell["chooser"]
    bundle = shown._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == chooser.status.value  # what an executed notebook read as text shows
    assert chooser.status.value.startswith("Using the suggestion 3.00e-04")
    for change in (
        chooser.reject_button.click,
        lambda: setattr(chooser.slider, "value", 2e-3),
        chooser.accept_button.click,
    ):
        change()
        assert capsys.readouterr().out == ""  # nothing printed beside the control, before or after
    assert chooser.status.value.startswith("Accepted 2.00e-03 from the slider.")
    assert "suggestion" not in chooser.status.value and "Rejected" not in chooser.status.value


def test_bad_values_are_refused(tmp_path):
    with pytest.raises(ValueError, match="current_lr"):
        LRChooser(tmp_path, SUGGESTION, 0.0)
    with pytest.raises(ValueError, match="suggestion"):
        LRChooser(tmp_path, -1.0, CURRENT)


def test_widget_displays_and_training_picks_up_the_choice(tmp_path):
    """The control displays as a widget, and the training step (03_train, `glyphkit train`) reads what it saved."""
    from glyphkit.config import Config
    from glyphkit.workflows import choose_lr as use_lr_choice

    chooser = LRChooser(tmp_path, SUGGESTION, CURRENT)
    assert "application/vnd.jupyter.widget-view+json" in chooser._repr_mimebundle_()
    chooser.slider.value = 7e-4
    config = use_lr_choice(Config(output_dir=str(tmp_path)), log=lambda _: None)
    assert config.lr == pytest.approx(7e-4)
    assert use_lr_choice(Config(output_dir=str(tmp_path)), 1e-2, log=lambda _: None).lr == 1e-2  # a parameter wins
