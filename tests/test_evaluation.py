"""glyphkit.interpret and workflows.evaluate_run: metrics against hand-computed values, the confusion-pair analysis,
and evaluate_run on a tiny run trained here on synthetic glyphs (no real data needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from glyphkit.config import Config
from glyphkit.data import GlyphData
from glyphkit.inference import TTA_BELOW_CONFIDENCE, TTA_SHIFTS, load_predictor
from glyphkit.interpret import (
    Interpretation,
    ambiguity_mask,
    ambiguity_summary,
    groups_present,
    is_ambiguous_pair,
    top_confusions,
)
from glyphkit.rundir import CheckpointError
from glyphkit.training import Trainer
from glyphkit.workflows import evaluate_run

BALANCED_CLASSES = list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")  # EMNIST balanced: 47, some merged


# ----------------------------------------------------------------------------------------------------------------
# Metrics on a hand-made prediction set
# ----------------------------------------------------------------------------------------------------------------


def ranked_logits(rankings: list[list[int]]) -> np.ndarray:
    """Logits whose order per row is the given ranking (first = predicted)."""
    logits = np.zeros((len(rankings), len(rankings[0])), dtype=np.float32)
    for row, ranking in enumerate(rankings):
        logits[row, ranking] = np.arange(len(ranking), 0, -1)
    return logits


@pytest.fixture
def hand_made() -> Interpretation:
    #            label: 0  0  0  1  1  2  2  3
    #        predicted: 0  0  1  1  0  2  2  1
    # true class last in the ranking (outside the top 3) for samples 4 and 7.
    rankings = [
        [0, 1, 2, 3],
        [0, 1, 2, 3],
        [1, 0, 2, 3],
        [1, 0, 2, 3],
        [0, 2, 3, 1],
        [2, 0, 1, 3],
        [2, 0, 1, 3],
        [1, 0, 2, 3],
    ]
    return Interpretation(
        logits=ranked_logits(rankings),
        labels=np.array([0, 0, 0, 1, 1, 2, 2, 3]),
        classes=list("abcd"),
        split="hand",
        checkpoint="none",
    )


def test_summary_matches_hand_computed(hand_made):
    s = hand_made.summary()
    assert s["accuracy"] == pytest.approx(5 / 8)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1 + 0) / 4)  # mean recall per class
    assert s["top3_accuracy"] == pytest.approx(6 / 8)


def test_per_class_matches_hand_computed(hand_made):
    per_class = hand_made.per_class()
    assert list(per_class) == list("abcd")
    expected = {  # (precision, recall, support)
        "a": (2 / 3, 2 / 3, 3),
        "b": (1 / 3, 1 / 2, 2),
        "c": (1.0, 1.0, 2),
        "d": (0.0, 0.0, 1),
    }
    for ch, (precision, recall, support) in expected.items():
        assert per_class[ch]["precision"] == pytest.approx(precision, abs=1e-6)
        assert per_class[ch]["recall"] == pytest.approx(recall, abs=1e-6)
        assert per_class[ch]["support"] == support
    assert per_class["b"]["f1"] == pytest.approx(0.4, abs=1e-6)  # 2pr / (p + r) with p=1/3, r=1/2
    np.testing.assert_allclose(hand_made.per_class_accuracy(), [2 / 3, 1 / 2, 1, 0])


def test_metrics_dict_is_json_ready(hand_made):
    metrics = hand_made.metrics()
    assert metrics["num_test_images"] == 8 and metrics["errors"] == 3
    json.dumps(metrics)  # plain types only


def test_mistakes_and_confidences(hand_made):
    right, wrong = hand_made.confidences()
    assert len(right) == 5 and len(wrong) == 3
    worst = hand_made.worst_mistakes(2)
    assert len(worst.index) == 2 and set(worst.index) <= {2, 4, 7}
    assert np.all(np.diff(worst.confidence) <= 0)  # most confident first
    assert worst.images is None  # no images were given
    assert len(hand_made.worst_mistakes(10, ambiguous=True)) == 0  # a, b, c, d are no look-alikes
    assert len(hand_made.worst_mistakes(10, ambiguous=False)) == 3
    between = hand_made.mistakes_between("b", "a")
    assert list(between.index) == [4] and between.true == ["b"] and between.pred == ["a"]


# ----------------------------------------------------------------------------------------------------------------
# Confusion pairs and ambiguity groups
# ----------------------------------------------------------------------------------------------------------------


def test_top_confusions_ranks_pairs_and_marks_ambiguity():
    classes = ["O", "0", "l", "1", "A", "B"]
    cm = np.zeros((6, 6), dtype=int)
    np.fill_diagonal(cm, [10, 10, 7, 10, 2, 10])
    cm[0, 1] = 5  # O -> 0: most frequent, ambiguous
    cm[2, 3] = 3  # l -> 1: 3 of 10 l's (share 0.3), ambiguous
    cm[4, 5] = 3  # A -> B: 3 of 5 A's (share 0.6) ranks before l -> 1 at equal count; not ambiguous
    cm[5, 4] = 1
    pairs = top_confusions(cm, classes, k=None)
    assert [(p.true, p.pred, p.count) for p in pairs] == [("O", "0", 5), ("A", "B", 3), ("l", "1", 3), ("B", "A", 1)]
    assert [p.ambiguous for p in pairs] == [True, False, True, False]
    assert pairs[0].share == pytest.approx(5 / 15) and pairs[1].share == pytest.approx(3 / 5)
    assert len(top_confusions(cm, classes, k=2)) == 2

    summary = ambiguity_summary(cm, classes)
    assert summary["errors"] == 12 and summary["ambiguous_errors"] == 8
    assert summary["ambiguous_share_of_errors"] == pytest.approx(8 / 12)
    assert summary["accuracy_forgiving_ambiguity"] == pytest.approx((cm.trace() + 8) / cm.sum())


def test_ambiguity_groups_follow_the_characters_a_split_has():
    present = groups_present(BALANCED_CLASSES)
    assert "O0DQ" in present and "1IL" in present  # o and l are merged away in balanced
    assert not any("c" in g or "C" in g for g in present)  # c/C is one class there: no pair left
    mask = ambiguity_mask(BALANCED_CLASSES)
    idx = BALANCED_CLASSES.index
    assert mask[idx("O"), idx("0")] and mask[idx("0"), idx("Q")] and not mask[idx("O"), idx("O")]
    assert not mask[idx("A"), idx("B")]
    assert is_ambiguous_pair("g", "9") and not is_ambiguous_pair("g", "g") and not is_ambiguous_pair("A", "H")


# ----------------------------------------------------------------------------------------------------------------
# evaluate_run on a tiny trained run
# ----------------------------------------------------------------------------------------------------------------

SYNTH_CLASSES = list("0O1lAB")


def synthetic_data(classes: list[str], split: str = "synth", per_class: int = 20, seed: int = 0) -> GlyphData:
    """Each class is a bright bar at its own place plus noise: learnable, and nothing like real data."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(len(classes)).repeat_interleave(n)
        images = torch.randint(0, 60, (len(labels), 28, 28), generator=g, dtype=torch.uint8)
        rows = 3 + 4 * (labels % 6)
        for offset in range(3):  # three rows per bar, set for all images at once
            images[torch.arange(len(labels)), rows + offset, 4:24] = 255
        return images, labels

    train_x, train_y = make(per_class)
    val_x, val_y = make(4)
    test_x, test_y = make(6)
    return GlyphData(split, list(classes), train_x, train_y, val_x, val_y, test_x, test_y)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    config = Config(split="synth", model="glyphnet", width=8, epochs=1, batch_size=32, device="cpu")
    data = synthetic_data(SYNTH_CLASSES)
    Trainer(config, data, run_dir, progress=False, log=lambda *_: None, max_batches=2).fit()
    return run_dir, data


