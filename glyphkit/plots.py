"""Every figure glyphkit draws. Each function takes plain arrays, lists or dicts and returns a matplotlib Figure.

The caller decides what happens next: a notebook shows the Figure (it is its cell's result), the command line
writes it with `save_figure`. Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so
no backend is chosen or changed here, nothing accumulates in pyplot's list of open figures, and a Jupyter
cell shows a returned figure exactly once.

Characters are drawn in a monospace font: in the default sans-serif font `l`, `I` and `1` look alike, which is
the last thing a confusion matrix of handwriting needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib import colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from glyphkit.rundir import atomic_write

DPI = 150
INCH_PER_CLASS = 0.3  # keeps one tick label per class legible at 62 classes
CHAR_FONT = {"family": "monospace", "size": 10}
IMAGE_CMAP = "gray_r"  # EMNIST glyphs are bright strokes on black; gray_r draws them as ink on paper


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write `fig` as a PNG atomically (a crash leaves no half-written file) and release its memory."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=fig.dpi))
    _close(fig)
    return path


def _close(fig: Figure) -> None:
    """Release a figure (pyplot forgets it if it made it; for our own Figure objects this is a no-op)."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def _figure(width: float, height: float) -> Figure:
    """A Figure with its own Agg canvas: measuring text (seaborn does, per tick label) then reuses one renderer
    instead of drawing the whole figure each time. This sets no backend; the figure displays anywhere."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _category(ch: str) -> str:
    return "digit" if ch.isdigit() else "upper" if ch.isupper() else "lower" if ch.islower() else "other"


def block_edges(classes: Sequence[str]) -> list[int]:
    """Positions where the classes change from digits to capitals to lower case: the matrix's landmarks."""
    return [i for i in range(1, len(classes)) if _category(classes[i]) != _category(classes[i - 1])]


def _char_ticks(ax, classes: Sequence[str], axis: str, rotation: float = 0) -> None:
    """One tick per class, labelled with its character in the monospace font."""
    positions = np.arange(len(classes)) + 0.5
    if axis in ("x", "both"):
        ax.set_xticks(positions, list(classes), rotation=rotation, fontdict=CHAR_FONT)
    if axis in ("y", "both"):
        ax.set_yticks(positions, list(classes), rotation=0, fontdict=CHAR_FONT)
    ax.tick_params(length=0)


# ----------------------------------------------------------------------------------------------------------------
# Confusion and per-class results
# ----------------------------------------------------------------------------------------------------------------


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its total (share of the true class); rows of absent classes stay 0."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def plot_confusion_matrix(
    cm: np.ndarray, classes: Sequence[str], normalize: bool = False, title: str | None = None
) -> Figure:
    """Rows: true character, columns: predicted character.

    The colour scale is logarithmic for counts and a square-root scale for shares: the diagonal holds most
    images, and a linear scale would paint every mistake the same pale colour. Empty cells stay white.
    Cells are annotated only when there are few classes (numbers do not fit in 47x47 cells).
    """
    cm = np.asarray(cm)
    n = len(classes)
    values = normalize_rows(cm) if normalize else cm.astype(np.float64)
    side = max(6.0, INCH_PER_CLASS * n + 2.0)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    if normalize:
        norm = colors.PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
        label, fmt = "share of the true class", ".2f"
    else:
        norm = colors.LogNorm(vmin=1, vmax=max(float(values.max()), 2.0))
        label, fmt = "images (log scale)", ".0f"
    annotate = n <= 20
    sns.heatmap(
        values,
        ax=ax,
        xticklabels=list(classes),
        yticklabels=list(classes),
        mask=values <= 0,
        cmap="viridis",
        norm=norm,
        square=True,
        annot=annotate,
        fmt=fmt,
        annot_kws={"size": 7},
        linewidths=0.2,
        linecolor="#e6e6e6",
        cbar_kws={"label": label, "shrink": 0.6},
    )
    _char_ticks(ax, classes, "both")
    for edge in block_edges(classes):
        ax.axhline(edge, color="0.55", linewidth=0.8)
        ax.axvline(edge, color="0.55", linewidth=0.8)
    ax.set_xlabel("predicted character")
    ax.set_ylabel("true character")
    ax.set_facecolor("white")
    ax.set_title(
        title or ("Confusion matrix, share of each true class" if normalize else "Confusion matrix"), fontsize=14
    )
    return fig


