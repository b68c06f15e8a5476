"""The command line: `python -m glyphkit train | evaluate | predict | calibrate | export | lr-find | bench | runs`.

`train` keeps the original specification's flags and defaults (`--split balanced --batch-size 128 --epochs 50
--lr 0.001 --output-dir outputs --seed 42`, `--lr-finder`, `--skip-eval`). A user's mistake prints one line
starting with `error:` and exits with status 2; `--debug` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
from pathlib import Path

import torch

from glyphkit import distributed, lines, pieces, runs, workflows
from glyphkit.bench import run_benchmark
from glyphkit.config import BALANCES, PRECISIONS, PRESETS, SCHEDULERS, SHRUNK_SIDES, Config, ConfigError, apply_preset
from glyphkit.data import DataError
from glyphkit.export import FORMATS, PARITY_IMAGES, ExportError, describe_parity, export_run
from glyphkit.inference import CLASS_PRIORS, load_trained_run
from glyphkit.lr_finder import save_lr_choice
from glyphkit.predict import check_outputs, predict, prediction_rows, save_crops, write_predictions
from glyphkit.preprocess import IMAGE_SUFFIXES, POLARITIES, ImageError
from glyphkit.rundir import LR_CHOICE, CheckpointError, RunFolderExists
from glyphkit.training import Trainer, TrainingDiverged
from glyphkit.workflows import TrainingInterrupted

DEFAULTS = Config()
PRECISION_HELP = (
    "auto: bf16 autocast where the hardware has native bf16 (CPUs with AVX-512 BF16 or AMX, recent "
    "GPUs), else fp32 (fp16 AMP on older GPUs); bf16 or fp32 force one (default: auto)"
)
CLASS_PRIOR_HELP = (
    "train: answer for images mixed like the training images (best accuracy; the default); uniform: "
    "take the training class prior out of the answers (logit adjustment), for class-balanced images "
    "(best balanced accuracy; see docs/evaluation.md#class-priors-accuracy-or-balanced-accuracy)"
)
# glyphkit's own errors for a user's mistake (a setting, a file, a folder): one `error:` line and exit status 2.
# Any other exception is a bug in glyphkit or below it, and shows its traceback.
USER_ERRORS = (ConfigError, DataError, CheckpointError, RunFolderExists, ImageError, ExportError)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    if text.strip() == "0":
        return 0
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None


def _shrunk_side(text: str) -> int:
    value = _non_negative_int(text)
    if value and value not in SHRUNK_SIDES:
        raise argparse.ArgumentTypeError(
            f"must be 0 (off) or {SHRUNK_SIDES.start}-{SHRUNK_SIDES.stop - 1} pixels (glyphs are 28x28), got {value}"
        )
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _in_interval(low: float, high: float, *, open_low: bool = False, open_high: bool = False):
    """An argparse type for a finite number between `low` and `high`, each end included unless it is open: one
    rule for every share, chance and fraction the CLI takes, so their messages read alike."""
    left, right = "(" if open_low else "[", ")" if open_high else "]"

    def parse(text: str) -> float:
        value = _finite_float(text)
        above = value > low if open_low else value >= low
        below = value < high if open_high else value <= high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must be in {left}{low:g}, {high:g}{right}, got {text}")
        return value

    return parse


_probability = _in_interval(0, 1)  # --min-confidence: 0 and 1 both mean something
_fraction = _in_interval(0, 1, open_low=True, open_high=True)  # --val-split: each side keeps some glyphs
_share = _in_interval(0, 1, open_low=True)  # --augment-share: 0 would be --no-augment
_smoothing = _in_interval(0, 1, open_high=True)  # --label-smoothing: 1 would leave no signal


def _add_data_args(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    p.add_argument(
        "--split",
        default=S,
        help=f"EMNIST split: balanced (47 classes), byclass (62), or any split "
        f"whose files are in the data folder (default: {DEFAULTS.split})",
    )
    p.add_argument(
        "--data-dir",
        default=S,
        help="folder with the EMNIST files or NIST's gzip.zip (default: "
        "$GLYPHKIT_DATA_DIR, then ~/.cache/glyphkit, then download)",
    )
    p.add_argument("--device", default=S, choices=["auto", "cpu", "cuda"], help="where to run (default: auto)")
    p.add_argument("--limit-test", type=_positive_int, default=S, help="use only this many test images")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_train_args(t: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    _add_data_args(t)
    t.add_argument("--batch-size", type=_positive_int, default=S, help=f"batch size (default: {DEFAULTS.batch_size})")
    t.add_argument("--epochs", type=_positive_int, default=S, help=f"number of epochs (default: {DEFAULTS.epochs})")
    t.add_argument(
        "--lr",
        type=_positive_float,
        default=S,
        help="initial learning rate (default: the LR finder's choice in the run folder's lr.json, else "
        f"the preset's, else {DEFAULTS.lr})",
    )
    t.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        default=S,
        help=f"AdamW weight decay on conv/linear weights (default: {DEFAULTS.weight_decay})",
    )
    t.add_argument(
        "--label-smoothing",
        type=_smoothing,
        default=S,
        help=f"cross-entropy label smoothing, 0 to <1 (default: {DEFAULTS.label_smoothing}, as in the "
        "presets; above 0 leaves confidences no single temperature calibrates: "
        "docs/evaluation.md#label-smoothing-and-calibration)",
    )
    t.add_argument(
        "--balance",
        choices=BALANCES,
        default=S,
        help="how training treats classes of different sizes: none (plain cross-entropy, the default), "
        "reweight (each image weighted by 1/count of its class) or logit-adjust (the logit-adjusted "
        "loss of Menon et al. 2021); both train the network to answer class-balanced (see "
        "docs/training.md#imbalanced-classes)",
    )
    t.add_argument(
        "--progressive-size",
        type=_shrunk_side,
        default=S,
        metavar="SIDE",
        help="progressive resizing: the first half of the epochs train on glyphs shrunk to SIDE x SIDE "
        "pixels, the rest at full size (0: off, the default; 20 halves the work of those epochs; see "
        "docs/training.md#how-training-works)",
    )
    t.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        default=S,
        help="train on the glyphs as stored, without random rotation, shift and zoom: a short run reaches "
        "a higher EMNIST test accuracy sooner, but reads scans and photos worse (see "
        "docs/experiments.md)",
    )
    t.add_argument(
        "--augment-share",
        type=_share,
        default=S,
        metavar="P",
        help="the chance that a training glyph is augmented at all, above 0 and at most 1 (default: "
        f"{DEFAULTS.augment_share}; the fast preset: 0.5, see docs/experiments.md)",
    )
    t.add_argument("--lr-finder", action="store_true", help="run the LR range test first and offer its suggestion")
    t.add_argument("--output-dir", default=S, help=f"run folder (default: {DEFAULTS.output_dir})")
    t.add_argument("--seed", type=int, default=S, help=f"random seed (default: {DEFAULTS.seed})")
    t.add_argument("--skip-eval", action="store_true", help="skip the test-set evaluation and reports")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run in --output-dir")
    t.add_argument("--model", default=S, help=f"architecture (default: {DEFAULTS.model}; see docs/training.md#models)")
    t.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=S,
        help="a measured set of settings (see docs/training.md#presets); explicit flags override it",
    )
    t.add_argument("--scheduler", choices=SCHEDULERS, default=S, help=f"LR schedule (default: {DEFAULTS.scheduler})")
    t.add_argument("--val-split", type=_fraction, default=S, help=f"validation share (default: {DEFAULTS.val_split})")
    t.add_argument("--limit-train", type=_positive_int, default=S, help="use only this many training images")
    t.add_argument("--tta", action="store_true", default=S, help="also report test-time-augmented accuracy")
    t.add_argument(
        "--compile",
        action="store_true",
        default=S,
        help="torch.compile the network for the test-set evaluation (faster inference; needs a C++ compiler)",
    )
    t.add_argument("--precision", choices=PRECISIONS, default=S, help=PRECISION_HELP)
    t.add_argument(
        "--num-threads",
        type=_positive_int,
        default=S,
        help="torch CPU threads (default: the cores, shared among the processes torchrun starts)",
    )
    t.add_argument(
        "--deterministic",
        action="store_true",
        default=S,
        help="deterministic kernels (torch.use_deterministic_algorithms; slower on CUDA): with the same "
        "--seed and --num-threads, a resumed run ends with the same weights as an uninterrupted one",
    )
    t.add_argument(
        "--init-from",
        metavar="RUN_DIR",
        default=S,
        help="start from a trained run's best model (all layers but the classifier when the classes "
        "differ): the way to learn a small glyph set of your own",
    )
    t.add_argument(
        "--sync-bn",
        action="store_true",
        default=S,
        help="under torchrun on GPUs: batch-norm statistics over the global batch (SyncBatchNorm)",
    )


def _add_lr_find_args(f: argparse.ArgumentParser) -> None:
    """lr-find takes train's flags that shape the range test: the model, its batches, the data, the threads."""
    S = argparse.SUPPRESS
    _add_data_args(f)
    f.add_argument(
        "--batch-size",
        type=_positive_int,
        default=S,
        help=f"batch size of the range test, as training will use it (default: {DEFAULTS.batch_size})",
    )
    f.add_argument("--model", default=S, help=f"architecture to test (default: {DEFAULTS.model})")
    f.add_argument("--preset", choices=sorted(PRESETS), default=S, help="take the model and batch size of a preset")
    f.add_argument(
        "--output-dir",
        default=S,
        help=f"run folder that receives lr_finder.png and lr.json (default: {DEFAULTS.output_dir})",
    )
    f.add_argument("--seed", type=int, default=S, help=f"random seed (default: {DEFAULTS.seed})")
    f.add_argument("--limit-train", type=_positive_int, default=S, help="use only this many training images")
    f.add_argument("--num-threads", type=_positive_int, default=S, help="torch CPU threads (default: the cores)")


