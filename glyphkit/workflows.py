"""The pipeline's steps, each written once. The command line, the notebooks and the benchmark call these.

    load_data(config)             the split a Config describes, in memory, and one line that says what it is
    check_new_run(config)         refuse to replace an existing run, before any work is done
    run_lr_finder(config, data)   the LR range test on a fresh Trainer; lr_finder.png in the run folder
    choose_lr(config, lr)         an explicit lr > the run folder's lr.json (the LR finder's choice) > the config's
    train(trainer)                fit, training_history.png, calibrate, the settings for TensorBoard (tblog); Ctrl-C
                                  keeps the last checkpoint, says so
    calibrate(run_dir, ...)       temperature (or vector) scaling on the validation images, stored in best_model.pth
    resume(run_dir)               a Trainer that continues a run folder from its latest checkpoint
    evaluate_run(run_dir)         the best model on the test images: reports and figures into the run folder, the
                                  final numbers for TensorBoard

One training run, as `glyphkit train` makes it:
    config -> check_new_run -> load_data -> (run_lr_finder) -> choose_lr -> Trainer -> train -> evaluate_run
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn.functional as F

from glyphkit import plots, reports, rundir, runs, tblog
from glyphkit.config import Config
from glyphkit.data import GlyphData, load_config_split
from glyphkit.inference import (
    Calibrator,
    Predictor,
    expected_calibration_error,
    fit_temperature,
    fit_uniform_temperature,
    fit_vector_scaling,
    load_trained_run,
    uniform_logits,
)
from glyphkit.interpret import TOP_K, Interpretation
from glyphkit.lr_finder import LRFinderResult, describe_lr_choice, find_lr, load_lr_choice
from glyphkit.runtime import cpu_supports_bf16, precision_name
from glyphkit.training import Trainer

Log = Callable[[str], None]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or the kernel's stop button) during training; the message says how to resume."""


def load_data(config: Config, *, download: bool = True, log: Log = print) -> GlyphData:
    """The config's split in memory: train / validation (stratified, seeded) / test, upright uint8 glyphs."""
    data = load_config_split(config, download=download)
    sizes = ", ".join(f"{k} {v:,}" for k, v in data.sizes().items())
    limits = [
        f"{name} {value:,}"
        for name, value in (("limit_train", config.limit_train), ("limit_test", config.limit_test))
        if value is not None
    ]
    log(f"{data.split}: {data.num_classes} classes, {sizes} images" + (f" ({', '.join(limits)})" if limits else ""))
    return data


def check_new_run(config: Config, overwrite: bool = False) -> None:
    """Refuse (RunFolderExists) to start a run where one exists, unless `overwrite`; reads, never writes."""
    rundir.check_run_dir(config.output_dir, config, overwrite)


def run_lr_finder(
    config: Config, data: GlyphData, *, num_steps: int = 100, progress: bool = True, log: Log = print
) -> LRFinderResult:
    """The LR range test with the model, optimizer, batches and loss training will use; the curve is saved as
    lr_finder.png in the run folder and logged for TensorBoard in its lr_finder/. Nothing else is written (the
    choice is the caller's: see save_lr_choice)."""
    trainer = Trainer(config, data, progress=progress, log=log)
    result = find_lr(trainer, num_steps=num_steps, progress=progress)
    path = plots.save_figure(
        plots.plot_lr_finder(result.lrs, result.losses, result.suggestion, result.steep),
        Path(config.output_dir) / rundir.LR_FINDER_FIGURE,
    )
    log(f"LR range test: {result.describe()} -> {path}")
    tblog.log_lr_finder(config.output_dir, result.lrs, result.losses, path, log=log)
    return result


def choose_lr(config: Config, lr: float | None = None, *, how: str = "given explicitly", log: Log = print) -> Config:
    """The config with the learning rate to train with, and a line that says where it came from: `lr` when given
    (`--lr`, the notebook's `lr` parameter), else the run folder's lr.json, else the config's own (default or
    preset)."""
    path = Path(config.output_dir) / rundir.LR_CHOICE
    if lr is not None:
        log(f"learning rate {float(lr):.2e} ({how}; {path} is not read)")
        return config.replace(lr=float(lr)).validate()
    choice = load_lr_choice(config.output_dir)
    if choice is None:
        log(
            f"learning rate {config.lr:.2e} (the {'preset' if config.preset else 'default'}: no {path}; run the "
            "LR finder to choose one)"
        )
        return config
    suggestion = choice.get("suggestion")
    log(
        f"learning rate {choice['lr']:.2e} from {path} ({describe_lr_choice(choice)}"
        + (f"; suggestion {suggestion:.2e}" if suggestion else "")
        + f"; source {choice.get('source')})"
    )
    return config.replace(lr=float(choice["lr"])).validate()


