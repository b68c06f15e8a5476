"""Small helpers the notebooks in `notebooks/` call, so their cells stay a few lines of glyphkit calls.

What lives here:
    quick mode        `GLYPHKIT_QUICK=1` shrinks the work (3,000 training images, 2,000 test images, 1 epoch,
                      20 LR-finder steps) through the very same functions: a smoke run, not a measurement.
    choose_split      which split (and data folder) a notebook really uses; in quick mode a missing split falls
                      back to a local proxy split, then to synthetic font glyphs (said loudly).
    notebook_config   a Config from the notebooks' parameters, with quick mode applied.
    run folder        `run_dir=None` means `$GLYPHKIT_RUN_DIR`, else `runs/notebook` (relative to the kernel's
                      working folder): the five notebooks chain through it.
    train / ensure_trained_run / use_lr_choice   the training step 03 runs, and 04/05 reuse when no model exists.
    tables and small figures for the exploration notebook (pixel statistics, class samples, look-alikes).

Importing this module in a Jupyter kernel makes matplotlib Figures display as PNG when they are a cell's result
(glyphkit.plots returns Figure objects without touching pyplot, so IPython would otherwise show their repr).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from glyphkit import checkpoint as ckpt
from glyphkit.config import Config

QUICK_ENV = "GLYPHKIT_QUICK"  # "1": quick mode
RUN_DIR_ENV = "GLYPHKIT_RUN_DIR"  # the notebooks' run folder when their run_dir parameter is None
DEFAULT_RUN_DIR = "runs/notebook"

# What quick mode shrinks; every notebook still calls the same functions with these values.
QUICK = {"limit_train": 3000, "limit_test": 2000, "epochs": 1, "lr_finder_steps": 20}
LR_FINDER_STEPS = 100  # glyphkit.lr_finder.find_lr's default

# Real-glyph stand-ins for the official splits (see the data folder's README): same label space.
PROXIES = {"balanced": "proxy47", "bymerge": "proxy47", "byclass": "proxy62"}

# Characters of the synthetic fallback, by the class count of the split that was asked for.
BALANCED_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"
BYCLASS_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SYNTHETIC_PREFIX = "synthetic"
SYNTHETIC_TRAIN_PER_CLASS, SYNTHETIC_TEST_PER_CLASS = 64, 20

Log = Callable[[str], None]


# ----------------------------------------------------------------------------------------------------------------
# Quick mode and the run folder
# ----------------------------------------------------------------------------------------------------------------

def quick_mode() -> bool:
    """True when `GLYPHKIT_QUICK` is set to something other than "", "0", "false", "no" or "off"."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def resolve_run_dir(run_dir: str | os.PathLike | None = None) -> Path:
    """The run folder: `run_dir`, else `$GLYPHKIT_RUN_DIR`, else `runs/notebook` (relative to the working folder)."""
    return Path(run_dir or os.environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR)


def lr_finder_steps(num_steps: int | None = None) -> int:
    """Steps of the LR range test: `num_steps`, else 100 (20 in quick mode)."""
    if num_steps is not None:
        return int(num_steps)
    return QUICK["lr_finder_steps"] if quick_mode() else LR_FINDER_STEPS


def eval_limit(limit_test: int | None = None) -> int | None:
    """Test images to evaluate on: `limit_test`, else all (2,000 in quick mode)."""
    if limit_test is not None:
        return int(limit_test)
    return QUICK["limit_test"] if quick_mode() else None


# ----------------------------------------------------------------------------------------------------------------
# Which data
# ----------------------------------------------------------------------------------------------------------------

def is_synthetic(split: str) -> bool:
    return split.startswith(SYNTHETIC_PREFIX)


def synthetic_dir() -> Path:
    return Path(tempfile.gettempdir()) / "glyphkit-synthetic-emnist"