def _add_trainer(
    sub, name: str, *, help: str, description: str, default_lines: tuple[int, str], epochs: int
) -> argparse.ArgumentParser:
    """A command that trains one of a run's reading models on lines drawn from its training glyphs (train-pieces,
    train-lines): the same flags for both."""
    t = _add_run_command(sub, name, help=help, description=description)
    t.add_argument(
        "--lines",
        type=_positive_int,
        default=default_lines[0],
        help=f"lines of training glyphs to learn from (default: {default_lines[0]:,}, {default_lines[1]})",
    )
    t.add_argument("--epochs", type=_positive_int, default=epochs, help=f"(default: {epochs})")
    t.add_argument("--seed", type=int, default=0, help="seed of the lines and the training (default: 0)")
    t.add_argument("--data-dir", default=argparse.SUPPRESS, help="folder with the run's split (default: the run's)")
    t.add_argument(
        "--device",
        default=argparse.SUPPRESS,
        choices=["auto", "cpu", "cuda"],
        help="where to train (default: the run's device setting)",
    )
    t.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    return t


def _add_run_command(sub, name: str, **texts: str) -> argparse.ArgumentParser:
    """A command that works on a run folder: its first argument is the folder."""
    p = sub.add_parser(name, **texts)
    p.add_argument("run_dir", help="run folder written by `glyphkit train`")
    return p


