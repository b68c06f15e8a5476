"""Evaluation: run a trained model over the test images, measure it, and explain its mistakes.

The pieces, in the order a run uses them:
    Evaluator(model, config).evaluate(images, labels)  -> Evaluation (logits, predictions, labels, images)
    Evaluation.metrics() / .top_confusions(k) / .worst_mistakes(k) / .confidences()
    write_reports(...) and write_figures(...)           -> files in the run folder
    evaluate_run(run_dir, ...)                           -> all of the above from a checkpoint, for the CLI

Handwriting is ambiguous: an `O` and a `0`, or an `l` and a `1`, are often the same stroke. AMBIGUOUS_GROUPS
names those look-alike sets, so the analysis can say how much of the error is shape-ambiguity rather than a
model that has not learned enough.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from glyphkit import checkpoint as ckpt
from glyphkit import plots
from glyphkit.config import Config
from glyphkit.data import GlyphData, load_split
from glyphkit.io import atomic_write_text
from glyphkit.models import build_model
from glyphkit.runtime import (INFERENCE_BATCH, autocast_dtype, predict_logits, prepare_model, resolve_device,
                              set_threads)

# Characters that handwriting often makes look alike. A group only matters through the characters a split
# has: in `balanced` (47 classes) c/C, k/K, ... are already one class, so those groups shrink to one member
# and simply never mark a pair.
AMBIGUOUS_GROUPS: tuple[str, ...] = (
    "oO0DQ", "l1IiL|", "sS5", "zZ2", "g9q", "cC", "kK", "mM", "pP", "uU", "vV", "wW", "xX", "yY",
    "b6", "B8", "T7", "jJ", "fF", "nh", "ad",
)

TOP_K = 3  # top-k accuracy reported next to plain accuracy
REPORT_PAIRS = 50  # confusion pairs listed in misclassification_analysis.txt
GALLERY_SIZE = 40  # mistakes shown in misclassified_examples.png
ROUND = 6  # decimals kept in metrics.json (exact enough, and stable across runs)


# ----------------------------------------------------------------------------------------------------------------
# Ambiguity groups
# ----------------------------------------------------------------------------------------------------------------

def ambiguity_group_ids(classes: Sequence[str], groups: Sequence[str] = AMBIGUOUS_GROUPS) -> np.ndarray:
    """For each class, the index of its ambiguity group, or -1 when it is in none."""
    lookup = {ch: g for g, group in enumerate(groups) for ch in group}
    return np.array([lookup.get(ch, -1) for ch in classes], dtype=np.int64)


def ambiguity_mask(classes: Sequence[str], groups: Sequence[str] = AMBIGUOUS_GROUPS) -> np.ndarray:
    """Boolean [C, C]: True where (true, predicted) are two different classes of the same look-alike group."""
    ids = ambiguity_group_ids(classes, groups)
    same = (ids[:, None] == ids[None, :]) & (ids[:, None] >= 0)
    np.fill_diagonal(same, False)
    return same


def groups_present(classes: Sequence[str], groups: Sequence[str] = AMBIGUOUS_GROUPS) -> list[str]:
    """The groups restricted to the split's characters, keeping only those with at least two members."""
    present = set(classes)
    kept = ["".join(ch for ch in group if ch in present) for group in groups]
    return [g for g in kept if len(g) >= 2]


def is_ambiguous_pair(a: str, b: str, groups: Sequence[str] = AMBIGUOUS_GROUPS) -> bool:
    """True when two different characters share a look-alike group."""
    return a != b and any(a in group and b in group for group in groups)


# ----------------------------------------------------------------------------------------------------------------
# Plain-array helpers (shared by Evaluation and usable on their own)
# ----------------------------------------------------------------------------------------------------------------