def plot_per_class_accuracy(
    acc: Sequence[float] | np.ndarray, classes: Sequence[str], title: str = "Accuracy per character (recall)"
) -> Figure:
    """One horizontal bar per character, worst at the top; the dashed line is the mean (balanced accuracy).

    Classes with no test images (NaN) are left out and named in the title.
    """
    acc = np.asarray(acc, dtype=np.float64)
    present = ~np.isnan(acc)
    names = [c for c, ok in zip(classes, present) if ok]
    values = acc[present]
    order = np.argsort(values, kind="stable")
    names, values = [names[i] for i in order], values[order]
    fig = _figure(8.0, max(4.0, INCH_PER_CLASS * len(names) + 1.5))
    ax = fig.add_subplot()
    palette = [colors.to_hex(c) for c in sns.color_palette("RdYlGn", as_cmap=True)(np.clip(values, 0, 1))]
    sns.barplot(
        x=values, y=names, hue=names, palette=palette, order=names, hue_order=names, legend=False, orient="h", ax=ax
    )
    ax.set_yticks(range(len(names)), names, fontdict=CHAR_FONT)
    for y, v in enumerate(values):
        ax.text(min(v, 1.0) + 0.01, y, f"{100 * v:.1f}%", va="center", fontsize=7)
    if len(values):
        mean = float(values.mean())
        ax.axvline(mean, color="0.3", linestyle="--", linewidth=1, label=f"mean {100 * mean:.1f}%")
        ax.legend(loc="upper right")  # the worst classes (short bars) are at the top: free space
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("share of the character's test images predicted correctly")
    ax.set_ylabel("character")
    missing = [c for c, ok in zip(classes, present) if not ok]
    ax.set_title(title + (f"\n(no test images: {' '.join(missing)})" if missing else ""))
    return fig


def plot_class_distribution(
    counts: Sequence[int] | np.ndarray, classes: Sequence[str], title: str = "Images per character"
) -> Figure:
    """Bar per character in label order, to see at a glance which characters are rare."""
    counts = np.asarray(counts)
    fig = _figure(max(6.0, INCH_PER_CLASS * len(classes) + 1.5), 4.0)
    ax = fig.add_subplot()
    sns.barplot(x=list(classes), y=counts, order=list(classes), color=sns.color_palette()[0], ax=ax)
    ax.set_xticks(range(len(classes)), list(classes), fontdict=CHAR_FONT)
    if len(counts):
        ax.axhline(float(counts.mean()), color="0.3", linestyle="--", linewidth=1, label=f"mean {counts.mean():.0f}")
        ax.legend()
    ax.set_xlabel("character")
    ax.set_ylabel("images")
    ax.set_title(title)
    return fig


def plot_confidence_histogram(
    conf_right: Sequence[float] | np.ndarray, conf_wrong: Sequence[float] | np.ndarray, bins: int = 20
) -> Figure:
    """How sure the model was when right vs when wrong; each histogram is scaled to its own total.

    Right answers vastly outnumber wrong ones, so raw counts would hide the wrong ones' shape.
    """
    right, wrong = np.asarray(conf_right, dtype=np.float64), np.asarray(conf_wrong, dtype=np.float64)
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    edges = np.linspace(0, 1, bins + 1)
    for values, name, color in ((right, "right", "tab:green"), (wrong, "wrong", "tab:red")):
        if len(values):
            ax.hist(
                values,
                bins=edges,
                weights=np.full(len(values), 1 / len(values)),
                alpha=0.55,
                color=color,
                label=f"{name} ({len(values)} images, median {np.median(values):.2f})",
            )
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence (probability of the predicted character)")
    ax.set_ylabel("share of the group's images")
    ax.set_title("Confidence of right and wrong predictions")
    ax.legend(loc="upper left")
    return fig


