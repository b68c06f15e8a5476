"""Understanding a model's answers: metrics, the confusions it makes, and the mistakes worth looking at.

`Interpretation` holds a model's outputs on one set of glyphs and answers the questions a user asks of them
(how accurate, which classes, which pairs, show me the images), and plots itself; it is modelled on fastai's
`ClassificationInterpretation`. `Interpretation.from_run(run_dir)` evaluates a run folder's checkpoint in
memory; glyphkit.reports writes the same results as files.

Handwriting is ambiguous: an `O` and a `0`, or an `l` and a `1`, are often the same stroke. AMBIGUOUS_GROUPS
names those look-alike sets, so the analysis can say how much of the error is shape-ambiguity rather than a
model that has not learned enough.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from glyphkit.data import GlyphData
from glyphkit.inference import (
    CLASS_PRIORS,
    Calibrator,
    TrainedRun,
    expected_calibration_error,
    load_trained_run,
    reliability_bins,
)
from glyphkit.rundir import BEST

# Characters that handwriting often makes look alike. A group only matters through the characters a split
# has: in `balanced` (47 classes) c/C, k/K, ... are already one class, so those groups shrink to one member
# and simply never mark a pair.
AMBIGUOUS_GROUPS: tuple[str, ...] = (
    "oO0DQ",
    "l1IiL|",
    "sS5",
    "zZ2",
    "g9q",
    "cC",
    "kK",
    "mM",
    "pP",
    "uU",
    "vV",
    "wW",
    "xX",
    "yY",
    "b6",
    "B8",
    "T7",
    "jJ",
    "fF",
    "nh",
    "ad",
)

TOP_K = 3  # top-k accuracy reported next to plain accuracy
REPORT_PAIRS = 50  # confusion pairs listed in misclassification_analysis.txt
GALLERY_SIZE = 40  # mistakes shown in misclassified_examples.png
ROUND = 6  # decimals kept in metrics.json (exact enough, and stable across runs)
TOP_PAIRS = 20  # confusion pairs listed by default


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
# Plain-array helpers (shared by Interpretation and usable on their own)
# ----------------------------------------------------------------------------------------------------------------


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true, predicted] over all `num_classes` classes (rows of absent classes are zero)."""
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
        return {
            "true": self.true,
            "pred": self.pred,
            "count": self.count,
            "share": round(self.share, ROUND),
            "ambiguous": self.ambiguous,
        }


def top_confusions(
    cm: np.ndarray, classes: Sequence[str], k: int | None = TOP_PAIRS, groups: Sequence[str] = AMBIGUOUS_GROUPS
) -> list[ConfusionPair]:
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
    return [
        ConfusionPair(classes[t], classes[p], int(c), float(s), bool(ambiguous[t, p]))
        for t, p, c, s in zip(true_idx[order], pred_idx[order], counts[order], shares[order])
    ]


def ambiguity_summary(
    cm: np.ndarray, classes: Sequence[str], groups: Sequence[str] = AMBIGUOUS_GROUPS
) -> dict[str, Any]:
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

# glyphkit.plots (matplotlib, seaborn) is imported inside the plot methods below: computing an accuracy, as the
# benchmark and the reports' numbers do, should not pay for loading a plotting stack.


@dataclass
class Mistakes:
    """Selected wrong predictions (most confident first), with their glyphs when the images are known."""

    index: np.ndarray  # positions in the evaluated set
    images: np.ndarray | None  # uint8 [K, 28, 28], upright
    true: list[str]
    pred: list[str]
    confidence: np.ndarray  # probability the model gave its (wrong) prediction
    ambiguous: np.ndarray | None = None  # True where true and predicted share a look-alike group

    def __len__(self) -> int:
        return len(self.index)

    def plot(self, title: str = "Most confident mistakes (true → predicted, confidence)", ncols: int = 8):
        """The glyphs titled 'true → predicted' and confidence; look-alike confusions marked (orange ≈)."""
        from glyphkit import plots

        images = self.images if self.images is not None and len(self) else np.zeros((0, 28, 28), np.uint8)
        return plots.plot_misclassified_examples(
            images,
            self.true,
            self.pred,
            self.confidence,
            ncols=ncols,
            title=title,
            ambiguous=self.ambiguous if len(self) else None,
        )