def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true, predicted] over all `num_classes` classes (rows of absent classes are zero)."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    return sk_confusion_matrix(labels, predictions, labels=np.arange(num_classes))


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (diagonal / row total); NaN for classes without test images."""
    totals = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / totals, np.nan)


@dataclass(frozen=True)
class ConfusionPair:
    """One kind of mistake: `count` images of `true` were predicted as `pred`."""

    true: str
    pred: str
    count: int
    share: float  # count / number of test images of `true`
    ambiguous: bool  # both characters are in one AMBIGUOUS_GROUPS group

    def to_dict(self) -> dict[str, Any]:
        return {"true": self.true, "pred": self.pred, "count": self.count, "share": round(self.share, ROUND),
                "ambiguous": self.ambiguous}


def top_confusions(cm: np.ndarray, classes: Sequence[str], k: int | None = 20,
                   groups: Sequence[str] = AMBIGUOUS_GROUPS) -> list[ConfusionPair]:
    """The most common (true -> predicted) mistakes, most frequent first.

    Ties are broken by the larger share of the true class, then by class order, so the ranking is stable.
    """
    cm = np.asarray(cm)
    errors = cm.copy()
    np.fill_diagonal(errors, 0)
    true_idx, pred_idx = np.nonzero(errors)
    counts = errors[true_idx, pred_idx]
    totals = cm.sum(axis=1)[true_idx]
    shares = counts / totals
    # np.lexsort sorts by the last key first: count (desc), share (desc), true, pred.
    order = np.lexsort((pred_idx, true_idx, -shares, -counts))
    if k is not None:
        order = order[:k]
    ambiguous = ambiguity_mask(classes, groups)
    return [ConfusionPair(classes[t], classes[p], int(c), float(s), bool(ambiguous[t, p]))
            for t, p, c, s in zip(true_idx[order], pred_idx[order], counts[order], shares[order])]


def ambiguity_summary(cm: np.ndarray, classes: Sequence[str],
                      groups: Sequence[str] = AMBIGUOUS_GROUPS) -> dict[str, Any]:
    """How much of the error is confusion inside look-alike groups, overall and per group."""
    cm = np.asarray(cm)
    total = int(cm.sum())
    errors = total - int(np.trace(cm))
    mask = ambiguity_mask(classes, groups)
    ambiguous = int(cm[mask].sum())
    ids = ambiguity_group_ids(classes, groups)
    per_group = []
    for group in groups_present(classes, groups):
        g = ids[classes.index(group[0])]
        inside = np.outer(ids == g, ids == g) & mask
        per_group.append({"group": group, "errors": int(cm[inside].sum())})
    per_group.sort(key=lambda row: -row["errors"])
    return {
        "images": total,
        "errors": errors,
        "ambiguous_errors": ambiguous,
        "ambiguous_share_of_errors": ambiguous / errors if errors else 0.0,
        # If a look-alike confusion were forgiven, this is the accuracy that would remain.
        "accuracy_forgiving_ambiguity": (total - errors + ambiguous) / total if total else 0.0,
        "per_group": per_group,
    }


def unique_names(classes: Sequence[str]) -> list[str]:
    """Class names usable as dict keys: a repeated character gets its label index appended."""
    seen: dict[str, int] = {}
    for ch in classes:
        seen[ch] = seen.get(ch, 0) + 1
    return [ch if seen[ch] == 1 else f"{ch}#{i}" for i, ch in enumerate(classes)]


# ----------------------------------------------------------------------------------------------------------------
# One evaluation's results
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Mistakes:
    """Selected wrong predictions, ready for plots.plot_misclassified_examples."""

    index: np.ndarray  # positions in the evaluated set
    images: np.ndarray | None  # uint8 [K, 28, 28], upright
    true: list[str]
    pred: list[str]
    confidence: np.ndarray  # probability the model gave its (wrong) prediction
    ambiguous: np.ndarray | None = None  # True where true and predicted share a look-alike group

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class Evaluation:
    """A model's outputs on one set of images, and the analyses a notebook or report needs.

    In the spirit of fastai's ClassificationInterpretation: keep the raw outputs once, derive the rest.
    """

    logits: np.ndarray  # float32 [N, C]
    labels: np.ndarray  # int64 [N]
    classes: list[str]
    images: torch.Tensor | np.ndarray | None = None  # uint8 [N, 28, 28], upright, for galleries
    split: str = ""
    checkpoint: str = ""
    tta: bool = False
    groups: Sequence[str] = AMBIGUOUS_GROUPS

    def __post_init__(self) -> None:
        # Accept tensors or lists too: everything below works on NumPy arrays.
        self.logits = np.asarray(self.logits, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.classes = list(self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def probabilities(self) -> np.ndarray:
        return torch.from_numpy(self.logits).float().softmax(dim=1).numpy()

    @cached_property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels

    @cached_property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class, per image."""
        return self.probabilities.max(axis=1)

    @cached_property
    def confusion_matrix(self) -> np.ndarray:
        return confusion_matrix(self.labels, self.predictions, self.num_classes)

    def per_class_accuracy(self) -> np.ndarray:
        return per_class_accuracy(self.confusion_matrix)

    # -------------------------------------------------------------- numbers
    def summary(self) -> dict[str, float]:
        """Accuracy, balanced accuracy (mean recall over classes that have test images) and top-3 accuracy."""
        from sklearn.metrics import accuracy_score, balanced_accuracy_score, top_k_accuracy_score

        with warnings.catch_warnings():
            # Predicted classes absent from a small test set are expected, not worth a warning.
            warnings.simplefilter("ignore", UserWarning)
            balanced = balanced_accuracy_score(self.labels, self.predictions)
        k = min(TOP_K, self.num_classes)
        top_k = (1.0 if k == self.num_classes else
                 top_k_accuracy_score(self.labels, self.logits, k=k, labels=np.arange(self.num_classes)))
        return {"accuracy": float(accuracy_score(self.labels, self.predictions)),
                "balanced_accuracy": float(balanced), f"top{TOP_K}_accuracy": float(top_k)}

    def per_class(self) -> dict[str, dict[str, float]]:
        """{character: {precision, recall, f1, support}} in label order."""
        from sklearn.metrics import precision_recall_fscore_support

        precision, recall, f1, support = precision_recall_fscore_support(
            self.labels, self.predictions, labels=np.arange(self.num_classes), zero_division=0)
        return {name: {"precision": round(float(p), ROUND), "recall": round(float(r), ROUND),
                       "f1": round(float(f), ROUND), "support": int(s)}
                for name, p, r, f, s in zip(unique_names(self.classes), precision, recall, f1, support)}

    def metrics(self) -> dict[str, Any]:
        """Everything metrics.json holds about this evaluation."""
        ambiguity = self.ambiguity_summary()
        return {
            **{k: round(v, ROUND) for k, v in self.summary().items()},
            "num_test_images": int(len(self.labels)),
            "errors": ambiguity["errors"],
            "ambiguous_errors": ambiguity["ambiguous_errors"],
            "per_class": self.per_class(),
        }

    def classification_report(self) -> str:
        """sklearn's per-class table with characters as row names."""
        from sklearn.metrics import classification_report

        return classification_report(self.labels, self.predictions, labels=np.arange(self.num_classes),
                                     target_names=unique_names(self.classes), digits=4, zero_division=0)

    # -------------------------------------------------------------- mistakes
    def top_confusions(self, k: int | None = 20) -> list[ConfusionPair]:
        return top_confusions(self.confusion_matrix, self.classes, k, self.groups)

    def ambiguity_summary(self) -> dict[str, Any]:
        return ambiguity_summary(self.confusion_matrix, self.classes, self.groups)

    def is_ambiguous_error(self) -> np.ndarray:
        """Per image: True when the prediction is wrong but a look-alike of the true character."""
        return ambiguity_mask(self.classes, self.groups)[self.labels, self.predictions]

    def worst_mistakes(self, k: int = GALLERY_SIZE, ambiguous: bool | None = None) -> Mistakes:
        """The k wrong predictions the model was most sure of: the ones most worth looking at.

        ambiguous=True keeps only look-alike confusions (O -> 0), False only the others, None all.
        """
        wrong = ~self.correct
        if ambiguous is not None:
            wrong &= self.is_ambiguous_error() == ambiguous
        index = np.flatnonzero(wrong)
        order = np.argsort(-self.confidence[index], kind="stable")[:k]
        return self._mistakes(index[order])

    def mistakes_between(self, true: str, pred: str, k: int = GALLERY_SIZE) -> Mistakes:
        """Up to k images of `true` predicted as `pred`, most confident first (e.g. all O -> 0)."""
        t, p = self.classes.index(true), self.classes.index(pred)
        hits = np.flatnonzero((self.labels == t) & (self.predictions == p))
        order = np.argsort(-self.confidence[hits], kind="stable")[:k]
        return self._mistakes(hits[order])

    def _mistakes(self, index: np.ndarray) -> Mistakes:
        return Mistakes(index=index, images=self._images_at(index),
                        true=[self.classes[i] for i in self.labels[index]],
                        pred=[self.classes[i] for i in self.predictions[index]],
                        confidence=self.confidence[index], ambiguous=self.is_ambiguous_error()[index])

    def _images_at(self, index: np.ndarray) -> np.ndarray | None:
        if self.images is None:
            return None
        if isinstance(self.images, torch.Tensor):
            return self.images[torch.from_numpy(index)].cpu().numpy()
        return np.asarray(self.images)[index]

    def confidences(self) -> tuple[np.ndarray, np.ndarray]:
        """(confidence of right predictions, confidence of wrong ones): for plots.plot_confidence_histogram."""
        conf, right = self.confidence, self.correct
        return conf[right], conf[~right]