def write_synthetic(split: str = "balanced", folder: str | os.PathLike | None = None) -> tuple[str, Path]:
    """EMNIST-format files of font-rendered glyphs (NOT handwriting) for `split`'s characters; (name, folder).

    Written once into a temporary folder and reused; a half-written folder is never left behind.
    """
    from glyphkit.data import find_sources
    from glyphkit.synthetic import write_emnist_split

    chars = BYCLASS_CHARS if split in ("byclass", "proxy62") else BALANCED_CHARS
    name = f"{SYNTHETIC_PREFIX}{len(chars)}"
    folder = Path(folder) if folder is not None else synthetic_dir()
    if folder.is_dir() and name in find_sources(folder):
        return name, folder
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        write_emnist_split(staging, name, chars, train_per_class=SYNTHETIC_TRAIN_PER_CLASS,
                           test_per_class=SYNTHETIC_TEST_PER_CLASS)
        for path in staging.iterdir():
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return name, folder


def synthetic_warning(split: str) -> str:
    return (f"!!! SYNTHETIC DATA: split {split!r} is glyphs drawn from a computer font (not handwriting), "
            "so that the notebooks run on a machine without EMNIST. Every number and picture below is about "
            "those font glyphs and says NOTHING about handwriting recognition. Set GLYPHKIT_DATA_DIR to a folder "
            "with EMNIST (or run without GLYPHKIT_QUICK to download it) for real results. !!!")


def split_is_local(split: str, data_dir: str | os.PathLike | None = None) -> bool:
    """True when all four files of `split` are on this machine (data_dir / $GLYPHKIT_DATA_DIR / cache)."""
    from glyphkit.data import DataError, locate_split

    try:
        locate_split(split, data_dir, download=False)
    except DataError:
        return False
    return True


def choose_split(split: str = "balanced", data_dir: str | os.PathLike | None = None, *, quick: bool | None = None,
                 log: Log = print) -> tuple[str, str | None]:
    """The (split, data folder) a notebook uses for the requested split.

    The requested split when its files are on this machine (data_dir / $GLYPHKIT_DATA_DIR / the cache).
    Outside quick mode that is all: loading then downloads an official split, or fails with a clear DataError.
    In quick mode nothing is downloaded; a missing split is replaced by a local proxy split of real glyphs
    (balanced -> proxy47, byclass -> proxy62), and when there is none, by synthetic font glyphs in a temporary
    folder. Every replacement is announced.
    """
    from glyphkit.data import DataError

    quick = quick_mode() if quick is None else quick
    folder = str(Path(data_dir).expanduser()) if data_dir else None
    if is_synthetic(split):  # e.g. a run folder trained on the fallback: find (or rewrite) its files
        if folder is not None and Path(folder).is_dir() and split_is_local(split, folder):
            return split, folder
        name, where = write_synthetic("byclass" if split.endswith("62") else "balanced")
        log(synthetic_warning(name))
        return name, str(where)
    explicit = folder or os.environ.get("GLYPHKIT_DATA_DIR")
    if explicit and not Path(explicit).expanduser().is_dir():  # a typo, not a reason to fall back
        raise DataError(f"data folder {explicit} does not exist; pass data_dir (or set GLYPHKIT_DATA_DIR) with the "
                        "folder that holds the EMNIST files (or NIST's gzip.zip)")
    if not quick or split_is_local(split, folder):
        return split, folder
    for proxy in dict.fromkeys(p for p in (PROXIES.get(split), "proxy47", "proxy62") if p):
        if split_is_local(proxy, folder):
            log(f"quick mode: split {split!r} is not on this machine, so this notebook uses {proxy!r} instead: "
                "real EMNIST handwriting, a stand-in split (see the data folder's README). Numbers are "
                f"'{proxy} test accuracy', not '{split}' results.")
            return proxy, folder
    name, where = write_synthetic(split)
    log(synthetic_warning(name))
    return name, str(where)


# ----------------------------------------------------------------------------------------------------------------
# Config and data
# ----------------------------------------------------------------------------------------------------------------

def quick_banner() -> str:
    return (f"QUICK MODE ({QUICK_ENV}=1): at most {QUICK['limit_train']:,} training and {QUICK['limit_test']:,} "
            f"test images, {QUICK['epochs']} epoch, {QUICK['lr_finder_steps']} LR-finder steps. Same code, less "
            f"work: a smoke run, not a measurement. Unset {QUICK_ENV} for the real thing.")


