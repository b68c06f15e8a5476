"""glyphkit.plots: every figure function returns a Figure that save_figure writes as a PNG with something drawn
on it (and, where it has axes, the expected labels and data), at the 47 classes of balanced and the 62 of byclass,
without leaving figures open in pyplot."""

from __future__ import annotations

import string

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from glyphkit import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = {
    47: list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"),
    62: list(string.digits + string.ascii_uppercase + string.ascii_lowercase),
}


def assert_png(fig: Figure, path) -> None:
    """Saved as a PNG that decodes to a picture with something drawn on it (a blank figure is one flat colour)."""
    assert isinstance(fig, Figure)
    plots.save_figure(fig, path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.std() > 5 and (pixels < 200).mean() > 0.002, f"{path.name} is blank"
    assert not list(path.parent.glob(".*.tmp"))


def assert_axes(ax, xlabel: str, ylabel: str) -> None:
    """An axes with the expected labels and some data drawn on it (lines, bars, an image or a heatmap)."""
    assert (ax.get_xlabel(), ax.get_ylabel()) == (xlabel, ylabel)
    assert ax.lines or ax.patches or ax.images or ax.collections, f"nothing drawn on the {ylabel!r} axes"


def test_a_blank_figure_fails_the_check(tmp_path):
    with pytest.raises(AssertionError, match="blank"):
        assert_png(Figure(figsize=(4, 3)), tmp_path / "blank.png")


def fake_confusion(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cm = rng.poisson(0.3, (n, n))
    np.fill_diagonal(cm, rng.integers(20, 200, n))
    cm[n - 1] = 0  # a class without test images must not break anything
    return cm


@pytest.mark.slow
@pytest.mark.parametrize("n", [47, 62])
def test_class_figures(n, tmp_path):
    classes, cm = CLASSES[n], fake_confusion(n)
    rng = np.random.default_rng(1)
    acc = np.diag(cm) / np.maximum(cm.sum(1), 1)
    acc[-1] = np.nan
    for normalize in (False, True):
        fig = plots.plot_confusion_matrix(cm, classes, normalize=normalize)
        assert_png(fig, tmp_path / f"cm{normalize}.png")
        assert_axes(fig.axes[0], "predicted character", "true character")
    fig = plots.plot_per_class_accuracy(acc, classes)
    assert_png(fig, tmp_path / "acc.png")
    assert_axes(fig.axes[0], "share of the character's test images predicted correctly", "character")
    fig = plots.plot_class_distribution(cm.sum(1), classes)
    assert_png(fig, tmp_path / "dist.png")
    assert_axes(fig.axes[0], "character", "images")
    assert sorted(p.get_height() for p in fig.axes[0].patches) == sorted(cm.sum(1))  # one bar per class count
    labels = rng.integers(0, n, 300)
    images = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    assert_png(plots.plot_mean_images(images, labels, classes), tmp_path / "mean.png")


def test_size_grows_with_classes():
    small = plots.plot_confusion_matrix(fake_confusion(47), CLASSES[47])
    large = plots.plot_confusion_matrix(fake_confusion(62), CLASSES[62])
    assert large.get_figwidth() > small.get_figwidth() >= 47 * plots.INCH_PER_CLASS


@pytest.mark.slow
def test_curve_and_glyph_figures(tmp_path):
    rng = np.random.default_rng(2)
    history = {
        "epoch": [1, 2, 3],
        "train_loss": [2.0, 1.0, 0.6],
        "val_loss": [1.8, 1.1, 0.9],
        "train_acc": [0.4, 0.7, 0.8],
        "val_acc": [0.45, 0.68, 0.75],
        "lr": [1e-3, 6e-4, 2e-4],
    }
    fig = plots.plot_training_history(history)
    assert_png(fig, tmp_path / "history.png")
    for ax, ylabel in zip(fig.axes, ("loss", "accuracy", "learning rate")):
        assert_axes(ax, "epoch", ylabel)
    loss_lines = [list(line.get_ydata()) for line in fig.axes[0].lines if len(line.get_ydata()) == 3]
    assert history["train_loss"] in loss_lines and history["val_loss"] in loss_lines
    lrs = np.logspace(-7, 1, 100)
    losses = np.r_[np.linspace(4, 1, 80), np.linspace(1, 9, 19), np.inf]
    fig = plots.plot_lr_finder(lrs, losses, suggestion=1e-3, steep=3e-4)
    assert_png(fig, tmp_path / "lr.png")
    assert_axes(fig.axes[0], "learning rate (log scale)", "loss (smoothed)")
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), lrs)
    assert_png(plots.plot_lr_finder(lrs, losses), tmp_path / "lr_plain.png")
    images = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    assert_png(
        plots.plot_misclassified_examples(images, list("O1l5ZgqcCk"), list("0lI5zq9Cck"), rng.random(10), ncols=4),
        tmp_path / "mis.png",
    )
    flags = [True, True, True, False, True, True, False, True, True, False]
    assert_png(
        plots.plot_misclassified_examples(
            images, list("O1lAZgqcCk"), list("0lIBzq9Cck"), rng.random(10), ambiguous=flags
        ),
        tmp_path / "mis_flags.png",
    )
    assert_png(plots.plot_misclassified_examples(images[:0], [], [], []), tmp_path / "none.png")
    assert_png(plots.plot_glyph_grid(images, [str(i) for i in range(10)]), tmp_path / "grid.png")
    fig = plots.plot_confidence_histogram(rng.random(500) ** 0.2, rng.random(40))
    assert_png(fig, tmp_path / "conf.png")
    assert_axes(fig.axes[0], "confidence (probability of the predicted character)", "share of the group's images")


