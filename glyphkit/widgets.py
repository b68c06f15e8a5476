"""The notebooks' controls: the learning-rate accept/reject control of 02_lr_finder (a log slider preset to the LR
finder's suggestion, Accept and Reject buttons, one status line that says what was saved), and 06_predict's drawing
pad and image upload.

The choice lives in the run folder's lr.json (glyphkit.lr_finder.save_lr_choice), where 03_train and
`glyphkit train` pick it up (glyphkit.workflows.choose_lr). Nothing waits for a click: the suggestion is saved
the moment the control is built, so a notebook executed headless (papermill, nbval) goes on with it; in
JupyterLab, moving the slider or pressing a button replaces the saved choice and the status line (never a second
line beside it). The callbacks are plain methods (`accept()`, `reject()`, setting `slider.value`), so tests drive
the control without a browser.
"""

from __future__ import annotations

import html
import io
import math
import os
import tempfile
from pathlib import Path

import ipywidgets as widgets
import torch
from PIL import Image, ImageDraw, ImageOps

from glyphkit.lr_finder import save_lr_choice
from glyphkit.predict import predict
from glyphkit.preprocess import glyphs_from_image
from glyphkit.rundir import LR_CHOICE

SOURCE = "notebook"  # lr.json's `source`: notebook:default, notebook:slider, notebook:accept, notebook:reject


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6)