def notebook_config(split: str = "balanced", epochs: int | None = None, run_dir: str | os.PathLike | None = None,
                    data_dir: str | os.PathLike | None = None, *, log: Log = print, **overrides: Any) -> Config:
    """A Config from a notebook's parameters: defaults < non-None parameters < quick mode's limits.

    `overrides` are Config fields (None values are ignored, so a parameter left at None keeps the default).
    The split goes through choose_split; the run folder through resolve_run_dir (stored as output_dir).
    """
    quick = quick_mode()
    chosen, folder = choose_split(split, data_dir, quick=quick, log=log)
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(changes) - set(Config.__dataclass_fields__))
    if unknown:
        raise TypeError(f"notebook_config got unknown settings {unknown}; use Config's field names")
    if epochs is not None:
        changes["epochs"] = int(epochs)
    extra = dict(changes.pop("extra", {}) or {})
    if quick:
        changes["epochs"] = min(changes.get("epochs", Config.epochs), QUICK["epochs"])
        for key in ("limit_train", "limit_test"):
            changes[key] = min(changes.get(key) or QUICK[key], QUICK[key])
        extra["quick_mode"] = True
        log(quick_banner())
    if is_synthetic(chosen):
        extra["data_note"] = "synthetic font-rendered glyphs, not handwriting"
    config = Config().replace(split=chosen, data_dir=folder, output_dir=str(resolve_run_dir(run_dir)), extra=extra,
                              **changes)
    return config.validate()


def load_data(config: Config, *, log: Log = print):
    """The config's split in memory (glyphkit.data.load_split with the config's settings)."""
    from glyphkit.data import load_split

    data = load_split(config.split, config.data_dir, val_split=config.val_split, seed=config.seed,
                      limit_train=config.limit_train, limit_test=config.limit_test,
                      download=not quick_mode())
    sizes = ", ".join(f"{k} {v:,}" for k, v in data.sizes().items())
    log(f"{data.split}: {data.num_classes} classes, {sizes} images"
        + (" (limited: quick mode)" if config.extra.get("quick_mode") else ""))
    if is_synthetic(data.split):
        log(synthetic_warning(data.split))
    return data


def use_lr_choice(config: Config, lr: float | None = None, *, log: Log = print) -> Config:
    """The learning rate to train with: `lr` when given, else run_dir/lr.json (02_lr_finder's choice), else the
    config's default. Says which."""
    from glyphkit.lr_finder import LR_CHOICE_FILE, load_lr_choice

    path = Path(config.output_dir) / LR_CHOICE_FILE
    if lr is not None:
        log(f"learning rate {float(lr):.2e} (given as a parameter; {path} is not read)")
        return config.replace(lr=float(lr)).validate()
    choice = load_lr_choice(config.output_dir)
    if choice is None:
        log(f"learning rate {config.lr:.2e} (the default: no {path}; run 02_lr_finder first to choose one)")
        return config
    how = "the LR finder's suggestion" if choice.get("accepted") else "chosen instead of the suggestion"
    suggestion = choice.get("suggestion")
    log(f"learning rate {choice['lr']:.2e} from {path} ({how}"
        + (f", suggestion {suggestion:.2e}" if suggestion else "") + f", source {choice.get('source')})")
    return config.replace(lr=float(choice["lr"])).validate()


# ----------------------------------------------------------------------------------------------------------------
# Training (03), and a model for 04/05 when the run folder has none
# ----------------------------------------------------------------------------------------------------------------

def train(config: Config, data, *, overwrite: bool = True, progress: bool = True, log: Log = print):
    """Train like `python -m glyphkit train --skip-eval`: Trainer(config, data, run_dir).fit(), then
    training_history.png. The run folder gets best_model.pth, latest_checkpoint.pth, config.json,
    history.json and training_history.png. Returns the Trainer (best weights loaded)."""
    from glyphkit.plots import plot_training_history, save_figure
    from glyphkit.training import Trainer

    run_dir = Path(config.output_dir)
    trainer = Trainer(config, data, run_dir, progress=progress, overwrite=overwrite, log=log)
    log(f"training {trainer.config.model} on {trainer.device} ({trainer.amp_dtype or 'fp32'}) for up to "
        f"{trainer.config.epochs} epoch(s), lr {trainer.config.lr:.2e}, run folder {run_dir.resolve()}")
    history = trainer.fit()
    if history.epoch:
        save_figure(plot_training_history(history.to_dict(), monitor=trainer.config.monitor),
                    run_dir / "training_history.png")
    log(f"{trainer.best_summary()}; weights in {run_dir / ckpt.BEST}")
    return trainer


