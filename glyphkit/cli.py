"""The command line: `python -m glyphkit train | evaluate | lr-find | bench`.

`train` keeps the original specification's flags and defaults (`--split balanced --batch-size 128 --epochs 50
--lr 0.001 --output-dir outputs --seed 42`, `--lr-finder`, `--skip-eval`). A user's mistake prints one line
starting with `error:` and exits with status 2; `--debug` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from glyphkit.config import PRESETS, SCHEDULERS, Config, ConfigError, apply_preset

DEFAULTS = Config()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _add_data_args(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    p.add_argument("--split", default=S, help=f"EMNIST split: balanced (47 classes), byclass (62), or any split "
                   f"whose files are in the data folder (default: {DEFAULTS.split})")
    p.add_argument("--data-dir", default=S, help="folder with the EMNIST files or NIST's gzip.zip (default: "
                   "$GLYPHKIT_DATA_DIR, then ~/.cache/glyphkit, then download)")
    p.add_argument("--device", default=S, choices=["auto", "cpu", "cuda"], help="where to run (default: auto)")
    p.add_argument("--limit-test", type=_positive_int, default=S, help="use only this many test images")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    S = argparse.SUPPRESS
    parser = argparse.ArgumentParser(prog="glyphkit", description="Train and analyse handwritten-character "
                                     "recognisers on EMNIST.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model (the default command)",
                       description="Train a residual CNN on an EMNIST split and write a run folder.")
    _add_data_args(t)
    t.add_argument("--batch-size", type=_positive_int, default=S, help=f"batch size (default: {DEFAULTS.batch_size})")
    t.add_argument("--epochs", type=_positive_int, default=S, help=f"number of epochs (default: {DEFAULTS.epochs})")
    t.add_argument("--lr", type=_positive_float, default=S, help=f"initial learning rate (default: {DEFAULTS.lr})")
    t.add_argument("--weight-decay", type=_non_negative_float, default=S,
                   help=f"AdamW weight decay on conv/linear weights (default: {DEFAULTS.weight_decay})")
    t.add_argument("--lr-finder", action="store_true", help="run the LR range test first and offer its suggestion")
    t.add_argument("--output-dir", default=S, help=f"run folder (default: {DEFAULTS.output_dir})")
    t.add_argument("--seed", type=int, default=S, help=f"random seed (default: {DEFAULTS.seed})")
    t.add_argument("--skip-eval", action="store_true", help="skip the test-set evaluation and reports")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run in --output-dir")
    t.add_argument("--model", default=S, help=f"architecture (default: {DEFAULTS.model}; see README)")
    t.add_argument("--preset", choices=sorted(PRESETS), default=S,
                   help="a measured set of settings (see README, 'Presets'); explicit flags override it")
    t.add_argument("--scheduler", choices=SCHEDULERS, default=S, help=f"LR schedule (default: {DEFAULTS.scheduler})")
    t.add_argument("--val-split", type=_fraction, default=S, help=f"validation share (default: {DEFAULTS.val_split})")
    t.add_argument("--limit-train", type=_positive_int, default=S, help="use only this many training images")
    t.add_argument("--tta", action="store_true", default=S, help="also report test-time-augmented accuracy")
    t.add_argument("--compile", action="store_true", default=S,
                   help="torch.compile the network for the test-set evaluation (faster inference; needs a C++ compiler)")
    t.add_argument("--num-threads", type=_positive_int, default=S, help="torch CPU threads (default: one per core)")

    e = sub.add_parser("evaluate", help="evaluate a run folder's best model on the test split",
                       description="Re-evaluate a run: metrics, reports and figures into the run folder.")
    e.add_argument("run_dir", help="run folder written by `glyphkit train`")
    _add_data_args(e)
    e.add_argument("--checkpoint", default="best_model.pth", help="checkpoint file in the run folder")
    e.add_argument("--tta", action="store_true", default=None, help="also report test-time-augmented accuracy")
    e.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the network first (faster on big test sets; needs a C++ compiler)")

    f = sub.add_parser("lr-find", help="run the learning-rate range test only",
                       description="Run the LR range test, write lr_finder.png and lr.json.")
    _add_data_args(f)
    f.add_argument("--batch-size", type=_positive_int, default=S)
    f.add_argument("--model", default=S)
    f.add_argument("--preset", choices=sorted(PRESETS), default=S)
    f.add_argument("--output-dir", default=S)
    f.add_argument("--seed", type=int, default=S)
    f.add_argument("--limit-train", type=_positive_int, default=S)

    b = sub.add_parser("bench", help="measure speed and time-to-accuracy (see README, 'Benchmark')",
                       description="Benchmark throughput and time to accuracy on real data.")
    _add_data_args(b)
    b.add_argument("--output-dir", default="bench_results", help="where the JSON and Markdown results go")
    b.add_argument("--quick", action="store_true", help="a few steps of everything (smoke test, not a measurement)")
    b.add_argument("--skip-accuracy", action="store_true", help="throughput only")
    b.add_argument("--time-budget", type=_positive_float, default=20.0, help="minutes for the time-to-accuracy run")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Config defaults < preset < explicit flags."""
    config = Config()
    given = vars(args)
    if "preset" in given:
        config = apply_preset(config, given["preset"])
    fields = set(Config.__dataclass_fields__)
    overrides = {k: v for k, v in given.items() if k in fields and k != "preset"}
    if overrides.get("model") is not None:
        overrides.setdefault("extra", {})
    return config.replace(**overrides).validate()