class LRChooser:
    """Pick the learning rate to train with; every change is saved at once to `run_dir/lr.json`.

    suggestion: the LR finder's suggestion (None when the range test found no falling loss).
    current_lr: the learning rate the run would use otherwise (the config's); Reject keeps it.
    save_default: save the suggestion (or current_lr when there is none) right away, so headless runs have it.

    Attributes: `slider` (FloatLogSlider), `accept_button`, `reject_button`, `status` (Label: the one line that
    says what is saved, replaced at each change), `widget` (the whole control; the object itself also displays as
    it, with the status line as its plain-text form), `choice` (the last record saved).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        suggestion: float | None,
        current_lr: float,
        *,
        decades: float = 2.0,
        save_default: bool = True,
    ):
        if not current_lr > 0:
            raise ValueError(f"current_lr must be > 0, got {current_lr}")
        if suggestion is not None and not suggestion > 0:
            raise ValueError(f"suggestion must be > 0 or None, got {suggestion}")
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LR_CHOICE
        self.suggestion = float(suggestion) if suggestion is not None else None
        self.current_lr = float(current_lr)
        self.choice: dict | None = None
        self._build(self.suggestion if self.suggestion is not None else self.current_lr, decades)
        if save_default:
            self._save_default()

    def _build(self, start: float, decades: float) -> None:
        """The slider (covering the suggestion and current_lr, `decades` either side), the buttons, the status."""
        exponents = [math.log10(v) for v in (start, self.current_lr)]
        self.slider = widgets.FloatLogSlider(
            value=start,
            base=10,
            min=math.floor(min(exponents) - decades),
            max=math.ceil(max(exponents) + decades),
            step=0.01,
            description="learning rate",
            readout_format=".2e",
            continuous_update=False,
            style={"description_width": "initial"},
            layout=widgets.Layout(width="480px"),
        )
        self.accept_button = widgets.Button(
            description="Accept",
            button_style="success",
            icon="check",
            tooltip="train with the learning rate the slider shows",
        )
        self.reject_button = widgets.Button(
            description="Reject",
            button_style="warning",
            icon="times",
            tooltip=f"ignore the suggestion and keep {self.current_lr:.2e}",
        )
        self.status = widgets.Label()
        self._quiet = False  # set while the control moves its own slider (reject), so that is not a new choice
        self.slider.observe(self._on_slider, names="value")
        self.accept_button.on_click(lambda _button: self.accept())
        self.reject_button.on_click(lambda _button: self.reject())
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.accept_button, self.reject_button]), self.status])

    def _save_default(self) -> dict:
        if self.suggestion is None:
            return self._save(
                self.current_lr,
                "no suggestion",
                "default",
                f"The range test found no falling loss: keeping {self.current_lr:.2e}",
            )
        return self._save(
            self.suggestion,
            "suggestion",
            "default",
            f"Using the suggestion {self.suggestion:.2e} (move the slider, or press Reject to keep "
            f"{self.current_lr:.2e})",
        )

    # -------------------------------------------------------------- the three ways to choose
    def accept(self) -> dict:
        """Train with the slider's value (the suggestion unless the slider was moved)."""
        lr = float(self.slider.value)
        if _same(lr, self.suggestion):
            return self._save(lr, "suggestion", "accept", f"Accepted the suggestion {lr:.2e}")
        return self._save(lr, "slider", "accept", f"Accepted {lr:.2e} from the slider")

    def reject(self) -> dict:
        """Ignore the suggestion: train with current_lr (the slider moves there)."""
        self._quiet = True
        try:
            self.slider.value = self.current_lr
        finally:
            self._quiet = False
        if self.suggestion is None:
            return self._save(self.current_lr, "no suggestion", "reject", f"Keeping {self.current_lr:.2e}")
        return self._save(
            self.current_lr,
            "rejected",
            "reject",
            f"Rejected the suggestion {self.suggestion:.2e}: keeping {self.current_lr:.2e}",
        )

    def _on_slider(self, change) -> None:
        if self._quiet:
            return
        lr = float(change["new"])
        if _same(lr, self.suggestion):
            self._save(lr, "suggestion", "slider", f"Slider back at the suggestion {lr:.2e}")
        else:
            self._save(lr, "slider", "slider", f"Slider at {lr:.2e}")

    # -------------------------------------------------------------- saving and saying so
    @property
    def lr(self) -> float | None:
        """The learning rate saved last."""
        return self.choice["lr"] if self.choice else None

    def _save(self, lr: float, choice: str, how: str, message: str) -> dict:
        """Save the choice to lr.json and put what was saved on the status line, in place of the last message."""
        self.choice = save_lr_choice(self.run_dir, lr, self.suggestion, choice, source=f"{SOURCE}:{how}")
        self.status.value = f"{message}. Saved lr {lr:.2e} to {self.path}: 03_train will use it."
        return self.choice

    def _repr_mimebundle_(self, **kwargs):
        """The control; where no widget can show (an executed notebook read as text), the status line."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.status.value
        return bundle

    def __repr__(self) -> str:
        return f"LRChooser(lr={self.lr}, suggestion={self.suggestion}, current_lr={self.current_lr}, file={self.path})"


# ---------------------------------------------------------------------------------------------------------------
# 06_predict: a pad to draw a glyph on, and an upload control for photos
# ---------------------------------------------------------------------------------------------------------------


class DrawingPad:
    """Draw a glyph with the mouse (or a finger); on pen-up the model reads it and shows the 28x28 glyph it saw
    and its top characters. Clear starts over.

    The canvas (ipycanvas) only shows the strokes: their points are kept here and drawn again with PIL, so what
    the model reads never depends on the browser, and tests drive the pad with the canvas's own mouse events.
    """

    def __init__(self, predictor, size: int = 280, pen: int = 18, top_k: int = 5):
        from ipycanvas import Canvas  # optional, heavy: only the drawing pad needs it

        self.predictor, self.size, self.pen, self.top_k = predictor, size, pen, top_k
        self.strokes: list[list[tuple[float, float]]] = []
        self.answer: list[tuple[str, float]] = []
        self.drawing = False  # between pen-down and pen-up
        self.canvas = Canvas(width=size, height=size, layout=widgets.Layout(border="1px solid #999"))
        self.canvas.line_width, self.canvas.line_cap, self.canvas.line_join = pen, "round", "round"
        self.canvas.on_mouse_down(self.pen_down)
        self.canvas.on_mouse_move(self.pen_move)
        self.canvas.on_mouse_up(self.pen_up)
        self.canvas.on_mouse_out(self.pen_up)
        self.canvas.on_touch_start(lambda touches: self.pen_down(*touches[0]))
        self.canvas.on_touch_move(lambda touches: self.pen_move(*touches[0]))
        self.canvas.on_touch_end(lambda touches: self.pen_up(0, 0))
        self.clear_button = widgets.Button(description="Clear", icon="eraser")
        self.clear_button.on_click(lambda _button: self.clear())
        self.seen = widgets.Image(format="png", width=112, height=112)
        self.chart = widgets.HTML()
        self.widget = widgets.HBox(
            [
                widgets.VBox([self.canvas, self.clear_button]),
                widgets.VBox([widgets.Label("what the model sees"), self.seen, self.chart]),
            ]
        )

    def pen_down(self, x: float, y: float) -> None:
        self.drawing = True
        self.strokes.append([(x, y)])

    def pen_move(self, x: float, y: float) -> None:
        if self.drawing:
            last = self.strokes[-1][-1]
            self.strokes[-1].append((x, y))
            self.canvas.stroke_line(*last, x, y)

    def pen_up(self, x: float, y: float) -> None:
        """The end of a stroke: the model reads what is drawn now."""
        if self.drawing:
            self.drawing = False
            self.read()

    def image(self) -> Image.Image:
        """The strokes as dark ink on white paper, the way a scan of the same glyph would look."""
        image = Image.new("L", (self.size, self.size), 255)
        draw = ImageDraw.Draw(image)
        for points in self.strokes:
            draw.line(points, fill=0, width=self.pen, joint="curve")
            for x, y in (points[0], points[-1]):  # round ends, as the canvas draws them
                draw.ellipse((x - self.pen / 2, y - self.pen / 2, x + self.pen / 2, y + self.pen / 2), fill=0)
        return image

    def ink_image(self) -> Image.Image:
        """The strokes on a transparent canvas (RGBA, the ink in the alpha channel): what the pad reads. A drawing
        has no paper, so the steps that find a photo's paper (its light, its printed lines) are skipped; they cost
        more than the model does."""
        drawing = Image.new("RGBA", (self.size, self.size), (0, 0, 0, 0))
        drawing.putalpha(ImageOps.invert(self.image()))
        return drawing

    def read(self) -> list[tuple[str, float]]:
        """The model's top characters for what is drawn (empty while nothing is)."""
        if not self.strokes:
            return []
        glyph = glyphs_from_image(self.ink_image())[0].image
        probabilities = self.predictor.probabilities(torch.from_numpy(glyph[None]))[0]
        values, indices = probabilities.topk(min(self.top_k, len(probabilities)))
        self.answer = [(self.predictor.config.classes[i], p) for i, p in zip(indices.tolist(), values.tolist())]
        self.seen.value = _png(Image.fromarray(glyph).resize((112, 112), Image.NEAREST))
        self.chart.value = top_k_bars(self.answer)
        return self.answer

    def clear(self) -> None:
        self.strokes, self.answer = [], []
        self.canvas.clear()
        self.seen.value, self.chart.value = b"", ""

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class ImageReader:
    """Upload photos or scans (one glyph each, or pages of handwriting with `segment`) and read them at once."""

    def __init__(self, run_dir: str | os.PathLike, segment: bool = True, class_prior: str = "train"):
        self.run_dir, self.segment, self.class_prior = run_dir, segment, class_prior
        self.upload = widgets.FileUpload(accept="image/*", multiple=True, description="Upload images")
        self.output = widgets.HTML()
        self.upload.observe(lambda change: self.read_files(change["new"]), names="value")
        self.widget = widgets.VBox([self.upload, self.output])

    def read_files(self, files) -> list:
        """Read uploaded files (FileUpload's value: dicts with `name` and `content`); a table of what they say."""
        with tempfile.TemporaryDirectory() as folder:
            for f in files:
                (Path(folder) / Path(f["name"]).name).write_bytes(bytes(f["content"]))
            results = predict(
                self.run_dir, [folder], segment=self.segment, progress=False, class_prior=self.class_prior
            )
        rows = "".join(
            f"<tr><td>{html.escape(Path(r.file).name)}</td><td>{html.escape(r.error or r.text)}</td></tr>"
            for r in results
        )
        self.output.value = f"<table><tr><th>file</th><th>read</th></tr>{rows}</table>"
        return results

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def top_k_bars(top: list[tuple[str, float]]) -> str:
    """An HTML bar chart of (character, probability) pairs: drawn by the browser at once, no figure to render."""
    rows = "".join(
        f'<div style="font-family:monospace">{html.escape(c)} '
        f'<span style="display:inline-block;background:#4c72b0;height:0.9em;width:{200 * p:.0f}px"></span>'
        f" {p:.2f}</div>"
        for c, p in top
    )
    return f"<div>{rows}</div>"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