def ensure_trained_run(run_dir: str | os.PathLike | None = None, split: str | None = None,
                       data_dir: str | os.PathLike | None = None, *, log: Log = print) -> Path:
    """The run folder, with a trained model in it.

    When `run_dir` has no best_model.pth: in quick mode a quick model is trained there now (the same `train`
    call 03_train makes); otherwise this stops with a CheckpointError that says to run 03_train first.
    """
    folder = resolve_run_dir(run_dir)
    best = folder / ckpt.BEST
    if best.is_file():
        saved = ckpt.checkpoint_config(ckpt.load_checkpoint(best))
        log(f"using {best.resolve()}: {saved.model} trained on {saved.split} "
            f"({len(saved.classes or [])} classes, up to {saved.epochs} epoch(s))")
        if is_synthetic(saved.split):
            log(synthetic_warning(saved.split))
        return folder
    if not quick_mode():
        raise ckpt.CheckpointError(
            f"{folder.resolve()} has no {ckpt.BEST}: run 03_train.ipynb first with the same run_dir "
            f"(or set {QUICK_ENV}=1 to let this notebook train a quick model itself)")
    log(f"{folder} has no {ckpt.BEST} yet; quick mode trains a quick model there first (as 03_train does)")
    config = notebook_config(split or "balanced", run_dir=folder, data_dir=data_dir, log=log)
    train(config, load_data(config, log=log), overwrite=True, log=log)
    return folder


def evaluation_args(run_dir: str | os.PathLike | None = None, split: str | None = None,
                    data_dir: str | os.PathLike | None = None, limit_test: int | None = None, *,
                    log: Log = print) -> dict[str, Any]:
    """split, data_dir and limit_test for glyphkit.evaluation.evaluate_run / evaluate_checkpoint.

    split None: the split the model was trained on (its files rewritten when it was the synthetic fallback
    and they are gone); a split given goes through choose_split. limit_test: eval_limit.
    """
    if split is None:
        saved = ckpt.checkpoint_config(ckpt.load_checkpoint(resolve_run_dir(run_dir) / ckpt.BEST))
        if is_synthetic(saved.split):
            split, data_dir = choose_split(saved.split, data_dir or saved.data_dir, log=log)
            return {"split": split, "data_dir": data_dir, "limit_test": eval_limit(limit_test)}
        return {"split": None, "data_dir": data_dir, "limit_test": eval_limit(limit_test)}
    split, data_dir = choose_split(split, data_dir, log=log)
    return {"split": split, "data_dir": data_dir, "limit_test": eval_limit(limit_test)}


# ----------------------------------------------------------------------------------------------------------------
# Showing things
# ----------------------------------------------------------------------------------------------------------------

def show_png(path: str | os.PathLike, width: int | None = None):
    """A PNG from the run folder, as a cell's result (IPython Image)."""
    from IPython.display import Image

    return Image(filename=str(path), width=width)


def show_text(path: str | os.PathLike) -> None:
    print(Path(path).read_text())


def format_lr(value: float | None) -> str:
    return "none" if value is None else f"{value:.2e}"


def run_folder_table(run_dir: str | os.PathLike | None = None):
    """The files in a run folder and their sizes."""
    import pandas as pd

    folder = resolve_run_dir(run_dir)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    table = pd.DataFrame({"file": [p.name for p in files], "KiB": [round(p.stat().st_size / 1024, 1) for p in files]})
    table.index = pd.RangeIndex(1, len(files) + 1)
    table.columns.name = str(folder.resolve())
    return table


def metrics_table(metrics: dict[str, Any]):
    """The headline numbers of metrics.json as a small table."""
    import pandas as pd

    rows = {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "top3_accuracy") if k in metrics}
    table = pd.DataFrame({"plain": rows})
    if metrics.get("tta_metrics"):
        table["with TTA"] = pd.Series({k: metrics["tta_metrics"].get(k) for k in rows})
    table.index.name = f"{metrics.get('split', '')} test ({metrics.get('num_test_images', 0):,} images)"
    return (table * 100).round(2).astype(str) + " %"