def _add_predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IMAGE|FOLDER", help="image files, or folders (read recursively)")
    p.add_argument("--top-k", type=_positive_int, default=5, help="characters listed per glyph (default: 5)")
    p.add_argument(
        "--segment",
        action="store_true",
        help="each image is a page of one or more lines of handwriting: read row by row (top to bottom), each "
        "row left to right; the text has one line per row of writing",
    )
    p.add_argument(
        "--no-line-model",
        action="store_true",
        help="with --segment: cut each row into characters (with the run's piece model) even when the run has a "
        "line model, which reads the rows whose letters touch whole (docs/handwriting.md#the-line-model)",
    )
    p.add_argument(
        "--polarity",
        choices=POLARITIES,
        default="auto",
        help="dark ink on light paper or the reverse (default: auto, read from the image's border)",
    )
    p.add_argument(
        "--min-confidence",
        type=_probability,
        default=0.0,
        metavar="P",
        help="answer 'unsure' when the best probability is below P (see the run's coverage_accuracy.png)",
    )
    p.add_argument("--output", metavar="FILE.csv|FILE.json", help="write every prediction to a CSV or JSON file")
    p.add_argument("--save-crops", metavar="DIR", help="write the 28x28 glyphs the model saw, to check them")
    p.add_argument("--checkpoint", default="best_model.pth", help="checkpoint file in the run folder")
    p.add_argument("--class-prior", choices=CLASS_PRIORS, default="train", help=CLASS_PRIOR_HELP)
    p.add_argument(
        "--device",
        default=argparse.SUPPRESS,
        choices=["auto", "cpu", "cuda"],
        help="where to run the model (default: auto, CUDA when present)",
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glyphkit", description="Train and analyse handwritten-character recognisers on EMNIST."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_train_args(
        sub.add_parser(
            "train",
            help="train a model (the default command)",
            description="Train a residual CNN on an EMNIST split and write a run folder "
            "(in one process, or in several under torchrun: see docs/distributed.md).",
        )
    )

    e = _add_run_command(
        sub,
        "evaluate",
        help="evaluate a run folder's best model on the test split",
        description="Re-evaluate a run: metrics, reports and figures into the run folder.",
    )
    _add_data_args(e)
    e.add_argument("--checkpoint", default="best_model.pth", help="checkpoint file in the run folder")
    e.add_argument("--tta", action="store_true", default=None, help="also report test-time-augmented accuracy")
    e.add_argument(
        "--class-prior", choices=CLASS_PRIORS, default="train", help=CLASS_PRIOR_HELP + "; metrics.json records which"
    )
    e.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="autocast for this evaluation (default: the run's own setting; see train --precision)",
    )
    e.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the network first (faster on big test sets; needs a C++ compiler)",
    )

    _add_lr_find_args(
        sub.add_parser(
            "lr-find",
            help="run the learning-rate range test only",
            description="Run the LR range test, write lr_finder.png and lr.json.",
        )
    )

    _add_predict_args(
        _add_run_command(
            sub,
            "predict",
            help="read your own images of handwriting with a trained run",
            description="Read images (files or folders) with a run's model: the top "
            "characters of each glyph, or with --segment the text of a line.",
        )
    )
    c = _add_run_command(
        sub,
        "calibrate",
        help="fit a run's calibration on its validation images",
        description="Fit"
        " a run's calibration again: a run trained before glyphkit calibrated by itself, or another method.",
    )
    _add_data_args(c)
    c.add_argument(
        "--method",
        choices=workflows.CALIBRATION_METHODS,
        default="temperature",
        help="temperature: one number, never changes an answer (default); vector: a scale and a bias per class, "
        "better calibrated on EMNIST-like glyphs but less accurate on scans (docs/evaluation.md#vector-scaling)",
    )

    _add_trainer(
        sub,
        "train-pieces",
        help="train a run's piece model, which tells `predict` where touching letters part on a page",
        description="Train the run's piece model (docs/handwriting.md#touching-letters): lines of the run's "
        "training glyphs drawn with touching letters, and a small network that learns which pieces of them are one "
        "character. Writes RUN_DIR/piece_model.pth; `predict` uses it from then on to read pages.",
        default_lines=(pieces.PIECE_LINES, "about 50,000 pieces"),
        epochs=pieces.PIECE_EPOCHS,
    )
    _add_trainer(
        sub,
        "train-lines",
        help="train a run's line model, which reads rows of touching letters whole (they need no cut)",
        description="Train the run's line model (docs/handwriting.md#the-line-model): lines of the run's training "
        "glyphs drawn touching, gapped and spaced, and a network built on the run's classifier that reads a whole "
        "row with CTC. Writes RUN_DIR/line_model.pth; `predict` reads the rows of a page with it from then on.",
        default_lines=(lines.LINE_LINES, "touching, gapped and spaced in turn"),
        epochs=lines.LINE_EPOCHS,
    )

    x = _add_run_command(
        sub,
        "export",
        help="export a run's model to ONNX or torch.export (.pt2), checked",
        description="Export a run's model as one file that runs without glyphkit: 0..255 glyphs "
        "in, probabilities out, the class characters inside. The export is checked against the "
        "PyTorch network on test images and written only if it computes the same.",
    )
    x.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="onnx",
        help="onnx (onnxruntime: services, browsers, phones) or torch (a .pt2 for torch.export.load) (default: onnx)",
    )
    x.add_argument("--output", metavar="FILE", help="where to write it (default: RUN_DIR/model.onnx or model.pt2)")
    x.add_argument("--checkpoint", default="best_model.pth", help="checkpoint file in the run folder")
    x.add_argument(
        "--class-prior",
        choices=CLASS_PRIORS,
        default="train",
        help=CLASS_PRIOR_HELP + "; folded into the exported graph and named in its metadata",
    )
    x.add_argument(
        "--parity-images",
        type=_non_negative_int,
        default=PARITY_IMAGES,
        metavar="N",
        help=f"test images the export is checked on (default: {PARITY_IMAGES:,}; 0: the whole split)",
    )
    x.add_argument("--data-dir", default=argparse.SUPPRESS, help="folder with the run's split (default: the run's)")
    x.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    x.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)

    r = sub.add_parser(
        "runs",
        help="a table of every run: status, epochs, accuracies, time (see docs/compare-runs.md)",
        description="List every run folder under the given folders, one row each. A damaged run "
        "folder is a row that names its problem.",
    )
    r.add_argument(
        "folders",
        nargs="*",
        metavar="FOLDER",
        help="folders holding run folders, searched recursively (default: "
        f"{' and '.join(runs.DEFAULT_FOLDERS)}, those that exist)",
    )
    r.add_argument(
        "--sort",
        choices=runs.COLUMNS,
        default="run",
        metavar="COLUMN",
        help=f"sort the rows by this column (default: run): {', '.join(runs.COLUMNS)}",
    )
    r.add_argument("--descending", action="store_true", help="sort from the largest value down (best accuracy first)")
    r.add_argument(
        "--output",
        metavar="FILE.csv|FILE.json",
        help="also write the table (raw numbers: accuracies as fractions, time in seconds) to a CSV or JSON file",
    )
    r.add_argument("--debug", action="store_true", help="show full tracebacks on errors")

    b = sub.add_parser(
        "bench",
        help="measure speed and time-to-accuracy (see docs/benchmarks.md)",
        description="Benchmark throughput and time to accuracy on real data.",
    )
    _add_data_args(b)
    b.add_argument("--output-dir", default="bench_results", help="where the JSON and Markdown results go")
    b.add_argument("--quick", action="store_true", help="a few steps of everything (smoke test, not a measurement)")
    b.add_argument("--skip-accuracy", action="store_true", help="throughput only")
    b.add_argument("--skip-throughput", action="store_true", help="time to accuracy only")
    b.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="fast",
        help="the preset the time-to-accuracy run trains (default: fast)",
    )
    b.add_argument(
        "--precision",
        choices=(*PRECISIONS, "both"),
        default="auto",
        help="precision of the time-to-accuracy runs: auto (this machine's default), bf16, fp32, or both "
        "(bf16 and fp32, one after the other) (default: auto); throughput is measured in both",
    )
    b.add_argument(
        "--results",
        metavar="PATH",
        help="where the results record (JSON, glyphkit.results) goes "
        "(default: benchmarks/results/bench-PRESET-PRECISION.json in a checkout, else beside bench.json; "
        "with --quick: none)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Config defaults < preset < explicit flags."""
    config = Config()
    given = vars(args)
    if "preset" in given:
        config = apply_preset(config, given["preset"])
    fields = set(Config.__dataclass_fields__)
    overrides = {k: v for k, v in given.items() if k in fields and k != "preset"}
    return config.replace(**overrides).validate()


def _log(msg: str) -> None:
    if distributed.is_main_process():  # under torchrun, rank 0 speaks for all
        print(msg, flush=True)


def ask_accept_lr(suggestion: float, current: float, interactive: bool) -> tuple[float, str]:
    """(rate, choice for lr.json): on a terminal, ask whether to take the suggested LR (again after an answer it
    cannot read, so a typo never trains with a rate nobody chose); elsewhere take it and say so. Never blocks
    without a terminal."""
    if not interactive:
        _log(f"LR finder suggests {suggestion:.2e}; no terminal to ask, so it is used (instead of {current:.2e})")
        return suggestion, "suggestion"
    question = f"LR finder suggests {suggestion:.2e} (current {current:.2e}). Use it? [Y/n or a number] "
    while True:
        answer = _read_answer(question, suggestion)
        chosen = parse_lr_answer(answer, suggestion, current)
        if chosen is not None:
            if chosen[1] == "rejected":
                _log(f"keeping lr {current:.2e}")
            return chosen
        _log(
            f"could not read {answer!r}: press Enter (or y) for {suggestion:.2e}, n to keep {current:.2e}, or "
            "type a learning rate > 0 such as 3e-4"
        )


def _read_answer(question: str, suggestion: float) -> str:
    """One line from the terminal; Ctrl-D (or a closed stdin that claims to be a terminal) is a user error."""
    try:
        return input(question).strip()
    except EOFError:
        raise ConfigError(
            f"no answer to the LR finder's question (end of input); run again and answer it, or pass "
            f"--lr {suggestion:.2e} to take the suggestion without being asked"
        ) from None


def parse_lr_answer(answer: str, suggestion: float, current: float) -> tuple[float, str] | None:
    """(rate, choice for lr.json) for an answer to the LR question; None when the answer means nothing."""
    if answer.lower() in ("", "y", "yes"):
        return suggestion, "suggestion"
    if answer.lower() in ("n", "no"):
        return current, "rejected"
    try:
        return _positive_float(answer), "typed"
    except argparse.ArgumentTypeError:
        return None


def lr_from_finder(config: Config, data, progress: bool) -> float:
    """`train --lr-finder`: run the range test, offer its suggestion, save the answer to lr.json, return it."""
    refuse_lr_finder_under_torchrun(config)
    result = workflows.run_lr_finder(config, data, progress=progress, log=_log)
    if result.suggestion is None:
        _log(f"the range test found no falling loss; keeping lr {config.lr:.2e}")
        return config.lr
    lr, choice = ask_accept_lr(result.suggestion, config.lr, sys.stdin.isatty())
    save_lr_choice(config.output_dir, lr, result.suggestion, choice, source="cli")
    return lr


# What `train --resume` takes from the command line; every other training flag is the run's own (its config).
RESUME_USES = (
    "command",
    "resume",
    "split",
    "data_dir",
    "limit_test",
    "model",
    "epochs",
    "tta",
    "skip_eval",
    "no_progress",
    "debug",
)


def ignored_on_resume(args: argparse.Namespace) -> list[str]:
    """The flags the user passed with --resume that it does not use (a flag not given is absent, None or False;
    `is` keeps a given 0 such as --seed 0)."""
    return sorted(
        f"--{name.replace('_', '-')}"
        for name, value in vars(args).items()
        if name not in RESUME_USES and value is not None and value is not False
    )


def _warn(msg: str) -> None:
    if distributed.is_main_process():
        print(f"warning: {msg}", file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    progress = not args.no_progress
    if args.resume:
        given = {k: getattr(args, k, None) for k in ("split", "data_dir", "limit_test", "model", "epochs")}
        trainer = workflows.resume(args.resume, **given, progress=progress, log=_log)
        if ignored := ignored_on_resume(args):  # said once the resume works: a refusal stays one error line
            _warn(
                f"ignored with --resume: {', '.join(ignored)}. A resumed run keeps its own settings but --epochs; "
                f"to change them, start a new run (--init-from {args.resume} starts it from this run's weights)"
            )
    else:
        config = config_from_args(args)
        workflows.check_new_run(config, args.overwrite)  # before any data is read
        data = workflows.load_data(config, log=_log)
        if args.lr_finder:
            config = workflows.choose_lr(
                config, lr_from_finder(config, data, progress), how="chosen just now", log=_log
            )
        else:
            config = workflows.choose_lr(config, getattr(args, "lr", None), how="given with --lr", log=_log)
        trainer = Trainer(config, data, progress=progress, overwrite=args.overwrite, log=_log)
    workflows.train(trainer, log=_log)
    if not args.skip_eval and trainer.world.is_main:  # one process evaluates, on the whole test split
        workflows.evaluate_run(
            trainer.run_dir, data=trainer.data, tta=getattr(args, "tta", None), progress=progress, log=_log
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if not distributed.is_main_process():  # evaluation is one process's job; under torchrun the others stand by
        return 0
    workflows.evaluate_run(
        args.run_dir,
        split=getattr(args, "split", None),
        data_dir=getattr(args, "data_dir", None),
        checkpoint=args.checkpoint,
        tta=args.tta,
        limit_test=getattr(args, "limit_test", None),
        compile_model=args.compile,
        precision=args.precision,
        class_prior=args.class_prior,
        progress=not args.no_progress,
        log=_log,
    )
    return 0


def refuse_lr_finder_under_torchrun(config: Config) -> None:
    if distributed.launched_by_torchrun():
        raise ConfigError(
            f"the LR finder runs in one process: run `glyphkit lr-find --output-dir "
            f"{config.output_dir} ...` without torchrun first; `torchrun ... -m glyphkit train "
            f"--output-dir {config.output_dir}` then trains with the rate it saved in lr.json"
        )


def cmd_lr_find(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    refuse_lr_finder_under_torchrun(config)
    data = workflows.load_data(config, log=_log)
    result = workflows.run_lr_finder(config, data, progress=not args.no_progress, log=_log)
    if result.suggestion is not None:
        save_lr_choice(config.output_dir, result.suggestion, result.suggestion, "suggestion", source="cli lr-find")
        _log(
            f"saved lr {result.suggestion:.2e} to {Path(config.output_dir) / LR_CHOICE}: "
            f"`glyphkit train --output-dir {config.output_dir}` will use it"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    run_benchmark(
        split=getattr(args, "split", "proxy47"),
        data_dir=getattr(args, "data_dir", None),
        output_dir=args.output_dir,
        quick=args.quick,
        skip_accuracy=args.skip_accuracy,
        skip_throughput=args.skip_throughput,
        device=getattr(args, "device", "auto"),
        preset=args.preset,
        precision=args.precision,
        log=_log,
        results=args.results,
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Read the user's images; a file that cannot be read gets its own `error:` line, the others their answers."""
    check_outputs(args.output, args.save_crops)  # before any image is read
    results = predict(
        args.run_dir,
        args.inputs,
        top_k=args.top_k,
        segment=args.segment,
        polarity=args.polarity,
        min_confidence=args.min_confidence,
        checkpoint=args.checkpoint,
        class_prior=args.class_prior,
        device=getattr(args, "device", None),
        progress=not args.no_progress,
        line_model=not args.no_line_model,
    )
    for result in results:
        if result.error is None:
            _log(describe_result(result, args.segment))
    failed = [r for r in results if r.error is not None]
    for result in failed:  # said before anything is written: a write that fails cannot lose them
        print(f"error: {result.error}", file=sys.stderr)
    if args.output:
        _log(
            f"{len(prediction_rows(results, args.segment))} predictions written to "
            f"{write_predictions(results, args.output, args.segment)}"
        )
    if args.save_crops:
        count = save_crops(results, args.save_crops)
        _log(f"{count} glyphs (28x28, as the model saw them) written to {args.save_crops}")
    if not results:
        raise ConfigError(f"no images in {', '.join(args.inputs)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return 2 if failed else 0


def describe_result(result, segment: bool) -> str:
    """One line per file: the text read (with --segment) or the top-k characters and their probabilities."""
    if segment:
        confidence = min((g.confidence for g in result.glyphs), default=0.0)
        return f"{result.file}: {result.text!r} ({len(result.glyphs)} characters, lowest confidence {confidence:.2f})"
    top = ", ".join(f"{char} {prob:.2f}" for char, prob in result.glyphs[0].top)
    return f"{result.file}: {result.glyphs[0].prediction}  ({top})"


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit a run's calibration on its validation images (runs trained before glyphkit calibrated by itself, or
    calibrated by an older glyphkit with one temperature)."""
    run = load_trained_run(
        args.run_dir,
        part="val",
        split=getattr(args, "split", None),
        data_dir=getattr(args, "data_dir", None),
        progress=not args.no_progress,
    )
    workflows.calibrate(args.run_dir, run.predictor, run.images, run.labels, method=args.method, log=_log)
    return 0


def cmd_train_pieces(args: argparse.Namespace) -> int:
    return _train_reading_model(pieces.train_piece_model, args)


def cmd_train_lines(args: argparse.Namespace) -> int:
    return _train_reading_model(lines.train_line_model, args)


def _train_reading_model(train, args: argparse.Namespace) -> int:
    train(
        args.run_dir,
        lines=args.lines,
        epochs=args.epochs,
        seed=args.seed,
        data_dir=getattr(args, "data_dir", None),
        device=getattr(args, "device", None),
        progress=not args.no_progress,
        log=_log,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    result = export_run(
        args.run_dir,
        args.format,
        args.output,
        checkpoint=args.checkpoint,
        class_prior=args.class_prior,
        parity_images=args.parity_images,
        data_dir=getattr(args, "data_dir", None),
        log=_log,
    )
    _log(f"checked against PyTorch {describe_parity(result.parity)}")
    size = result.path.stat().st_size / 2**20
    _log(
        f"exported {result.path} ({result.metadata['exporter']}, {size:.1f} MB; "
        f"{len(result.metadata['classes'])} classes{', calibrated' if result.metadata['output']['calibrated'] else ''})"
    )
    if args.format == "onnx":
        _log(f"read images with it (no torch needed): python -m glyphkit.runtime_onnx {result.path} IMAGE...")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """Print the runs table; folders that do not exist are an error when named, skipped when defaults."""
    folders = args.folders or [f for f in runs.DEFAULT_FOLDERS if Path(f).is_dir()]
    if missing := [f for f in args.folders if not Path(f).is_dir()]:
        raise ConfigError(f"no folder {', '.join(missing)}; name the folders that hold your run folders")
    if not folders:
        raise ConfigError(
            f"no {' or '.join(runs.DEFAULT_FOLDERS)} folder here; name the folders that hold your run "
            "folders: glyphkit runs FOLDER ..."
        )
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        raise ConfigError(f"--output {args.output}: name the file .csv or .json")
    table = runs.runs_table(folders, sort=args.sort, descending=args.descending)
    if table.empty:
        _log(f"no run folders in {', '.join(map(str, folders))}")
    else:
        _log(runs.format_table(table).to_string(index=False))
    if args.output:
        _log(f"{len(table)} run(s) written to {runs.write_table(table, args.output)}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "lr-find": cmd_lr_find,
    "bench": cmd_bench,
    "predict": cmd_predict,
    "calibrate": cmd_calibrate,
    "train-pieces": cmd_train_pieces,
    "train-lines": cmd_train_lines,
    "export": cmd_export,
    "runs": cmd_runs,
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, as schedulers, `kill` and torchrun send it: handled like Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _interrupted_status(exc: BaseException | None) -> int:
    return 143 if isinstance(exc, Terminated) else 130  # 128 + the signal's number, as shells report it


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]  # `python -m glyphkit --epochs 5` trains, as the original script did
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return run_command(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
        distributed.shutdown()


def run_command(args: argparse.Namespace) -> int:
    """Run one command. A user's mistake (USER_ERRORS) becomes one `error:` line and exit status 2
    (docs/troubleshooting.md); anything else is a bug and keeps its traceback; --debug lets every exception through."""
    try:
        return COMMANDS[args.command](args)
    except TrainingInterrupted as exc:  # the message says how to resume
        _log(f"\n{exc}")
        return _interrupted_status(exc.__cause__)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print_error(exc)
        return 2
    except TrainingDiverged as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError too
        if args.debug or not is_out_of_memory(exc):
            raise
        print(f"error: {out_of_memory_advice(exc, args)}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable folder, disk full: the message names the file
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"error: {where}{exc.strerror or exc}. Check that the folder exists, is writable and has free space",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as exc:  # outside training (which says how to resume): loading data, evaluating
        if args.debug:
            raise
        print("terminated" if isinstance(exc, Terminated) else "interrupted", file=sys.stderr)
        return _interrupted_status(exc)


def print_error(exc: BaseException) -> None:
    """A user error as `error:` lines on stderr: one per line of its message (an error that names several files,
    such as a glyph set's unreadable images, names each on its own line)."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"error: {line}", file=sys.stderr)


def is_out_of_memory(exc: BaseException) -> bool:
    """The GPU ran out of memory: torch.OutOfMemoryError, or the RuntimeError older code paths raise."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(exc)


def out_of_memory_advice(exc: BaseException, args: argparse.Namespace) -> str:
    """One line instead of torch's page: how much was asked for, and the setting to lower."""
    asked = re.search(r"Tried to allocate [\d.]+ ?\w+", str(exc))
    what = f"the GPU ran out of memory ({asked.group(0)})" if asked else "the GPU ran out of memory"
    if getattr(args, "resume", None):
        return f"{what}; a resumed run keeps its batch size, so start a new run with a lower --batch-size"
    if args.command in ("train", "lr-find"):
        batch = getattr(args, "batch_size", None)
        return (
            f"{what}; lower --batch-size" + (f" (now {batch})" if batch else "") + ", e.g. to half, or stop "
            "other programs using the GPU"
        )
    return f"{what}; stop other programs using the GPU, or run on the CPU with --device cpu"