def describe_precision(trainer: Trainer) -> str:
    """Which precision runs and why, so a user on an fp32-only CPU knows what to expect."""
    name = precision_name(trainer.amp_dtype)
    if trainer.device.type != "cpu":
        return name
    if name == "fp32" and trainer.config.precision == "auto":
        return "fp32: this CPU has no native bf16"
    if name == "bf16" and not cpu_supports_bf16():
        return "bf16, emulated: this CPU has no native bf16, so --precision fp32 is faster here"
    return name


def train(trainer: Trainer, *, log: Log = print) -> Trainer:
    """Fit a new or resumed Trainer, then draw training_history.png; returns it with the best weights loaded.

    Ctrl-C during training leaves the last complete checkpoint and raises TrainingInterrupted, whose message
    says how to continue."""
    c, run_dir = trainer.config, trainer.run_dir
    processes = (
        f" in {c.world_size} processes (batch {c.batch_size} each, global batch {c.global_batch_size})"
        if trainer.world.distributed
        else ""
    )
    log(
        f"training {c.model} on {trainer.device} ({describe_precision(trainer)}){processes} for up to {c.epochs} "
        f"epoch(s), lr {c.lr:.2e}, run folder {run_dir}"
    )
    try:
        trainer.fit()
    except KeyboardInterrupt as exc:
        raise TrainingInterrupted(
            f"interrupted during epoch {trainer.epoch + 1}; {run_dir / rundir.LATEST} holds epoch {trainer.epoch}. "
            f"Continue with: python -m glyphkit train --resume {run_dir}"
        ) from exc
    figure = reports.write_history_figure(run_dir, trainer.history.to_dict(), c.monitor)
    log(f"{trainer.best_summary()}; weights in {run_dir / rundir.BEST}")
    if trainer.world.is_main and (run_dir / rundir.BEST).exists():
        calibrate(run_dir, trainer.predictor, trainer.data.val_images, trainer.data.val_labels, log=log)
    if trainer.world.is_main:
        tblog.log_run_end(
            run_dir,
            c,
            runs.final_numbers(trainer.history.to_dict(), None),
            [figure] if figure else [],
            step=trainer.epoch,
            log=log,
        )
    return trainer


CALIBRATION_METHODS = ("temperature", "vector")
# Fewer validation images than this and no calibration is kept: one temperature fitted on a handful of glyphs
# follows their noise (on 2 images it came out 334,172 or 4.6e-5, every answer at confidence 1.00 or all alike),
# and 15-bin calibration errors measured on them say nothing. 100 is about two images per class of EMNIST balanced.
MIN_CALIBRATION_IMAGES = 100


def calibrate(
    run_dir: str | os.PathLike,
    predictor: Predictor,
    images,
    labels,
    *,
    method: str = "temperature",
    min_images: int = MIN_CALIBRATION_IMAGES,
    log: Log = print,
) -> Calibrator:
    """Fit the calibration on held-out (validation) images and store it in the run's best_model.pth, so predicted
    probabilities mean what they say. `method`: temperature (one number; never changes an answer) or vector (a
    scale and a bias per class; see inference). Returns it; `predictor` uses it from now on.

    It is kept only when there are at least `min_images` images and it lowers their cross-entropy; otherwise the
    run keeps no calibration (a stored one is removed), the probabilities are the network's own, and one line says
    why."""
    logits = predictor.logits(images)
    if len(labels) < min_images:
        return _no_calibration(
            run_dir,
            predictor,
            f"{len(labels):,} validation images, fewer than the {min_images:,} a calibration is fitted on",
            log,
        )
    calibrator = (
        fit_vector_scaling(logits, labels)
        if method == "vector"
        else Calibrator.from_temperature(fit_temperature(logits, labels))
    )
    loss_before, loss_after = (
        F.cross_entropy(c(logits).float(), labels).item() for c in (Calibrator.identity(), calibrator)
    )
    if not loss_after < loss_before:  # also NaN: a fit that went astray
        return _no_calibration(
            run_dir,
            predictor,
            f"{calibrator.describe()} does not lower the validation loss "
            f"({loss_before:.4f} -> {loss_after:.4f}) on the {len(labels):,} validation images",
            log,
        )
    before, after = (
        expected_calibration_error(c(logits).softmax(1).numpy(), labels.numpy())
        for c in (Calibrator.identity(), calibrator)
    )
    state = {**calibrator.to_state(), **calibrate_uniform_prior(predictor, logits, labels, log=log)}
    rundir.store_calibration(Path(run_dir) / rundir.BEST, state)
    predictor.calibrator = calibrator
    log(
        f"calibrated: {calibrator.describe()}; expected calibration error on the {len(labels):,} "
        f"validation images {100 * before:.2f}% -> {100 * after:.2f}%"
    )
    return calibrator


def _no_calibration(run_dir: str | os.PathLike, predictor: Predictor, why: str, log: Log) -> Calibrator:
    """Keep no calibration: the run's probabilities are the network's own (a calibration stored before, fitted
    on other images or by an older glyphkit, is removed, so what the run holds is what this line says)."""
    identity = Calibrator.identity()
    if not predictor.calibrator.is_identity:
        rundir.store_calibration(Path(run_dir) / rundir.BEST, identity.to_state())
    predictor.calibrator = identity
    log(f"not calibrated: {why}; the probabilities are the network's own")
    return identity