def confusions_table(pairs: Sequence):
    """ConfusionPairs (glyphkit.evaluation.top_confusions) as a table."""
    import pandas as pd

    return pd.DataFrame([{"true": p.true, "predicted": p.pred, "count": p.count,
                          "share of true": f"{100 * p.share:.1f} %", "look-alike": "yes" if p.ambiguous else ""}
                         for p in pairs], index=pd.RangeIndex(1, len(pairs) + 1, name="rank"))


def ambiguity_table(summary: dict[str, Any]):
    """glyphkit.evaluation.ambiguity_summary's per-group errors as a table."""
    import pandas as pd

    errors = max(summary["errors"], 1)
    return pd.DataFrame([{"group": row["group"], "errors": row["errors"],
                          "share of all errors": f"{100 * row['errors'] / errors:.1f} %"}
                         for row in summary["per_group"]])


def describe_ambiguity(evaluation, *, log: Log = print) -> dict[str, Any]:
    """Say how much of the error is confusion between look-alike characters; returns ambiguity_summary()."""
    amb = evaluation.ambiguity_summary()
    accuracy = evaluation.summary()["accuracy"]
    log(f"{amb['errors']:,} errors on {amb['images']:,} test images (accuracy {100 * accuracy:.2f} %).")
    log(f"{amb['ambiguous_errors']:,} of them ({100 * amb['ambiguous_share_of_errors']:.1f} %) confuse look-alike "
        "characters (glyphkit.evaluation.AMBIGUOUS_GROUPS): often no reader could tell them apart either.")
    log(f"Forgiving those, accuracy would be {100 * amb['accuracy_forgiving_ambiguity']:.2f} %; the rest of the "
        "errors is what the model still has to learn.")
    return amb


def plot_mistakes(found, title: str):
    """plots.plot_misclassified_examples for an evaluation's Mistakes (look-alike ones marked when known)."""
    from glyphkit.plots import plot_misclassified_examples

    images = found.images if found.images is not None and len(found.index) else np.zeros((0, 28, 28), np.uint8)
    ambiguous = getattr(found, "ambiguous", None)
    extra = {"ambiguous": ambiguous} if ambiguous is not None and len(found.index) else {}
    return plot_misclassified_examples(images, found.true, found.pred, found.confidence, title=title, **extra)


def plot_top_pair(evaluation, k: int = 16):
    """Examples of the most frequent confusion (true -> predicted)."""
    pairs = evaluation.top_confusions(1)
    if not pairs:
        return plot_mistakes(evaluation.worst_mistakes(0), "No mistakes")
    pair = pairs[0]
    return plot_mistakes(evaluation.mistakes_between(pair.true, pair.pred, k),
                         f"The most frequent confusion: {pair.true} read as {pair.pred} ({pair.count} times)")


# ----------------------------------------------------------------------------------------------------------------
# Exploration (01)
# ----------------------------------------------------------------------------------------------------------------

def sizes_table(data):
    import pandas as pd

    sizes = data.sizes()
    total = sum(sizes.values())
    return pd.DataFrame({"images": sizes, "share": {k: f"{100 * v / total:.1f} %" for k, v in sizes.items()}})


def class_counts(data, part: str = "train") -> np.ndarray:
    """Images per class in one part (train, val or test)."""
    _, labels = data.part(part)
    return np.bincount(labels.numpy(), minlength=data.num_classes)


def pixel_statistics(data):
    """Per part: mean and std of pixels in [0, 1] (training's mean/std normalise every input), the share of
    ink pixels (> 0.5) and the mean ink per glyph."""
    import pandas as pd

    from glyphkit.data import pixel_stats

    rows = {}
    for part in ("train", "val", "test"):
        images, _ = data.part(part)
        if not len(images):
            continue
        mean, std = pixel_stats(images)
        ink = images > 127
        rows[part] = {"mean": round(mean, 4), "std": round(std, 4), "ink pixels": f"{100 * ink.float().mean():.1f} %",
                      "ink pixels per glyph": round(float(ink.sum((1, 2)).float().mean()), 1)}
    return pd.DataFrame(rows).T


