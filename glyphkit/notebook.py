"""What only the notebooks need; the pipeline steps themselves are glyphkit.workflows, as for the command line.

quick mode          `GLYPHKIT_QUICK=1` shrinks the work (3,000 training images, 2,000 test images, 1 epoch,
                    20 LR-finder steps) through the very same functions: a smoke run, not a measurement.
choose_split        which split (and data folder) a notebook really uses; in quick mode a missing split
                    falls back to a local proxy split, then to synthetic font glyphs (said loudly).
notebook_config     a Config from the notebooks' parameters, with quick mode applied.
run folder          `run_dir=None` means `$GLYPHKIT_RUN_DIR`, else `runs/notebook` (relative to the kernel's
                    working folder): the notebooks chain through it.
ensure_trained_run  04/05 need a model: the run folder's, or in quick mode one trained the way 03 trains.
ensure_piece_model  06 reads pages with the run's piece model: the run folder's, or one trained now when asked (in
                    quick mode a small one, always).
ensure_line_model   ... and each row whole with the run's line model: the run folder's, or one trained now when asked.
compare_folder      07 compares the runs in the folder that holds the shared run folder (runs/).
display             figures as cell results (enable_figure_display), PNGs and text files of the run folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from glyphkit import workflows
from glyphkit.config import Config
from glyphkit.data import DataError, GlyphData, cache_dir, locate_split
from glyphkit.inference import load_trained_run
from glyphkit.lines import LINE_MODEL, train_line_model
from glyphkit.pieces import PIECE_MODEL, train_piece_model
from glyphkit.rundir import BEST, CheckpointError, checkpoint_config, load_checkpoint
from glyphkit.synthetic import write_emnist_split
from glyphkit.training import Trainer

QUICK_ENV = "GLYPHKIT_QUICK"  # "1": quick mode
RUN_DIR_ENV = "GLYPHKIT_RUN_DIR"  # the notebooks' run folder when their run_dir parameter is None
DEFAULT_RUN_DIR = "runs/notebook"

# What quick mode shrinks; every notebook still calls the same functions with these values.
QUICK = {"limit_train": 3000, "limit_test": 2000, "epochs": 1, "lr_finder_steps": 20}
QUICK_PIECES = {"lines": 40, "epochs": 1}  # quick mode's piece model: a smoke run of train-pieces, not a useful one
QUICK_LINES = {"lines": 60, "epochs": 1}  # quick mode's line model, when asked for: a smoke run of train-lines
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
    """Where the synthetic fallback is kept: the user's own cache, not a shared /tmp folder that another user
    could create first."""
    return cache_dir() / "synthetic"


def write_synthetic(split: str = "balanced", folder: str | os.PathLike | None = None) -> tuple[str, Path]:
    """EMNIST-format files of font-rendered glyphs (NOT handwriting) for `split`'s characters; (name, folder).

    Written once into `folder/<name>` (default: synthetic_dir()) and reused. They are written into a temporary
    sibling folder that is then renamed into place, so a split appears whole or not at all: a killed write
    leaves nothing a later run would take for the split.
    """
    chars = BYCLASS_CHARS if split in ("byclass", "proxy62") else BALANCED_CHARS
    name = f"{SYNTHETIC_PREFIX}{len(chars)}"
    target = Path(folder if folder is not None else synthetic_dir()) / name
    if _synthetic_complete(target, name):
        return name, target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        write_emnist_split(
            staging, name, chars, train_per_class=SYNTHETIC_TRAIN_PER_CLASS, test_per_class=SYNTHETIC_TEST_PER_CLASS
        )
        _rename_into_place(staging, target, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return name, target


def _synthetic_complete(folder: Path, name: str) -> bool:
    """True when `folder` holds all five files of the synthetic split `name`."""
    files = [
        f"emnist-{name}-{part}-{kind}-ubyte.gz" for part in ("train", "test") for kind in ("images-idx3", "labels-idx1")
    ] + [f"emnist-{name}-mapping.txt"]
    return all((folder / f).is_file() for f in files)


def _rename_into_place(staging: Path, target: Path, name: str) -> None:
    """Move the finished folder to `target` in one rename; an incomplete leftover there is replaced."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    try:
        os.rename(staging, target)
    except OSError:
        if not _synthetic_complete(target, name):  # else another process has just put a whole split there
            raise


def synthetic_warning(split: str) -> str:
    return (
        f"!!! SYNTHETIC DATA: split {split!r} is glyphs drawn from a computer font (not handwriting), "
        "so that the notebooks run on a machine without EMNIST. Every number and picture below is about "
        "those font glyphs and says NOTHING about handwriting recognition. Set GLYPHKIT_DATA_DIR to a folder "
        "with EMNIST (or run without GLYPHKIT_QUICK to download it) for real results. !!!"
    )