def test_figures_do_not_pile_up_in_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.plot_confidence_histogram([0.9, 0.8], [0.4])
    assert plt.get_fignums() == before


def test_images_are_shown_as_given():
    """No transposing in plots: glyphkit.data already made the glyphs upright."""
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    image[0, 2:5, :] = 255  # a horizontal bar at the top
    fig = plots.plot_glyph_grid(image, ["bar"])
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(shown), image[0])


def test_runs_history_overlays_one_line_per_run(tmp_path):
    """07_compare_runs: two runs of different lengths on the same axes, each line ending where its run stopped."""
    histories = {
        "runs/a": {"epoch": [1, 2, 3], "val_acc": [0.5, 0.7, 0.8], "val_loss": [1.5, 1.0, 0.8]},
        "runs/b": {"epoch": [1, 2], "val_acc": [0.6, 0.65], "val_loss": [1.2, 1.1]},
    }
    fig = plots.plot_runs_history(histories)
    acc, loss = fig.axes
    assert_axes(acc, "epoch", "validation accuracy")
    assert_axes(loss, "epoch", "validation loss")
    assert [line.get_label() for line in acc.lines] == ["runs/a", "runs/b"]
    assert list(acc.lines[1].get_xdata()) == [1, 2] and list(acc.lines[1].get_ydata()) == [0.6, 0.65]
    assert_png(fig, tmp_path / "runs.png")


def test_page_figure_draws_a_box_per_character_coloured_by_row(tmp_path):
    from PIL import ImageDraw

    from glyphkit.predict import FileResult, GlyphPrediction

    page = Image.new("RGB", (300, 200), "white")
    boxes = [((20, 20, 30, 60), 0), ((80, 20, 30, 60), 0), ((40, 120, 30, 60), 1)]
    for (x, y, w, h), _ in boxes:
        ImageDraw.Draw(page).rectangle((x, y, x + w, y + h), fill="black")
    glyphs = [
        GlyphPrediction(i, box, np.zeros((28, 28), np.uint8), line, top=[(char, 0.9)])
        for i, ((box, line), char) in enumerate(zip(boxes, "ABC"))
    ]
    fig = plots.plot_page(FileResult("page.png", glyphs), page)
    ax = fig.axes[0]
    drawn = [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in ax.patches]
    assert drawn == [box for box, _ in boxes]
    colours = [p.get_edgecolor() for p in ax.patches]
    assert colours[0] == colours[1] != colours[2]  # one colour per row of writing
    assert [t.get_text() for t in ax.texts] == ["A", "B", "C"]
    assert "page.png: AB / C" in ax.get_title()
    assert_png(fig, tmp_path / "page_figure.png")