def plot_reliability_diagram(
    counts: Sequence[int] | np.ndarray,
    accuracy: Sequence[float] | np.ndarray,
    calibration: Mapping[str, float] | None = None,
) -> Figure:
    """Accuracy per equal-width confidence bin (NaN: empty) against the diagonal of perfect calibration, with the
    bins' image counts (inference.reliability_bins makes both).

    Bars below the diagonal: the model is surer than it is right (over-confident); above: under-confident."""
    counts, accuracy = np.asarray(counts), np.asarray(accuracy, dtype=np.float64)
    bins = len(counts)
    edges = np.linspace(0, 1, bins + 1)
    fig = _figure(6.0, 5.5)
    ax, count_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.bar(
        edges[:-1],
        np.nan_to_num(accuracy),
        width=1 / bins,
        align="edge",
        color="tab:blue",
        edgecolor="white",
        label="accuracy in the bin",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    title = "Reliability diagram"
    if calibration:
        title += (
            f" (ECE {100 * calibration['ece_after']:.2f}% calibrated, "
            f"{100 * calibration['ece_before']:.2f}% uncalibrated)"
        )
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left")
    count_ax.bar(edges[:-1], counts, width=1 / bins, align="edge", color="tab:gray", edgecolor="white")
    count_ax.set_yscale("log")
    count_ax.set_xlabel("confidence (probability of the predicted character)")
    count_ax.set_ylabel("images")
    return fig


def plot_coverage_accuracy(
    coverage: Sequence[float] | np.ndarray,
    accuracy: Sequence[float] | np.ndarray,
    threshold: Sequence[float] | np.ndarray,
) -> Figure:
    """Accuracy of the answers kept against the share of images answered, when the model answers only above a
    confidence threshold (the top axis): where to set `predict --min-confidence`."""
    coverage, accuracy, threshold = (np.asarray(a, dtype=np.float64) for a in (coverage, accuracy, threshold))
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot()
    ax.plot(100 * coverage, 100 * accuracy, color="tab:blue")
    for target in (0.5, 0.8, 0.9):  # mark a few thresholds on the curve
        at = int(np.argmin(np.abs(threshold - target)))
        ax.annotate(
            f"confidence >= {threshold[at]:.2f}",
            (100 * coverage[at], 100 * accuracy[at]),
            textcoords="offset points",
            xytext=(-10, 10),
            ha="right",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "gray"},
        )
    ax.set_xlabel("images answered (%)")
    ax.set_ylabel("accuracy of the answers (%)")
    ax.set_xlim(0, 100)
    ax.set_title("Answering only when sure: accuracy against coverage")
    ax.grid(alpha=0.3)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Training curves
# ----------------------------------------------------------------------------------------------------------------