def split_is_local(split: str, data_dir: str | os.PathLike | None = None) -> bool:
    """True when all four files of `split` are on this machine (data_dir / $GLYPHKIT_DATA_DIR / cache)."""
    try:
        locate_split(split, data_dir, download=False)
    except DataError:
        return False
    return True


def choose_split(
    split: str = "balanced", data_dir: str | os.PathLike | None = None, *, quick: bool | None = None, log: Log = print
) -> tuple[str, str | None]:
    """The (split, data folder) a notebook uses for the requested split.

    The requested split when its files are on this machine (data_dir / $GLYPHKIT_DATA_DIR / the cache).
    Outside quick mode that is all: loading then downloads an official split, or fails with a clear DataError.
    In quick mode nothing is downloaded; a missing split is replaced by a local proxy split of real glyphs
    (balanced -> proxy47, byclass -> proxy62), and when there is none, by synthetic font glyphs kept in the user's
    cache (synthetic_dir). Every replacement is announced.
    """
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
        raise DataError(
            f"data folder {explicit} does not exist; pass data_dir (or set GLYPHKIT_DATA_DIR) with the "
            "folder that holds the EMNIST files (or NIST's gzip.zip)"
        )
    if not quick or split_is_local(split, folder):
        return split, folder
    for proxy in dict.fromkeys(p for p in (PROXIES.get(split), "proxy47", "proxy62") if p):
        if split_is_local(proxy, folder):
            log(
                f"quick mode: split {split!r} is not on this machine, so this notebook uses {proxy!r} instead: "
                "real EMNIST handwriting, a stand-in split (see the data folder's README). Numbers are "
                f"'{proxy} test accuracy', not '{split}' results."
            )
            return proxy, folder
    name, where = write_synthetic(split)
    log(synthetic_warning(name))
    return name, str(where)


# ----------------------------------------------------------------------------------------------------------------
# Config and data
# ----------------------------------------------------------------------------------------------------------------


def quick_banner() -> str:
    return (
        f"QUICK MODE ({QUICK_ENV}=1): at most {QUICK['limit_train']:,} training and {QUICK['limit_test']:,} "
        f"test images, {QUICK['epochs']} epoch, {QUICK['lr_finder_steps']} LR-finder steps. Same code, less "
        f"work: a smoke run, not a measurement. Unset {QUICK_ENV} for the real thing."
    )


def notebook_config(
    split: str = "balanced",
    epochs: int | None = None,
    run_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    log: Log = print,
    **overrides: Any,
) -> Config:
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
    config = Config().replace(
        split=chosen, data_dir=folder, output_dir=str(resolve_run_dir(run_dir)), extra=extra, **changes
    )
    return config.validate()


def load_data(config: Config, *, log: Log = print) -> GlyphData:
    """workflows.load_data for a notebook: no download in quick mode, and synthetic data labelled as such."""
    data = workflows.load_data(config, download=not quick_mode(), log=log)
    if is_synthetic(data.split):
        log(synthetic_warning(data.split))
    return data


# ----------------------------------------------------------------------------------------------------------------
# A model for 04/05
# ----------------------------------------------------------------------------------------------------------------


def ensure_trained_run(
    run_dir: str | os.PathLike | None = None,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    log: Log = print,
) -> Path:
    """The run folder, with a trained model in it.

    When `run_dir` has no best_model.pth: in quick mode a quick model is trained there now (the same steps
    03_train takes); otherwise this stops with a CheckpointError that says to run 03_train first.
    """
    folder = resolve_run_dir(run_dir)
    best = folder / BEST
    if best.is_file():
        saved = checkpoint_config(load_checkpoint(best))
        log(
            f"using {best.resolve()}: {saved.model} trained on {saved.split} "
            f"({len(saved.classes or [])} classes, up to {saved.epochs} epoch(s))"
        )
        if is_synthetic(saved.split):
            log(synthetic_warning(saved.split))
        return folder
    if not quick_mode():
        raise CheckpointError(
            f"{folder.resolve()} has no {BEST}: run 03_train.ipynb first with the same run_dir "
            f"(or set {QUICK_ENV}=1 to let this notebook train a quick model itself)"
        )
    log(f"{folder} has no {BEST} yet; quick mode trains a quick model there first (as 03_train does)")
    config = notebook_config(split or "balanced", run_dir=folder, data_dir=data_dir, log=log)
    config = workflows.choose_lr(config, log=log)
    workflows.train(Trainer(config, load_data(config, log=log), overwrite=True, log=log), log=log)
    return folder