def plot_pixel_histogram(data, part: str = "train", bin_width: int = 1):
    """Histogram of pixel values (log scale): mostly empty background, a peak of saturated ink, soft edges.

    EMNIST's grey levels form a regular comb (an artefact of how the 128x128 NIST scans were resampled and
    rescaled to 28x28); wider bins do not smooth it away, they alias it, so the default shows every value."""
    from matplotlib.figure import Figure

    images, _ = data.part(part)
    counts = np.bincount(images.numpy().ravel() // bin_width, minlength=256 // bin_width)
    fig = Figure(figsize=(7.0, 3.5), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(np.arange(len(counts)) * bin_width, counts, width=bin_width, align="edge", color="tab:blue",
           edgecolor="white" if bin_width > 2 else "none", linewidth=0.5)
    ax.set_yscale("log")
    ax.set_xlim(0, 256)
    ax.set_xlabel("pixel value (0 = background, 255 = full ink)" + (f", bins of {bin_width}" if bin_width > 1 else ""))
    ax.set_ylabel("pixels (log scale)")
    ax.set_title(f"Pixel values of the {part} images ({len(images):,} glyphs)")
    return fig


def montage(images: np.ndarray, side: int, gap: int = 1, gap_value: int = 40) -> np.ndarray:
    """Up to side*side images [K, 28, 28] tiled into one square image (missing tiles stay blank)."""
    h, w = images.shape[1:]
    out = np.full((side * h + (side - 1) * gap, side * w + (side - 1) * gap), gap_value, dtype=np.uint8)
    for i in range(side * side):
        r, c = divmod(i, side)
        tile = images[i] if i < len(images) else np.zeros((h, w), np.uint8)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = tile
    return out


def class_samples(data, side: int = 3, part: str = "train", seed: int = 0) -> np.ndarray:
    """For every class, a side x side montage of random samples (upright): [C, H, W] for plots.plot_glyph_grid."""
    images, labels = data.part(part)
    images, labels = images.numpy(), labels.numpy()
    rng = np.random.default_rng(seed)
    tiles = []
    for c in range(data.num_classes):
        members = np.flatnonzero(labels == c)
        pick = rng.choice(members, size=min(side * side, len(members)), replace=False) if len(members) else []
        tiles.append(montage(images[pick] if len(pick) else np.zeros((0, 28, 28), np.uint8), side))
    return np.stack(tiles)


def ambiguous_examples(data, groups: Sequence[str] | None = None, per_char: int = 2, part: str = "train",
                       seed: int = 0) -> tuple[np.ndarray, list[str], int]:
    """(images, titles, ncols): one row per look-alike group present in the split, `per_char` samples of each
    member, blank tiles at the end of shorter rows. For plots.plot_glyph_grid(images, titles, ncols=ncols)."""
    from glyphkit.evaluation import AMBIGUOUS_GROUPS, groups_present

    present = groups_present(data.classes, AMBIGUOUS_GROUPS if groups is None else groups)
    if not present:
        return np.zeros((0, 28, 28), np.uint8), [], 1
    images, labels = data.part(part)
    images, labels = images.numpy(), labels.numpy()
    rng = np.random.default_rng(seed)
    ncols = max(len(g) for g in present) * per_char
    tiles, titles = [], []
    for group in present:
        row, row_titles = [], []
        for ch in group:
            members = np.flatnonzero(labels == data.classes.index(ch))
            pick = rng.choice(members, size=min(per_char, len(members)), replace=False) if len(members) else []
            row += [images[i] for i in pick] + [np.zeros((28, 28), np.uint8)] * (per_char - len(pick))
            row_titles += [ch] * per_char
        row += [np.zeros((28, 28), np.uint8)] * (ncols - len(row))
        row_titles += [""] * (ncols - len(row_titles))
        tiles += row
        titles += row_titles
    return np.stack(tiles), titles, ncols


# ----------------------------------------------------------------------------------------------------------------
# Figures as cell results
# ----------------------------------------------------------------------------------------------------------------

def enable_figure_display(dpi: int = 100) -> bool:
    """Make matplotlib Figure objects display as PNG when they are a cell's result (in an IPython kernel).

    IPython registers that formatter only once pyplot's inline backend is active; glyphkit.plots never
    touches pyplot, so without this a returned Figure would show as '<Figure size ...>'. No-op outside IPython.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return False
    select_figure_formats(shell, {"png"}, dpi=dpi, bbox_inches="tight")
    return True


enable_figure_display()