def _log(msg: str) -> None:
    print(msg, flush=True)


def ask_accept_lr(suggestion: float, current: float, interactive: bool) -> tuple[float, bool]:
    """On a terminal, ask whether to take the suggested LR; elsewhere take it and say so. Never blocks."""
    if not interactive:
        _log(f"LR finder suggests {suggestion:.2e}; no terminal to ask, so it is used (instead of {current:.2e})")
        return suggestion, True
    answer = input(f"LR finder suggests {suggestion:.2e} (current {current:.2e}). Use it? [Y/n or a number] ").strip()
    if answer.lower() in ("", "y", "yes"):
        return suggestion, True
    if answer.lower() in ("n", "no"):
        _log(f"keeping lr {current:.2e}")
        return current, False
    try:
        value = _positive_float(answer)
    except argparse.ArgumentTypeError:
        _log(f"could not read {answer!r} as a number; keeping lr {current:.2e}")
        return current, False
    return value, False


def run_lr_finder(trainer, run_dir: Path, progress: bool):
    from glyphkit.lr_finder import find_lr
    from glyphkit.plots import plot_lr_finder, save_figure

    result = find_lr(trainer, progress=progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_figure(plot_lr_finder(result.lrs, result.losses, result.valley, result.steep), run_dir / "lr_finder.png")
    _log(f"LR range test: valley {result.valley:.2e}, steepest {result.steep:.2e} -> {run_dir / 'lr_finder.png'}")
    return result


def cmd_train(args: argparse.Namespace) -> int:
    from glyphkit.data import load_split
    from glyphkit.lr_finder import save_lr_choice
    from glyphkit.training import Trainer, prepare_run_dir

    progress = not args.no_progress
    if args.resume:
        from glyphkit import checkpoint as ckpt

        run_dir = Path(args.resume)
        state_path = ckpt.latest_checkpoint(run_dir)
        saved = ckpt.checkpoint_config(ckpt.load_checkpoint(state_path))
        split = getattr(args, "split", saved.split)
        # --split/--model that differ from the run's are refused before any data is read or file written
        ckpt.check_compatible(saved, saved.replace(split=split, model=getattr(args, "model", saved.model)),
                              state_path)
        data = load_split(split, getattr(args, "data_dir", saved.data_dir), saved.val_split, saved.seed,
                          saved.limit_train, getattr(args, "limit_test", saved.limit_test))
        trainer = Trainer.resume(run_dir, data, epochs=getattr(args, "epochs", None), progress=progress, log=_log)
        _log(f"resuming {run_dir} after epoch {trainer.epoch} of {trainer.config.epochs}")
    else:
        config = config_from_args(args)
        run_dir = Path(config.output_dir)
        prepare_run_dir(run_dir, config, args.overwrite)
        data = load_split(config.split, config.data_dir, config.val_split, config.seed, config.limit_train,
                          config.limit_test)
        _log(f"{config.split}: {data.num_classes} classes, " +
             ", ".join(f"{k} {v:,}" for k, v in data.sizes().items()))
        trainer = Trainer(config, data, run_dir, progress=progress, overwrite=True, log=_log)
        if args.lr_finder:
            result = run_lr_finder(trainer, run_dir, progress)
            if result.suggestion is None:
                _log(f"the range test found no falling loss; keeping lr {config.lr:.2e}")
            else:
                lr, accepted = ask_accept_lr(result.suggestion, config.lr, sys.stdin.isatty())
                save_lr_choice(run_dir, lr, result.suggestion, accepted, source="cli")
                trainer = Trainer(config.replace(lr=lr), data, run_dir, progress=progress, overwrite=True, log=_log)
        _log(f"training {trainer.config.model} on {trainer.device} "
             f"({trainer.amp_dtype or 'fp32'}), run folder {run_dir}")
    try:
        trainer.fit()
    except KeyboardInterrupt:
        _log(f"\ninterrupted during epoch {trainer.epoch + 1}; {run_dir / 'latest_checkpoint.pth'} holds epoch "
             f"{trainer.epoch}. Continue with: python -m glyphkit train --resume {run_dir}")
        return 130
    _log(f"{trainer.best_summary()}; weights in {run_dir / 'best_model.pth'}")
    if args.skip_eval:
        _write_history_figure(trainer)  # else the evaluation writes it with the rest
        return 0
    from glyphkit.evaluation import evaluate_run

    evaluate_run(run_dir, data=data, tta=getattr(args, "tta", None), log=_log, progress=progress)  # logs the numbers
    return 0


def _write_history_figure(trainer) -> None:
    """training_history.png from the trainer's history (the same numbers as history.json, already in memory)."""
    from glyphkit.plots import plot_training_history, save_figure

    if trainer.history.epoch:
        save_figure(plot_training_history(trainer.history.to_dict(), monitor=trainer.config.monitor),
                    trainer.run_dir / "training_history.png")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from glyphkit.evaluation import evaluate_run

    evaluate_run(args.run_dir, split=getattr(args, "split", None), data_dir=getattr(args, "data_dir", None),
                 checkpoint=args.checkpoint, tta=args.tta, limit_test=getattr(args, "limit_test", None),
                 compile_model=args.compile,
                 log=_log, progress=not args.no_progress)  # logs the numbers and where the reports went
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from glyphkit.data import load_split
    from glyphkit.lr_finder import save_lr_choice
    from glyphkit.training import Trainer

    config = config_from_args(args)
    run_dir = Path(config.output_dir)
    data = load_split(config.split, config.data_dir, config.val_split, config.seed, config.limit_train, 1)
    trainer = Trainer(config, data, run_dir, progress=not args.no_progress, overwrite=True, log=_log)
    result = run_lr_finder(trainer, run_dir, not args.no_progress)
    if result.suggestion is not None:
        save_lr_choice(run_dir, result.suggestion, result.suggestion, True, source="cli lr-find")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from glyphkit.bench import run_benchmark

    run_benchmark(split=getattr(args, "split", "proxy47"), data_dir=getattr(args, "data_dir", None),
                  output_dir=args.output_dir, quick=args.quick, skip_accuracy=args.skip_accuracy,
                  time_budget_min=args.time_budget, device=getattr(args, "device", "auto"), log=_log)
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "lr-find": cmd_lr_find, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]  # `python -m glyphkit --epochs 5` trains, as the original script did
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from glyphkit.checkpoint import CheckpointError
    from glyphkit.data import DataError
    from glyphkit.training import RunFolderExists, TrainingDiverged

    try:
        return COMMANDS[args.command](args)
    except (ConfigError, DataError, CheckpointError, RunFolderExists, ValueError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # e.g. --device cuda without a GPU
        if args.debug or "cuda" not in str(exc).lower():
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable folder, disk full: the message names the file
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}. Check that the folder exists, is writable and has free "
              "space", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (which says how to resume): loading data, evaluating
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