def ensure_piece_model(
    run_dir: str | os.PathLike | None = None,
    train: bool = False,
    data_dir: str | os.PathLike | None = None,
    *,
    log: Log = print,
) -> Path | None:
    """The run's piece model (glyphkit.pieces), which cuts touching letters where each piece is one character.

    When the run has none: with `train`, one is trained now (`glyphkit train-pieces`'s defaults; in quick mode
    always, and small: QUICK_PIECES); else None, and the log says how to train one."""
    return _ensure_reading_model(
        run_dir,
        train or quick_mode(),
        data_dir,
        file=PIECE_MODEL,
        trainer=train_piece_model,
        quick=QUICK_PIECES,
        using="touching letters are cut where each piece reads as one character",
        without="touching letters are cut by the classifier alone",
        how="`glyphkit train-pieces {folder}` (or train_pieces = True here) to read them better",
        log=log,
    )


def ensure_line_model(
    run_dir: str | os.PathLike | None = None,
    train: bool = False,
    data_dir: str | os.PathLike | None = None,
    *,
    log: Log = print,
) -> Path | None:
    """The run's line model (glyphkit.lines), which reads rows of touching letters whole, so they need no cut.

    When the run has none: with `train`, one is trained now (`glyphkit train-lines`'s defaults; in quick mode small:
    QUICK_LINES); else None, and the log says how to train one. Unlike the piece model, quick mode does not train one
    unasked: a line model trained for seconds reads little but CTC's blank, and the pages would read as nothing."""
    return _ensure_reading_model(
        run_dir,
        train,
        data_dir,
        file=LINE_MODEL,
        trainer=train_line_model,
        quick=QUICK_LINES,
        using="rows of touching letters are read whole",
        without="rows are cut into characters",
        how="`glyphkit train-lines {folder}` (or train_lines = True here) to read touching letters without cuts",
        log=log,
    )


def _ensure_reading_model(
    run_dir: str | os.PathLike | None,
    train: bool,
    data_dir: str | os.PathLike | None,
    *,
    file: str,
    trainer: Callable[..., Path],
    quick: dict[str, int],
    using: str,
    without: str,
    how: str,
    log: Log,
) -> Path | None:
    """A second model of the run that `predict --segment` reads pages with (`file` in the run folder): found, or
    trained now with `trainer` when `train` (small, as `quick` says, in quick mode), never trained again or replaced."""
    folder = resolve_run_dir(run_dir)
    path = folder / file
    if path.is_file():
        log(f"using {path.resolve()}: {using}")
        return path
    if not train:
        log(f"{folder} has no {file}: {without}. Train one with {how.format(folder=folder)}")
        return None
    if quick_mode():
        log(f"quick mode trains a small {file}: it shows the step, it does not read pages well")
    data_dir = evaluation_args(folder, None, data_dir, log=log)["data_dir"]  # a synthetic run's files, rewritten
    return trainer(folder, data_dir=data_dir, progress=not quick_mode(), log=log, **(quick if quick_mode() else {}))


def compare_folder(
    runs_folder: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    log: Log = print,
) -> Path:
    """The folder whose runs 07_compare_runs tables: `runs_folder`, else the folder holding the shared run folder
    (runs/, where 03 trains and the CLI's --output-dir runs/NAME puts its runs). In quick mode a quick model is
    trained into the shared run folder first when it has none (as 04 does), so the notebook runs on its own."""
    if runs_folder is not None:
        return Path(runs_folder)
    if quick_mode():
        ensure_trained_run(run_dir, split, data_dir, log=log)
    return resolve_run_dir(run_dir).parent


def evaluation_args(
    run_dir: str | os.PathLike | None = None,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    limit_test: int | None = None,
    *,
    log: Log = print,
) -> dict[str, Any]:
    """split, data_dir and limit_test for workflows.evaluate_run / Interpretation.from_run.

    split None: the split the model was trained on (its files rewritten when it was the synthetic fallback
    and they are gone); a split given goes through choose_split. limit_test: eval_limit.
    """
    if split is None:
        saved = checkpoint_config(load_checkpoint(resolve_run_dir(run_dir) / BEST))
        if not is_synthetic(saved.split):
            return {"split": None, "data_dir": data_dir, "limit_test": eval_limit(limit_test)}
        split, data_dir = saved.split, data_dir or saved.data_dir
    split, data_dir = choose_split(split, data_dir, log=log)
    return {"split": split, "data_dir": data_dir, "limit_test": eval_limit(limit_test)}