# ----------------------------------------------------------------------------------------------------------------
# Running a model
# ----------------------------------------------------------------------------------------------------------------

class Evaluator:
    """Runs one model over image sets the way training validates: batched, no_grad, autocast, channels_last."""

    def __init__(self, model: nn.Module, config: Config, device: str | torch.device | None = None,
                 batch_size: int = INFERENCE_BATCH, progress: bool = False, compile_model: bool | None = None):
        set_threads(config.num_threads)
        self.config = config
        self.compile_model = config.compile if compile_model is None else compile_model
        self.device = resolve_device(str(device or config.device))
        self.amp_dtype = autocast_dtype(self.device, config.mixed_precision)
        self.model = prepare_model(model, self.device, config.channels_last)
        self.batch_size, self.progress = batch_size, progress

    def logits(self, images: torch.Tensor, tta: bool = False) -> np.ndarray:
        c = self.config
        out = predict_logits(self.model, images, mean=c.norm_mean, std=c.norm_std, input_size=c.input_size,
                             device=self.device, batch_size=self.batch_size, amp_dtype=self.amp_dtype,
                             channels_last=c.channels_last, tta=tta, progress=self.progress,
                             compile_model=self.compile_model)
        return out.numpy()

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, *, tta: bool = False, split: str | None = None,
                 checkpoint: str = "") -> Evaluation:
        """The model's outputs on `images` with their true `labels`, ready for analysis."""
        return Evaluation(logits=self.logits(images, tta), labels=labels, classes=self.config.classes,
                          images=images, split=split or self.config.split, checkpoint=checkpoint, tta=tta)