REPORTS = ["classification_report.txt", "misclassification_analysis.txt", "metrics.json"]
FIGURES = [
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
    "per_class_accuracy.png",
    "training_history.png",
    "misclassified_examples.png",
]


@pytest.mark.slow
def test_evaluate_run_writes_everything_and_is_reproducible(tiny_run):
    run_dir, data = tiny_run
    metrics = evaluate_run(run_dir, data=data, log=lambda *_: None, progress=False)
    for name in REPORTS + FIGURES:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    first = (run_dir / "metrics.json").read_bytes()
    assert json.loads(first) == metrics
    assert metrics["split"] == "synth" and metrics["checkpoint"] == "best_model.pth" and metrics["tta"] is False
    assert metrics["num_test_images"] == len(data.test_labels)
    assert set(metrics["per_class"]) == set(SYNTH_CLASSES)
    for key in ("accuracy", "balanced_accuracy", "top3_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    report = (run_dir / "classification_report.txt").read_text()
    assert "split: synth" in report and "balanced accuracy" in report and "top-3 accuracy" in report
    assert "ambiguity groups" in (run_dir / "misclassification_analysis.txt").read_text()

    evaluate_run(run_dir, data=data, log=lambda *_: None, progress=False)
    assert (run_dir / "metrics.json").read_bytes() == first
    assert not list(run_dir.glob(".*.tmp"))  # atomic writes leave no temporary files behind


@pytest.mark.slow
def test_evaluate_run_with_tta_averages_the_shifted_predictions(tiny_run):
    """TTA is the mean of the network's logits over the glyph and its four one-pixel shifts (for the glyphs the
    calibrated network is unsure of), computed here with torch.roll on the plain (unshifted) prediction path, and
    the reported TTA metrics are those of that mean."""
    run_dir, data = tiny_run
    metrics = evaluate_run(run_dir, data=data, tta=True, limit_test=12, log=lambda *_: None, progress=False)
    assert metrics["tta"] is True and metrics["num_test_images"] == 12
    assert "test-time augmentation" in (run_dir / "classification_report.txt").read_text()
    assert sorted(TTA_SHIFTS) == sorted([(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)])
    predictor = load_predictor(run_dir)
    images, labels = data.test_images[:12], data.test_labels[:12]
    shifted = torch.stack(
        [predictor.logits(torch.roll(images, shifts=(dy, dx), dims=(1, 2))) for dx, dy in TTA_SHIFTS]
    )  # (dx, dy): columns, rows of the [N, 28, 28] glyphs
    plain = predictor.logits(images)
    # Averaged for the glyphs whose calibrated top-1 probability is below TTA_BELOW_CONFIDENCE, plain otherwise.
    unsure = predictor.calibrator(plain).softmax(1).amax(1) < TTA_BELOW_CONFIDENCE
    expected = torch.where(unsure[:, None], shifted.mean(0), plain)
    assert (expected - plain).abs().max() > 1e-3  # the shifts change this network's answers: averaging shows
    torch.testing.assert_close(predictor.logits(images, tta=True), expected, rtol=1e-4, atol=1e-4)
    top3 = (expected.topk(3, dim=1).indices == labels[:, None]).any(1)
    assert metrics["tta_metrics"]["accuracy"] == pytest.approx((expected.argmax(1) == labels).float().mean().item())
    assert metrics["tta_metrics"]["top3_accuracy"] == pytest.approx(top3.float().mean().item())
    assert metrics["accuracy"] == pytest.approx((plain.argmax(1) == labels).float().mean().item())


@pytest.mark.slow
def test_interpretation_from_run_matches_evaluate_run(tiny_run):
    run_dir, data = tiny_run
    evaluation = Interpretation.from_run(run_dir, data=data)
    metrics = evaluate_run(run_dir, data=data, log=lambda *_: None, progress=False)
    assert evaluation.metrics()["accuracy"] == metrics["accuracy"]
    assert evaluation.images is not None and evaluation.worst_mistakes(3).images.shape[1:] == (28, 28)


def test_checkpoint_of_another_split_is_refused_clearly(tiny_run):
    run_dir, _ = tiny_run
    other = synthetic_data(list("abc"), split="other", per_class=2)
    with pytest.raises(CheckpointError, match="split 'synth' in the checkpoint vs 'other'.*num_classes 6"):
        evaluate_run(run_dir, data=other, log=lambda *_: None, progress=False)
    same_name = synthetic_data(list("abcdef"), split="synth", per_class=2)
    with pytest.raises(CheckpointError, match="class characters differ"):
        evaluate_run(run_dir, data=same_name, log=lambda *_: None, progress=False)
    # An explicit split is checked before any data is read, so no DataError about missing files hides it.
    with pytest.raises(CheckpointError, match="split 'synth' in the checkpoint vs 'balanced'"):
        evaluate_run(run_dir, split="balanced", data_dir=run_dir, log=lambda *_: None, progress=False)


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        evaluate_run(tmp_path, data=synthetic_data(SYNTH_CLASSES, per_class=1), log=lambda *_: None)


def test_coverage_against_accuracy_by_hand(hand_made):
    coverage, accuracy, threshold = hand_made.coverage_accuracy()
    assert coverage[-1] == 1.0 and accuracy[-1] == pytest.approx(5 / 8)  # answering everything: plain accuracy
    assert np.all(np.diff(coverage) > 0) and np.all(np.diff(threshold) <= 0)
    most_sure = int(np.argmax(hand_made.confidence))
    assert accuracy[0] == float(hand_made.correct[most_sure]) and coverage[0] == 1 / 8


@pytest.mark.slow
def test_calibration_is_stored_with_the_model_and_reported(tiny_run, tmp_path):
    import shutil

    from glyphkit import rundir
    from glyphkit.inference import load_trained_run
    from glyphkit.workflows import calibrate

    run_dir, data = tiny_run
    run_dir = shutil.copytree(run_dir, tmp_path / "run")
    val = load_trained_run(run_dir, data=data, part="val")
    # 24 validation images: below the minimum a run calibrates on by itself, allowed here to test storing it
    calibrator = calibrate(run_dir, val.predictor, val.images, val.labels, min_images=20, log=lambda *_: None)
    stored = rundir.load_checkpoint(run_dir / rundir.BEST)["calibration"]
    assert stored["method"] == "temperature" and stored["scale"] == pytest.approx(float(calibrator.scale))
    metrics = evaluate_run(run_dir, data=data, log=lambda *_: None, progress=False)
    assert metrics["calibration"]["method"] == f"temperature {1 / float(calibrator.scale):.3f}"
    logits = val.predictor.logits(data.test_images)
    plain = Interpretation(logits, data.test_labels, data.classes)
    assert metrics["calibration"]["ece_before"] == pytest.approx(plain.calibration()["ece_after"], abs=1e-6)
    # A temperature never changes an answer.
    assert metrics["accuracy"] == pytest.approx(plain.summary()["accuracy"], abs=1e-6)
    assert metrics["calibration"]["accuracy_after"] == metrics["calibration"]["accuracy_before"]

    # Vector scaling (opt-in): the answers are the calibrated logits' (per-class biases may change them), by hand.
    calibrator = calibrate(
        run_dir, val.predictor, val.images, val.labels, method="vector", min_images=20, log=lambda *_: None
    )
    metrics = evaluate_run(run_dir, data=data, log=lambda *_: None, progress=False)
    assert metrics["calibration"]["method"].startswith("vector scaling")
    by_hand = (logits * calibrator.scale + calibrator.bias).argmax(1)
    assert metrics["accuracy"] == pytest.approx((by_hand == data.test_labels).float().mean().item(), abs=1e-6)
    assert metrics["calibration"]["accuracy_before"] == pytest.approx(plain.summary()["accuracy"], abs=1e-6)
    for name in ("reliability_diagram.png", "coverage_accuracy.png"):
        assert (run_dir / name).stat().st_size > 10_000, name