@dataclass
class Interpretation:
    """A model's outputs on one set of images, and every analysis a notebook or report needs of them.

    In the spirit of fastai's ClassificationInterpretation: keep the raw outputs once, derive the rest.
    Build one with `Interpretation.from_run(run_dir)` (a run folder's checkpoint on its test images) or
    directly from logits and labels.
    """

    logits: np.ndarray  # float32 [N, C]
    labels: np.ndarray  # int64 [N]
    classes: list[str]
    images: torch.Tensor | np.ndarray | None = None  # uint8 [N, 28, 28], upright, for galleries
    split: str = ""
    checkpoint: str = ""
    tta: bool = False
    groups: Sequence[str] = AMBIGUOUS_GROUPS
    calibrator: Calibrator | None = None  # the run's calibration; None: the logits as they are
    class_prior: str = "train"  # the prior the logits answer for (inference.ClassPrior); "uniform": class-balanced

    def __post_init__(self) -> None:
        # Accept tensors or lists too: everything below works on NumPy arrays.
        self.logits = np.asarray(self.logits, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.classes = list(self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def calibrated_logits(self) -> np.ndarray:
        """The logits through the run's calibration: what answers, probabilities and top-k come from."""
        if self.calibrator is None:
            return self.logits
        return self.calibrator(torch.from_numpy(self.logits)).numpy()

    @cached_property
    def probabilities(self) -> np.ndarray:
        """Calibrated probabilities: the softmax of the calibrated logits."""
        return torch.from_numpy(self.calibrated_logits).float().softmax(dim=1).numpy()

    @cached_property
    def predictions(self) -> np.ndarray:
        return self.calibrated_logits.argmax(axis=1)

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
        with warnings.catch_warnings():
            # Predicted classes absent from a small test set are expected, not worth a warning.
            warnings.simplefilter("ignore", UserWarning)
            balanced = balanced_accuracy_score(self.labels, self.predictions)
        k = min(TOP_K, self.num_classes)
        top_k = (
            1.0
            if k == self.num_classes
            else top_k_accuracy_score(self.labels, self.calibrated_logits, k=k, labels=np.arange(self.num_classes))
        )
        return {
            "accuracy": float(accuracy_score(self.labels, self.predictions)),
            "balanced_accuracy": float(balanced),
            f"top{TOP_K}_accuracy": float(top_k),
        }

    def per_class(self) -> dict[str, dict[str, float]]:
        """{character: {precision, recall, f1, support}} in label order."""
        precision, recall, f1, support = precision_recall_fscore_support(
            self.labels, self.predictions, labels=np.arange(self.num_classes), zero_division=0
        )
        return {
            name: {
                "precision": round(float(p), ROUND),
                "recall": round(float(r), ROUND),
                "f1": round(float(f), ROUND),
                "support": int(s),
            }
            for name, p, r, f, s in zip(unique_names(self.classes), precision, recall, f1, support)
        }

    def metrics(self) -> dict[str, Any]:
        """Everything metrics.json holds about this evaluation."""
        ambiguity = self.ambiguity_summary()
        return {
            **{k: round(v, ROUND) for k, v in self.summary().items()},
            "num_test_images": int(len(self.labels)),
            "errors": ambiguity["errors"],
            "ambiguous_errors": ambiguity["ambiguous_errors"],
            "class_prior": self.class_prior,
            "calibration": {
                k: v if isinstance(v, (str, bool)) else round(v, ROUND) for k, v in self.calibration().items()
            },
            "per_class": self.per_class(),
        }

    # -------------------------------------------------------------- confidence
    def calibration(self) -> dict[str, Any]:
        """Expected calibration error and accuracy without and with the run's calibration. Under the uniform class
        prior the ECE is class-balanced (every class counts alike, as on the images those answers are for)."""
        uncalibrated = torch.from_numpy(self.logits).float().softmax(dim=1).numpy()
        calibrator = self.calibrator or Calibrator.identity()
        balanced = self.class_prior == "uniform"
        return {
            "method": calibrator.describe(),
            "ece_class_balanced": balanced,
            "ece_before": expected_calibration_error(uncalibrated, self.labels, class_balanced=balanced),
            "ece_after": expected_calibration_error(self.probabilities, self.labels, class_balanced=balanced),
            "accuracy_before": float((self.logits.argmax(axis=1) == self.labels).mean()),
            "accuracy_after": float((self.predictions == self.labels).mean()),
        }

    def coverage_accuracy(self, points: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(coverage, accuracy, threshold): answering only the images whose confidence is at least `threshold`
        covers that share of them with that accuracy. Pick `predict --min-confidence` from it."""
        order = np.argsort(-self.confidence, kind="stable")
        hits = np.cumsum(self.correct[order])
        answered = np.arange(1, len(order) + 1)
        keep = np.unique(np.linspace(0, len(order) - 1, min(points, len(order))).round().astype(int))
        return answered[keep] / len(order), hits[keep] / answered[keep], self.confidence[order][keep]

    def classification_report(self) -> str:
        """sklearn's per-class table with characters as row names."""
        return classification_report(
            self.labels,
            self.predictions,
            labels=np.arange(self.num_classes),
            target_names=unique_names(self.classes),
            digits=4,
            zero_division=0,
        )

    # -------------------------------------------------------------- mistakes
    def top_confusions(self, k: int | None = TOP_PAIRS) -> list[ConfusionPair]:
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
        return Mistakes(
            index=index,
            images=self._images_at(index),
            true=[self.classes[i] for i in self.labels[index]],
            pred=[self.classes[i] for i in self.predictions[index]],
            confidence=self.confidence[index],
            ambiguous=self.is_ambiguous_error()[index],
        )

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

    # -------------------------------------------------------------- building one
    @classmethod
    def of(cls, run: TrainedRun, tta: bool = False) -> Interpretation:
        """A loaded run's predictions on its test images (plain, or averaged over TTA shifts)."""
        return cls._of_logits(run, run.predictor.logits(run.images, tta), tta)

    @classmethod
    def plain_and_tta(cls, run: TrainedRun) -> tuple[Interpretation, Interpretation]:
        """The plain and the test-time-augmented predictions of a loaded run, from one pass over its images."""
        plain, averaged = run.predictor.plain_and_tta_logits(run.images)
        return cls._of_logits(run, plain, False), cls._of_logits(run, averaged, True)

    @classmethod
    def _of_logits(cls, run: TrainedRun, logits: torch.Tensor, tta: bool) -> Interpretation:
        return cls(
            logits=logits,
            labels=run.labels,
            classes=run.config.classes,
            images=run.images,
            split=run.split,
            checkpoint=run.checkpoint,
            tta=tta,
            calibrator=run.predictor.calibrator,
            class_prior=run.predictor.class_prior,
        )

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike,
        *,
        checkpoint: str | os.PathLike = BEST,
        tta: bool = False,
        split: str | None = None,
        data_dir: str | os.PathLike | None = None,
        data: GlyphData | None = None,
        limit_test: int | None = None,
        device: str | None = None,
        progress: bool = False,
        compile_model: bool | None = None,
        class_prior: str = "train",
    ) -> Interpretation:
        """A run folder's checkpoint evaluated on its test images, in memory (nothing is written).

        The test images are those of the run's split and data folder unless `split`, `data_dir` or `data` say
        otherwise; a checkpoint of another split or class set is refused (CheckpointError). `class_prior`: "train"
        (answers for images mixed as in training) or "uniform" (class-balanced; inference.ClassPrior)."""
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
            class_prior=class_prior,
        )
        return cls.of(run, tta)

    @classmethod
    def by_class_prior(cls, run_dir: str | os.PathLike, **kwargs: Any) -> dict[str, Interpretation]:
        """{"train": ..., "uniform": ...}: a run's checkpoint on its test images under both class priors, from one
        pass of the network (the uniform answers are the same logits with the prior's shift: inference.prior_shift,
        and the calibration fitted for them). kwargs: from_run's, but class_prior."""
        run = load_trained_run(run_dir, **kwargs)
        train = cls.of(run)
        prior = run.predictor.prior
        logits = torch.from_numpy(train.logits) - prior.shift("train") + prior.shift("uniform")
        uniform = cls(
            logits=logits,
            labels=run.labels,
            classes=run.config.classes,
            images=run.images,
            split=run.split,
            checkpoint=run.checkpoint,
            class_prior="uniform",
            calibrator=Calibrator.from_state(run.state, "uniform"),
        )
        return dict(zip(CLASS_PRIORS, (train, uniform)))

    # -------------------------------------------------------------- pictures
    def plot_confusion_matrix(self, normalize: bool = False):
        from glyphkit import plots

        what = ", share of each true class" if normalize else ""
        title = f"Confusion matrix{what} ({self.split}, {len(self.labels)} test images)"
        return plots.plot_confusion_matrix(self.confusion_matrix, self.classes, normalize=normalize, title=title)

    def plot_per_class_accuracy(self):
        from glyphkit import plots

        return plots.plot_per_class_accuracy(self.per_class_accuracy(), self.classes)

    def plot_confidence(self):
        """Histograms of the model's confidence when right and when wrong."""
        from glyphkit import plots

        return plots.plot_confidence_histogram(*self.confidences())

    def plot_reliability(self):
        """Accuracy against confidence, bin by bin: on the diagonal when probabilities mean what they say."""
        from glyphkit import plots

        counts, accuracy, _ = reliability_bins(self.confidence, self.correct)
        return plots.plot_reliability_diagram(counts, accuracy, self.calibration())

    def plot_coverage(self):
        """Accuracy of the answers kept against the share answered, as the confidence threshold rises."""
        from glyphkit import plots

        return plots.plot_coverage_accuracy(*self.coverage_accuracy())

    def plot_top_confusion(self, k: int = 16):
        """Examples of the most frequent confusion (true -> predicted)."""
        pairs = self.top_confusions(1)
        if not pairs:
            return self.worst_mistakes(0).plot("No mistakes")
        pair = pairs[0]
        return self.mistakes_between(pair.true, pair.pred, k).plot(
            f"The most frequent confusion: {pair.true} read as {pair.pred} ({pair.count} times)"
        )