def _checkpoint_path(run_dir: Path, checkpoint: str | os.PathLike) -> Path:
    """A bare or relative checkpoint name is looked up in the run folder first, then from the current folder."""
    path = Path(checkpoint)
    if path.is_absolute() or (not (run_dir / path).exists() and path.exists()):
        return path
    return run_dir / path


def _relative_name(path: Path, run_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def load_model(state: dict[str, Any], path: Path) -> nn.Module:
    """The network a checkpoint describes, with its evaluation weights (EMA average when kept)."""
    config = ckpt.checkpoint_config(state)
    model = build_model(config)
    try:
        model.load_state_dict(ckpt.eval_state_dict(state))
    except RuntimeError as exc:
        raise ckpt.CheckpointError(f"{path}: the weights do not fit the network its config describes "
                                   f"({str(exc).splitlines()[0]}); the file is damaged or was edited") from exc
    return model


def _load_test_data(saved: Config, path: Path, split: str | None, data_dir: str | os.PathLike | None,
                    data: GlyphData | None, limit_test: int | None) -> GlyphData:
    """The data to evaluate on; refuses (CheckpointError) a split or class set the checkpoint was not trained on."""
    if split is not None:  # refuse before reading any data: a wrong split is the user's mistake, not the disk's
        ckpt.check_compatible(saved, saved.replace(split=split, num_classes=None, classes=None), path)
    if data is None:
        data = load_split(split or saved.split, data_dir or saved.data_dir, val_split=saved.val_split,
                          seed=saved.seed, limit_train=saved.limit_train,
                          limit_test=limit_test if limit_test is not None else saved.limit_test)
    ckpt.check_compatible(saved, saved.replace(split=data.split, num_classes=data.num_classes,
                                               classes=list(data.classes)), path)
    return data


@dataclass
class PreparedRun:
    """What evaluating a checkpoint needs: the evaluator, the test images and where they came from."""

    evaluator: Evaluator
    images: torch.Tensor
    labels: torch.Tensor
    split: str
    checkpoint: str  # name relative to the run folder
    state: dict[str, Any]

    def evaluate(self, tta: bool = False) -> Evaluation:
        return self.evaluator.evaluate(self.images, self.labels, tta=tta, split=self.split,
                                       checkpoint=self.checkpoint)


def prepare_run(run_dir: str | os.PathLike, *, split: str | None = None,
                data_dir: str | os.PathLike | None = None, data: GlyphData | None = None,
                checkpoint: str | os.PathLike = ckpt.BEST, limit_test: int | None = None,
                device: str | None = None, progress: bool = False, compile_model: bool | None = None) -> PreparedRun:
    """Load a checkpoint, its network and the matching test images; refuse a checkpoint of another split.

    `compile_model=None` follows the run's config (`compile`)."""
    run_dir = Path(run_dir)
    path = _checkpoint_path(run_dir, checkpoint)
    state = ckpt.load_checkpoint(path)
    saved = ckpt.checkpoint_config(state)
    passed_in = data is not None
    data = _load_test_data(saved, path, split, data_dir, data, limit_test)
    images, labels = data.test_images, data.test_labels
    if passed_in and limit_test is not None:  # load_split already subsampled the data it read itself
        images, labels = images[:limit_test], labels[:limit_test]
    evaluator = Evaluator(load_model(state, path), saved, device=device, progress=progress,
                          compile_model=compile_model)
    return PreparedRun(evaluator, images, labels, data.split, _relative_name(path, run_dir), state)


def evaluate_checkpoint(run_dir: str | os.PathLike, *, split: str | None = None,
                        data_dir: str | os.PathLike | None = None, data: GlyphData | None = None,
                        checkpoint: str | os.PathLike = ckpt.BEST, tta: bool = False,
                        limit_test: int | None = None, device: str | None = None,
                        progress: bool = False, compile_model: bool | None = None) -> Evaluation:
    """A run's checkpoint evaluated on the test images, without writing anything (for notebooks)."""
    run = prepare_run(run_dir, split=split, data_dir=data_dir, data=data, checkpoint=checkpoint,
                      limit_test=limit_test, device=device, progress=progress, compile_model=compile_model)
    return run.evaluate(tta)


# ----------------------------------------------------------------------------------------------------------------
# Reports and figures
# ----------------------------------------------------------------------------------------------------------------

def _percent(x: float) -> str:
    return f"{100 * x:.2f}%"


def _header(evaluation: Evaluation, tta_evaluation: Evaluation | None) -> list[str]:
    s = evaluation.summary()
    lines = [f"split: {evaluation.split}", f"checkpoint: {evaluation.checkpoint}",
             f"test images: {len(evaluation.labels)}",
             f"accuracy: {_percent(s['accuracy'])}", f"balanced accuracy: {_percent(s['balanced_accuracy'])}",
             f"top-{TOP_K} accuracy: {_percent(s[f'top{TOP_K}_accuracy'])}"]
    if tta_evaluation is not None:
        t = tta_evaluation.summary()
        lines.append(f"with test-time augmentation: accuracy {_percent(t['accuracy'])}, balanced accuracy "
                     f"{_percent(t['balanced_accuracy'])}, top-{TOP_K} {_percent(t[f'top{TOP_K}_accuracy'])}")
    return lines


def classification_report_text(evaluation: Evaluation, tta_evaluation: Evaluation | None = None) -> str:
    return "\n".join(_header(evaluation, tta_evaluation)) + "\n\n" + evaluation.classification_report()


def misclassification_text(evaluation: Evaluation, k: int = REPORT_PAIRS) -> str:
    """Ranked confusion pairs and how much of the error lies inside look-alike groups."""
    amb = evaluation.ambiguity_summary()
    lines = [f"Misclassification analysis: split {evaluation.split}, checkpoint {evaluation.checkpoint}, "
             f"{amb['images']} test images", "",
             f"errors: {amb['errors']} ({_percent(amb['errors'] / max(amb['images'], 1))} of the test images)",
             f"errors inside ambiguity groups: {amb['ambiguous_errors']} "
             f"({_percent(amb['ambiguous_share_of_errors'])} of the errors)",
             f"accuracy if those look-alike confusions were forgiven: {_percent(amb['accuracy_forgiving_ambiguity'])}",
             "", "errors per ambiguity group (groups as present in this split):"]
    lines += ([f"  {' '.join(row['group']):<12} {row['errors']:>6}" for row in amb["per_group"]]
              or ["  (no group has two classes in this split)"])
    lines += ["", f"top {k} confusions (true -> predicted; share = of the true character's test images):",
              f"{'rank':>4}  {'true':>4} -> {'pred':<4} {'count':>6}  {'share':>7}  ambiguity"]
    for rank, pair in enumerate(evaluation.top_confusions(k), 1):
        mark = "AMBIGUOUS" if pair.ambiguous else ""
        row = f"{rank:>4}  {pair.true:>4} -> {pair.pred:<4} {pair.count:>6}  {_percent(pair.share):>7}  {mark}"
        lines.append(row.rstrip())
    return "\n".join(lines) + "\n"


def metrics_dict(evaluation: Evaluation, tta_evaluation: Evaluation | None = None) -> dict[str, Any]:
    """metrics.json: the plain model's numbers always, TTA's beside them when it ran."""
    metrics = {"split": evaluation.split, "checkpoint": evaluation.checkpoint,
               "tta": tta_evaluation is not None, **evaluation.metrics()}
    if tta_evaluation is not None:
        metrics["tta_metrics"] = tta_evaluation.metrics()
    return metrics


def write_reports(evaluation: Evaluation, run_dir: str | os.PathLike,
                  tta_evaluation: Evaluation | None = None) -> dict[str, Any]:
    """classification_report.txt, misclassification_analysis.txt and metrics.json, each written atomically."""
    run_dir = Path(run_dir)
    metrics = metrics_dict(evaluation, tta_evaluation)
    atomic_write_text(run_dir / "classification_report.txt", classification_report_text(evaluation, tta_evaluation))
    atomic_write_text(run_dir / "misclassification_analysis.txt", misclassification_text(evaluation))
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return metrics


def read_history(run_dir: Path, state: dict[str, Any] | None = None) -> dict[str, list] | None:
    """history.json of a run (else the checkpoint's copy), or None when no epoch has finished."""
    path = run_dir / "history.json"
    history = None
    if path.is_file():
        try:
            history = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            history = None
    if history is None and state is not None:
        history = state.get("history")
    return history if history and history.get("epoch") else None


def write_figures(evaluation: Evaluation, run_dir: str | os.PathLike,
                  history: dict[str, list] | None = None, monitor: str = "val_loss") -> list[Path]:
    """The evaluation's figures (and the training history when given) as PNGs in the run folder.

    `monitor` is the run's config.monitor: which epoch the history figure marks as best."""
    run_dir = Path(run_dir)
    title = f"{evaluation.split}, {len(evaluation.labels)} test images"
    figures = {
        "confusion_matrix.png": plots.plot_confusion_matrix(evaluation.confusion_matrix, evaluation.classes,
                                                            title=f"Confusion matrix ({title})"),
        "confusion_matrix_normalized.png": plots.plot_confusion_matrix(
            evaluation.confusion_matrix, evaluation.classes, normalize=True,
            title=f"Confusion matrix, share of each true class ({title})"),
        "per_class_accuracy.png": plots.plot_per_class_accuracy(evaluation.per_class_accuracy(),
                                                                evaluation.classes),
    }
    mistakes = evaluation.worst_mistakes(GALLERY_SIZE)
    if mistakes.images is not None:
        figures["misclassified_examples.png"] = plots.plot_misclassified_examples(
            mistakes.images, mistakes.true, mistakes.pred, mistakes.confidence, ambiguous=mistakes.ambiguous,
            title="Most confident mistakes (true → predicted, confidence)")
    if history is not None:
        figures["training_history.png"] = plots.plot_training_history(history, monitor=monitor)
    written = []
    for name, fig in figures.items():
        plots.save_figure(fig, run_dir / name)
        written.append(run_dir / name)
    return written


def evaluate_run(run_dir: str | os.PathLike, *, split: str | None = None,
                 data_dir: str | os.PathLike | None = None, data: GlyphData | None = None,
                 checkpoint: str | os.PathLike = ckpt.BEST, tta: bool | None = None,
                 limit_test: int | None = None, log: Callable[[str], None] = print,
                 progress: bool = True, device: str | None = None,
                 compile_model: bool | None = None) -> dict[str, Any]:
    """Evaluate a run's checkpoint on the test images and write every report and figure into the run folder.

    The data comes from `data`, else from load_split with the checkpoint's split and data folder (each can be
    overridden). `tta=None` and `compile_model=None` follow the run's config. Deterministic: a second call rewrites identical
    metrics.json. Returns the metrics dict that metrics.json holds.
    """
    run_dir = Path(run_dir)
    run = prepare_run(run_dir, split=split, data_dir=data_dir, data=data, checkpoint=checkpoint,
                      limit_test=limit_test, device=device, progress=progress, compile_model=compile_model)
    use_tta = run.evaluator.config.tta if tta is None else tta
    log(f"evaluating {run.checkpoint} on {len(run.labels)} {run.split} test images"
        + (" (plain and with TTA)" if use_tta else ""))
    plain = run.evaluate()
    with_tta = run.evaluate(tta=True) if use_tta else None
    metrics = write_reports(plain, run_dir, with_tta)
    write_figures(plain, run_dir, read_history(run_dir, run.state), monitor=run.evaluator.config.monitor)
    log(f"test accuracy {_percent(metrics['accuracy'])}, balanced accuracy {_percent(metrics['balanced_accuracy'])}, "
        f"top-{TOP_K} {_percent(metrics[f'top{TOP_K}_accuracy'])}"
        + (f"; with TTA {_percent(metrics['tta_metrics']['accuracy'])}" if with_tta is not None else ""))
    log(f"reports and figures written to {run_dir}")
    return metrics
