"""What an evaluation leaves in the run folder: the text reports, metrics.json and the figures.

Each writer takes an Interpretation (glyphkit.interpret) and writes atomically; the numbers in the files are the
Interpretation's own, so a notebook that shows them and a report that stores them cannot disagree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from glyphkit import plots, rundir
from glyphkit.interpret import GALLERY_SIZE, REPORT_PAIRS, TOP_K, Interpretation


def percent(x: float) -> str:
    return f"{100 * x:.2f}%"


def _header(plain: Interpretation, with_tta: Interpretation | None) -> list[str]:
    s = plain.summary()
    lines = [
        f"split: {plain.split}",
        f"checkpoint: {plain.checkpoint}",
        f"test images: {len(plain.labels)}",
        f"class prior: {plain.class_prior}"
        + (
            " (the training prior taken out: answers for class-balanced images)"
            if plain.class_prior == "uniform"
            else ""
        ),
        f"accuracy: {percent(s['accuracy'])}",
        f"balanced accuracy: {percent(s['balanced_accuracy'])}",
        f"top-{TOP_K} accuracy: {percent(s[f'top{TOP_K}_accuracy'])}",
    ]
    cal = plain.calibration()
    ece = "expected calibration error" + (" (class-balanced)" if cal["ece_class_balanced"] else "")
    lines.append(
        f"{ece}: {percent(cal['ece_before'])} uncalibrated, "
        f"{percent(cal['ece_after'])} calibrated ({cal['method']}); accuracy uncalibrated "
        f"{percent(cal['accuracy_before'])}"
    )
    if with_tta is not None:
        t = with_tta.summary()
        lines.append(
            f"with test-time augmentation: accuracy {percent(t['accuracy'])}, balanced accuracy "
            f"{percent(t['balanced_accuracy'])}, top-{TOP_K} {percent(t[f'top{TOP_K}_accuracy'])}"
        )
    return lines


def classification_report_text(plain: Interpretation, with_tta: Interpretation | None = None) -> str:
    return "\n".join(_header(plain, with_tta)) + "\n\n" + plain.classification_report()


def misclassification_text(interpretation: Interpretation, k: int = REPORT_PAIRS) -> str:
    """Ranked confusion pairs and how much of the error lies inside look-alike groups."""
    amb = interpretation.ambiguity_summary()
    lines = [
        f"Misclassification analysis: split {interpretation.split}, checkpoint {interpretation.checkpoint}, "
        f"{amb['images']} test images",
        "",
        f"errors: {amb['errors']} ({percent(amb['errors'] / max(amb['images'], 1))} of the test images)",
        f"errors inside ambiguity groups: {amb['ambiguous_errors']} "
        f"({percent(amb['ambiguous_share_of_errors'])} of the errors)",
        f"accuracy if those look-alike confusions were forgiven: {percent(amb['accuracy_forgiving_ambiguity'])}",
        "",
        "errors per ambiguity group (groups as present in this split):",
    ]
    lines += [f"  {' '.join(row['group']):<12} {row['errors']:>6}" for row in amb["per_group"]] or [
        "  (no group has two classes in this split)"
    ]
    lines += [
        "",
        f"top {k} confusions (true -> predicted; share = of the true character's test images):",
        f"{'rank':>4}  {'true':>4} -> {'pred':<4} {'count':>6}  {'share':>7}  ambiguity",
    ]
    for rank, pair in enumerate(interpretation.top_confusions(k), 1):
        mark = "AMBIGUOUS" if pair.ambiguous else ""
        row = f"{rank:>4}  {pair.true:>4} -> {pair.pred:<4} {pair.count:>6}  {percent(pair.share):>7}  {mark}"
        lines.append(row.rstrip())
    return "\n".join(lines) + "\n"


def metrics_dict(plain: Interpretation, with_tta: Interpretation | None = None) -> dict[str, Any]:
    """metrics.json: the plain model's numbers always, TTA's beside them when it ran."""
    metrics = {"split": plain.split, "checkpoint": plain.checkpoint, "tta": with_tta is not None, **plain.metrics()}
    # plain.metrics() holds "class_prior": the prior the answers are for, beside accuracy and balanced accuracy
    if with_tta is not None:
        metrics["tta_metrics"] = with_tta.metrics()
    return metrics


def write_reports(
    plain: Interpretation, run_dir: str | os.PathLike, with_tta: Interpretation | None = None
) -> dict[str, Any]:
    """classification_report.txt, misclassification_analysis.txt and metrics.json; returns the metrics."""
    run_dir = Path(run_dir)
    metrics = metrics_dict(plain, with_tta)
    rundir.atomic_write_text(run_dir / rundir.CLASSIFICATION_REPORT, classification_report_text(plain, with_tta))
    rundir.atomic_write_text(run_dir / rundir.MISCLASSIFICATION_REPORT, misclassification_text(plain))
    rundir.write_json(run_dir / rundir.METRICS, metrics)
    return metrics


def write_evaluation_figures(interpretation: Interpretation, run_dir: str | os.PathLike) -> list[Path]:
    """The confusion matrices, per-class accuracy, calibration (reliability diagram, coverage against accuracy)
    and the most confident mistakes, as PNGs."""
    names = rundir.EVALUATION_FIGURES
    figures = [
        interpretation.plot_confusion_matrix(),
        interpretation.plot_confusion_matrix(normalize=True),
        interpretation.plot_per_class_accuracy(),
        interpretation.plot_reliability(),
        interpretation.plot_coverage(),
    ]
    mistakes = interpretation.worst_mistakes(GALLERY_SIZE)
    if mistakes.images is not None:
        figures.append(mistakes.plot())
    return [plots.save_figure(fig, Path(run_dir) / name) for name, fig in zip(names, figures)]


def write_history_figure(run_dir: str | os.PathLike, history: dict[str, list] | None, monitor: str) -> Path | None:
    """training_history.png from a run's per-epoch numbers (nothing when no epoch has finished).

    `monitor` is the run's config.monitor: which epoch the figure marks as best."""
    if not history or not history.get("epoch"):
        return None
    return plots.save_figure(
        plots.plot_training_history(history, monitor=monitor), Path(run_dir) / rundir.HISTORY_FIGURE
    )
