"""The learning-rate accept/reject control of 02_lr_finder: a log slider preset to the LR finder's suggestion,
Accept and Reject buttons, and a line that says what was saved.

The choice lives in the run folder's lr.json (glyphkit.lr_finder.save_lr_choice), where 03_train and
`glyphkit train` pick it up (glyphkit.workflows.choose_lr). Nothing waits for a click: the suggestion is saved
the moment the control is built, so a notebook executed headless (papermill, nbval) goes on with it; in
JupyterLab, moving the slider or pressing a button replaces the saved choice and says so. The callbacks are
plain methods (`accept()`, `reject()`, setting `slider.value`), so tests drive the control without a browser.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import ipywidgets as widgets

from glyphkit.lr_finder import save_lr_choice
from glyphkit.rundir import LR_CHOICE

SOURCE = "notebook"  # lr.json's `source`: notebook:default, notebook:slider, notebook:accept, notebook:reject


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6)


class LRChooser:
    """Pick the learning rate to train with; every change is saved at once to `run_dir/lr.json`.

    suggestion: the LR finder's suggestion (None when the range test found no falling loss).
    current_lr: the learning rate the run would use otherwise (the config's); Reject keeps it.
    save_default: save the suggestion (or current_lr when there is none) right away, so headless runs have it.
    log: called with the message of that first save (e.g. print, so an executed notebook records it).

    Attributes: `slider` (FloatLogSlider), `accept_button`, `reject_button`, `status` (Label with the last
    message), `widget` (the whole control; the object itself also displays as it), `choice` (last saved dict).
    """

    def __init__(self, run_dir: str | os.PathLike, suggestion: float | None, current_lr: float, *,
                 decades: float = 2.0, save_default: bool = True, log=None):
        if not current_lr > 0:
            raise ValueError(f"current_lr must be > 0, got {current_lr}")
        if suggestion is not None and not suggestion > 0:
            raise ValueError(f"suggestion must be > 0 or None, got {suggestion}")
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LR_CHOICE
        self.suggestion = float(suggestion) if suggestion is not None else None
        self.current_lr = float(current_lr)
        self.log = log
        self.choice: dict | None = None
        start = self.suggestion if self.suggestion is not None else self.current_lr
        exponents = [math.log10(v) for v in (start, self.current_lr)]
        self.slider = widgets.FloatLogSlider(
            value=start, base=10, min=math.floor(min(exponents) - decades), max=math.ceil(max(exponents) + decades),
            step=0.01, description="learning rate", readout_format=".2e", continuous_update=False,
            style={"description_width": "initial"}, layout=widgets.Layout(width="480px"))
        self.accept_button = widgets.Button(description="Accept", button_style="success", icon="check",
                                            tooltip="train with the learning rate the slider shows")
        self.reject_button = widgets.Button(description="Reject", button_style="warning", icon="times",
                                            tooltip=f"ignore the suggestion and keep {self.current_lr:.2e}")
        self.status = widgets.Label()
        self._quiet = False  # set while the control moves its own slider (reject), so that is not a new choice
        self.slider.observe(self._on_slider, names="value")
        self.accept_button.on_click(lambda _button: self.accept())
        self.reject_button.on_click(lambda _button: self.reject())
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.accept_button, self.reject_button]),
                                    self.status])
        if save_default:
            if self.suggestion is None:
                self._save(self.current_lr, "default",
                           f"The range test found no falling loss: keeping {self.current_lr:.2e}")
            else:
                self._save(self.suggestion, "default",
                           f"Using the suggestion {self.suggestion:.2e} (move the slider or press Reject to change)")

    # -------------------------------------------------------------- the three ways to choose
    def accept(self) -> dict:
        """Train with the slider's value (the suggestion unless the slider was moved)."""
        lr = float(self.slider.value)
        what = "the suggestion" if _same(lr, self.suggestion) else "your choice"
        return self._save(lr, "accept", f"Accepted {lr:.2e} ({what})")

    def reject(self) -> dict:
        """Ignore the suggestion: train with current_lr (the slider moves there)."""
        self._quiet = True
        try:
            self.slider.value = self.current_lr
        finally:
            self._quiet = False
        return self._save(self.current_lr, "reject", f"Rejected the suggestion: keeping {self.current_lr:.2e}")

    def _on_slider(self, change) -> None:
        if self._quiet:
            return
        lr = float(change["new"])
        what = " (the suggestion)" if _same(lr, self.suggestion) else ""
        self._save(lr, "slider", f"Slider at {lr:.2e}{what}")

    # -------------------------------------------------------------- saving and saying so
    @property
    def lr(self) -> float | None:
        """The learning rate saved last."""
        return self.choice["lr"] if self.choice else None

    def _save(self, lr: float, how: str, message: str) -> dict:
        accepted = _same(lr, self.suggestion)
        self.choice = save_lr_choice(self.run_dir, lr, self.suggestion, accepted, source=f"{SOURCE}:{how}")
        self.status.value = f"{message}. Saved lr {lr:.2e} to {self.path}: 03_train will use it."
        if self.log is not None and how == "default":  # clicks answer on the Label (a callback's print is lost)
            self.log(self.status.value)
        return self.choice

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"LRChooser(lr={self.lr}, suggestion={self.suggestion}, current_lr={self.current_lr}, file={self.path})"