def calibrate_uniform_prior(predictor: Predictor, logits, labels, *, log: Log = print) -> dict[str, Any]:
    """{"uniform": the calibration of answers under the uniform class prior} (inference.fit_uniform_temperature),
    for the checkpoint's calibration entry; {} when the predictor's prior is unknown or `logits` are not the
    training prior's. Checked as it is fitted: the class-balanced ECE on the validation images, before and after."""
    if predictor.prior is None or predictor.class_prior != "train":
        return {}
    uniform = fit_uniform_temperature(logits, labels, predictor.prior)
    adjusted = uniform_logits(logits, predictor.prior)
    before, after = (
        expected_calibration_error(c(adjusted).softmax(1).numpy(), labels.numpy(), class_balanced=True)
        for c in (Calibrator.identity(), uniform)
    )
    log(
        f"for --class-prior uniform: {uniform.describe()}; class-balanced expected calibration error "
        f"{100 * before:.2f}% -> {100 * after:.2f}%"
    )
    return {"uniform": uniform.to_state()}


def resume(
    run_dir: str | os.PathLike,
    *,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    limit_test: int | None = None,
    model: str | None = None,
    epochs: int | None = None,
    progress: bool = True,
    log: Log = print,
) -> Trainer:
    """A Trainer continuing the run in `run_dir`, with its data loaded. A split or model other than the run's is
    refused before any data is read; split, data_dir and limit_test default to the run's own."""
    path = rundir.latest_checkpoint(run_dir)
    state = rundir.load_checkpoint(path)
    saved = rundir.checkpoint_config(state)
    rundir.check_compatible(saved, saved.replace(split=split or saved.split, model=model or saved.model), path)
    data = load_data(
        saved.replace(
            split=split or saved.split,
            data_dir=data_dir or saved.data_dir,
            limit_test=limit_test if limit_test is not None else saved.limit_test,
        ),
        log=log,
    )
    trainer = Trainer.resume(run_dir, data, epochs=epochs, state=state, progress=progress, log=log)
    log(f"resuming {run_dir} after epoch {trainer.epoch} of {trainer.config.epochs}")
    return trainer


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike = rundir.BEST,
    tta: bool | None = None,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    data: GlyphData | None = None,
    limit_test: int | None = None,
    device: str | None = None,
    progress: bool = True,
    compile_model: bool | None = None,
    precision: str | None = None,
    class_prior: str = "train",
    log: Log = print,
) -> dict[str, Any]:
    """Evaluate a run's checkpoint on the test images and write every report and figure into the run folder.

    The data come from `data`, else from the checkpoint's split and data folder (each can be overridden).
    `tta=None`, `compile_model=None` and `precision=None` follow the run's config. `class_prior`: "train" (answers
    for images mixed as in training) or "uniform" (the training prior taken out, for class-balanced images;
    metrics.json records which). Deterministic: a second call rewrites an identical metrics.json. Returns the
    metrics dict that metrics.json holds.
    """
    run_dir = Path(run_dir)
    run = load_trained_run(
        run_dir,
        checkpoint=checkpoint,
        split=split,
        data_dir=data_dir,
        data=data,
        limit_test=limit_test,
        device=device,
        progress=progress,
        compile_model=compile_model,
        precision=precision,
        class_prior=class_prior,
    )
    use_tta = run.config.tta if tta is None else tta
    log(
        f"evaluating {run.checkpoint} on {len(run.labels)} {run.split} test images"
        + (" (plain and with TTA)" if use_tta else "")
        + f", class prior {class_prior}"
    )
    plain, augmented = Interpretation.plain_and_tta(run) if use_tta else (Interpretation.of(run), None)
    metrics = reports.write_reports(plain, run_dir, augmented)
    reports.write_evaluation_figures(plain, run_dir)
    history = rundir.read_history(run_dir, run.state)
    if not (run_dir / rundir.HISTORY_FIGURE).exists():  # train() draws it; a folder trained elsewhere may lack it
        reports.write_history_figure(run_dir, history, run.config.monitor)
    tblog.log_run_end(
        run_dir,
        run.config,
        runs.final_numbers(history, metrics),
        [run_dir / "confusion_matrix_normalized.png"],
        step=len((history or {}).get("epoch", [])),
        new=runs.EVALUATION_NUMBERS,
        log=log,
    )
    pct = reports.percent
    log(
        f"test accuracy {pct(metrics['accuracy'])}, balanced accuracy {pct(metrics['balanced_accuracy'])}, "
        f"top-{TOP_K} {pct(metrics[f'top{TOP_K}_accuracy'])}"
        + (f"; with TTA {pct(metrics['tta_metrics']['accuracy'])}" if use_tta else "")
    )
    log(f"reports and figures written to {run_dir}")
    return metrics