def plot_training_history(history: Mapping[str, Sequence[float]], monitor: str = "val_loss") -> Figure:
    """Loss, accuracy and learning rate per epoch, training and validation side by side.

    `history` is History.to_dict(): lists `epoch`, `train_loss`, `val_loss`, `train_acc`, `val_acc`, `lr`.
    The dotted line marks the epoch best_model.pth holds: the lowest validation loss, or with
    `monitor="val_acc"` the highest validation accuracy (the run's config.monitor).
    """
    epochs = list(history.get("epoch") or range(1, len(history.get("train_loss", [])) + 1))
    scores = history.get(monitor)
    best = None
    if scores:
        best = epochs[int(np.nanargmin(scores) if monitor == "val_loss" else np.nanargmax(scores))]
    fig = _figure(15.0, 4.2)
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    marker = "o" if len(epochs) <= 30 else None
    for ax, key, name in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
        for part, style, label in (("train", "-", "training"), ("val", "--", "validation")):
            values = history.get(f"{part}_{key}")
            if values:
                ax.plot(epochs[: len(values)], values, style, marker=marker, markersize=3, label=label)
        if best is not None:
            ax.axvline(best, color="0.5", linestyle=":", linewidth=1, label=f"best: epoch {best}")
        ax.set_title(name.capitalize())
        ax.set_ylabel(name)
        ax.legend()
    if history.get("lr"):
        lr_ax.plot(epochs[: len(history["lr"])], history["lr"], color="tab:purple", marker=marker, markersize=3)
        lr_ax.set_yscale("log")
    lr_ax.set_title("Learning rate (at the end of each epoch)")
    lr_ax.set_ylabel("learning rate")
    for ax in (loss_ax, acc_ax, lr_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    return fig


HISTORY_NAMES = {
    "train_loss": "training loss",
    "val_loss": "validation loss",
    "train_acc": "training accuracy",
    "val_acc": "validation accuracy",
    "lr": "learning rate",
    "epoch_time": "seconds per epoch",
}


def plot_runs_history(
    histories: Mapping[str, Mapping[str, Sequence[float]]], keys: Sequence[str] = ("val_acc", "val_loss")
) -> Figure:
    """Several runs' curves on shared axes, one panel per history key (History.to_dict() names), one line per run:
    which run learned faster, and where each stopped. `histories`: {run name: history}, e.g. glyphkit.runs.histories."""
    fig = _figure(6.5 * len(keys), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    for ax, key in zip(axes, keys):
        for name, history in histories.items():
            values = history.get(key) or []
            epochs = list(history.get("epoch") or range(1, len(values) + 1))[: len(values)]
            if values:
                ax.plot(epochs, values, marker="o" if len(values) <= 30 else None, markersize=3, label=name)
        ax.set_title(HISTORY_NAMES.get(key, key).capitalize())
        ax.set_xlabel("epoch")
        ax.set_ylabel(HISTORY_NAMES.get(key, key))
        if key == "lr":
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        if histories:
            ax.legend(fontsize=8)
    return fig


def plot_lr_finder(
    lrs: Sequence[float], losses: Sequence[float], suggestion: float | None = None, steep: float | None = None
) -> Figure:
    """The learning-rate range test: loss against learning rate (log axis), with the suggestions marked."""
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot()
    ax.plot(lrs, losses, color="tab:blue")
    ax.set_xscale("log")
    for value, name, color in ((suggestion, "suggestion", "tab:red"), (steep, "steepest descent", "tab:orange")):
        if value is not None and len(lrs):
            y = float(np.interp(np.log10(value), np.log10(lrs), losses))
            ax.axvline(value, color=color, linestyle="--", linewidth=1)
            ax.plot([value], [y], "o", color=color, label=f"{name}: {value:.2e}")
    finite = losses[np.isfinite(losses)]
    if len(finite):  # the loss explodes at the end of the test; keep the informative part in view
        low, start = float(finite.min()), float(finite[0])
        ax.set_ylim(low - 0.05 * abs(start - low) - 1e-3, start + 0.5 * abs(start - low) + 1e-3)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss (smoothed)")
    ax.set_title("Learning-rate finder")
    ax.grid(alpha=0.3, which="both")
    if suggestion is not None or steep is not None:
        ax.legend()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Glyph images (already upright: glyphkit.data transposes EMNIST's stored images once, on load)
# ----------------------------------------------------------------------------------------------------------------


def plot_glyph_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 10,
    title: str | None = None,
    title_colors: Sequence[str] | None = None,
    vmax: float | None = 255,
) -> Figure:
    """Images in a grid, each with an optional title; shown as they are (no transposing here)."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    has_titles = titles is not None
    fig = _figure(1.25 * ncols, (1.5 if has_titles else 1.25) * nrows + (0.4 if title else 0))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap=IMAGE_CMAP, vmin=0, vmax=vmax, interpolation="nearest")
        if has_titles:
            color = title_colors[i] if title_colors is not None else "black"
            ax.set_title(titles[i], fontsize=8, color=color, fontfamily="monospace")
    if title:
        fig.suptitle(title)
    return fig


def plot_page(result, image=None) -> Figure:
    """A page as `predict(..., segment=True)` read it: each character's box, coloured by its row of writing, with
    the character read above it, and the text in the title. `result`: a predict.FileResult; `image`: the page
    (default: read from result.file)."""
    from glyphkit.preprocess import read_image  # (scikit-image: only when a page is drawn)

    image = read_image(result.file) if image is None else image
    scale = 8 / max(image.size)
    fig = _figure(image.width * scale, image.height * scale + 0.6)
    ax = fig.subplots()
    ax.imshow(np.asarray(image.convert("RGB")))
    ax.set_axis_off()
    palette = sns.color_palette("tab10")
    for g in result.glyphs:
        x, y, w, h = g.box
        colour = palette[g.line % len(palette)]
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.5))
        ax.text(x + w / 2, y - 2, g.prediction, color=colour, ha="center", va="bottom", fontsize=10, weight="bold")
    text = result.text.replace("\n", " / ") if result.error is None else result.error
    ax.set_title(f"{Path(result.file).name}: {text}", fontsize=9, fontfamily="monospace")
    return fig


def plot_misclassified_examples(
    images_uint8_upright: Sequence[np.ndarray] | np.ndarray,
    true_chars: Sequence[str],
    pred_chars: Sequence[str],
    confidences: Sequence[float] | np.ndarray,
    ncols: int = 8,
    title: str = "Misclassified examples",
    ambiguous: Sequence[bool] | None = None,
) -> Figure:
    """Mistakes with 'true → predicted' and the model's confidence above each glyph.

    With `ambiguous` (one flag per image), look-alike confusions (O → 0, l → 1, ...) are titled in orange and
    marked ≈, the others in red: the red ones are the model's real failures.
    """
    flags = list(ambiguous) if ambiguous is not None else [False] * len(true_chars)
    titles = [
        f"{t} → {p}{' ≈' if a else ''}\n{100 * float(c):.0f}%"
        for t, p, c, a in zip(true_chars, pred_chars, confidences, flags)
    ]
    if not len(titles):
        fig = _figure(4.0, 1.5)
        fig.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        return fig
    if ambiguous is not None:
        title += "\norange ≈: look-alike characters (ambiguity group), red: other mistakes"
    return plot_glyph_grid(
        images_uint8_upright,
        titles,
        ncols=ncols,
        title=title,
        title_colors=["darkorange" if a else "firebrick" for a in flags],
    )


def class_mean_images(images: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Average image of each class (float [C, H, W], zeros for absent classes); one pass per class."""
    images, labels = np.asarray(images), np.asarray(labels)
    means = np.zeros((num_classes, *images.shape[1:]), dtype=np.float64)
    for c in range(num_classes):
        members = images[labels == c]
        if len(members):
            means[c] = members.mean(axis=0)
    return means


def plot_mean_images(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    ncols: int = 12,
    title: str = "Average glyph of each character",
) -> Figure:
    """The mean image per character: shows the typical shape and how much writers vary (blur)."""
    means = class_mean_images(images, labels, len(classes))
    return plot_glyph_grid(means, list(classes), ncols=ncols, title=title, vmax=None)


def plot_pixel_histogram(images: np.ndarray, title: str, bin_width: int = 1) -> Figure:
    """Histogram of uint8 pixel values (log scale): mostly empty background, a peak of saturated ink, soft edges.

    EMNIST's grey levels form a regular comb (an artefact of how the 128x128 NIST scans were resampled and
    rescaled to 28x28); wider bins do not smooth it away, they alias it, so the default shows every value."""
    counts = np.bincount(np.asarray(images).ravel() // bin_width, minlength=256 // bin_width)
    fig = _figure(7.0, 3.5)
    ax = fig.add_subplot()
    ax.bar(
        np.arange(len(counts)) * bin_width,
        counts,
        width=bin_width,
        align="edge",
        color="tab:blue",
        edgecolor="white" if bin_width > 2 else "none",
        linewidth=0.5,
    )
    ax.set_yscale("log")
    ax.set_xlim(0, 256)
    ax.set_xlabel("pixel value (0 = background, 255 = full ink)" + (f", bins of {bin_width}" if bin_width > 1 else ""))
    ax.set_ylabel("pixels (log scale)")
    ax.set_title(title)
    return fig