def sample_images(
    run_dir: str | os.PathLike | None = None,
    count: int = 8,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    log: Log = print,
) -> Path:
    """Sample images made from the run's test glyphs (real handwriting the model never trained on), for
    06_predict to read when it runs headless: `count` single glyphs in samples/glyphs, a line of five in
    samples/lines and a ruled page of two lines of five in samples/pages, drawn as dark ink on light paper at four
    times EMNIST's size. Each file's name ends with the characters it shows (a page's rows joined by "_").
    Returns the samples folder."""
    folder = resolve_run_dir(run_dir) / "samples"
    for part in ("glyphs", "lines", "pages"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    run = load_trained_run(resolve_run_dir(run_dir), **evaluation_args(run_dir, split, data_dir, count + 15, log=log))
    classes = run.config.classes
    side = 112

    def ink(glyphs: torch.Tensor) -> np.ndarray:  # glyphs side by side, half a glyph apart
        tiles = [np.asarray(Image.fromarray(g.numpy()).resize((side, side), Image.BICUBIC)) for g in glyphs]
        strip = np.zeros((side + 32, len(tiles) * side * 3 // 2 + 32), np.uint8)
        for n, tile in enumerate(tiles):
            strip[16 : 16 + side, 16 + n * side * 3 // 2 : 16 + n * side * 3 // 2 + side] = tile
        return strip

    def paper(strip: np.ndarray) -> Image.Image:  # grey ink on white paper
        return Image.fromarray((255 - strip.astype(np.int32) * 3 // 4).astype(np.uint8))

    for i in range(count):
        paper(ink(run.images[i : i + 1])).save(folder / "glyphs" / f"sample{i}_{classes[run.labels[i]]}.png")
    line = "".join(classes[c] for c in run.labels[count : count + 5])
    paper(ink(run.images[count : count + 5])).save(folder / "lines" / f"line_{line}.png")
    rows = [(count + 5, count + 10), (count + 10, count + 15)]  # two rows of five (fewer on a small test set)
    rows = [(a, min(b, len(run.images))) for a, b in rows if a < len(run.images)]
    if rows:
        strips = [ink(run.images[a:b]) for a, b in rows]
        width = max(strip.shape[1] for strip in strips)
        page = np.concatenate([np.pad(strip, ((0, 0), (0, width - strip.shape[1]))) for strip in strips])
        page = np.asarray(paper(page).convert("RGB")).copy()
        for y in range(16 + side - 12, page.shape[0], side + 32):  # blue ruling under each row, as in a notebook
            page[y : y + 2] = (150, 180, 230)
        text = "_".join("".join(classes[c] for c in run.labels[a:b]) for a, b in rows)
        Image.fromarray(page).save(folder / "pages" / f"page_{text}.png")
    log(f"{count + 2} sample images from the {run.split} test split in {folder}")
    return folder


# ----------------------------------------------------------------------------------------------------------------
# Showing things
# ----------------------------------------------------------------------------------------------------------------


def show_png(path: str | os.PathLike, width: int | None = None):
    """A PNG from the run folder, as a cell's result (IPython Image)."""
    from IPython.display import Image  # IPython is there in a kernel; the rest of glyphkit does not need it

    return Image(filename=str(path), width=width)


def show_text(path: str | os.PathLike) -> None:
    print(Path(path).read_text())


def describe_ambiguity(interpretation, *, log: Log = print) -> dict[str, Any]:
    """Say how much of the error is confusion between look-alike characters; returns ambiguity_summary()."""
    amb = interpretation.ambiguity_summary()
    accuracy = interpretation.summary()["accuracy"]
    log(f"{amb['errors']:,} errors on {amb['images']:,} test images (accuracy {100 * accuracy:.2f} %).")
    log(
        f"{amb['ambiguous_errors']:,} of them ({100 * amb['ambiguous_share_of_errors']:.1f} %) confuse look-alike "
        "characters (glyphkit.interpret.AMBIGUOUS_GROUPS): often no reader could tell them apart either."
    )
    log(
        f"Forgiving those, accuracy would be {100 * amb['accuracy_forgiving_ambiguity']:.2f} %; the rest of the "
        "errors is what the model still has to learn."
    )
    return amb


def enable_figure_display(dpi: int = 100) -> bool:
    """Make matplotlib Figure objects display as PNG when they are a cell's result (in an IPython kernel).

    IPython registers that formatter only once pyplot's inline backend is active; glyphkit.plots never
    touches pyplot, so without this a returned Figure would show as '<Figure size ...>'. No-op outside IPython.
    The notebooks call it once, in their first code cell.
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
