"""Class priors: every run keeps its training prior, `--class-prior uniform` takes it out of the answers (logit
adjustment, Menon et al. 2021), `--balance` trains it out, and evaluations report accuracy and balanced accuracy
under the prior asked for. Expected values are worked out by hand from the formulas, not by the code under test."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from glyphkit import cli, rundir
from glyphkit.config import Config, ConfigError
from glyphkit.data import load_config_split
from glyphkit.inference import (
    Calibrator,
    ClassPrior,
    Predictor,
    expected_calibration_error,
    fit_uniform_temperature,
    load_predictor,
    load_trained_run,
)
from glyphkit.training import Trainer
from glyphkit.workflows import calibrate

QUIET = dict(progress=False, log=lambda *_: None)


class FixedLogits(nn.Module):
    """A 'network' that answers the same logits for every glyph: the arithmetic of the prior, nothing else."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.register_buffer("answer", torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.answer.expand(len(x), -1)


def fixed_predictor(logits: list[float], counts: list[int], network: str = "train", wanted: str = "train") -> Predictor:
    config = Config(
        num_classes=len(logits),
        classes=list("ab")[: len(logits)],
        norm_mean=0.1,
        norm_std=0.3,
        input_size=28,
        device="cpu",
        precision="fp32",
        channels_last=False,
    )
    predictor = Predictor(FixedLogits(logits), config, compile_model=False)
    predictor.use_class_prior(wanted, ClassPrior(torch.tensor(counts, dtype=torch.float64), network))
    return predictor


GLYPHS = torch.zeros(3, 28, 28, dtype=torch.uint8)


def test_uniform_flips_a_two_class_answer_as_bayes_rule_says():
    """Logits (1, 0) from a network trained on 90 `a` and 10 `b`: for the training mix `a` wins, p(b) = 1 / (1 +
    e); with the prior taken out, p(b) = (e^0 / 0.1) / (e^1 / 0.9 + e^0 / 0.1) = 10 / (e / 0.9 + 10) = 0.768."""
    train = fixed_predictor([1.0, 0.0], [90, 10], wanted="train")
    uniform = fixed_predictor([1.0, 0.0], [90, 10], wanted="uniform")
    assert train.probabilities(GLYPHS).argmax(1).tolist() == [0, 0, 0]
    assert train.probabilities(GLYPHS)[0, 1].item() == pytest.approx(1 / (1 + math.e), abs=1e-6)
    assert uniform.probabilities(GLYPHS).argmax(1).tolist() == [1, 1, 1]
    assert uniform.probabilities(GLYPHS)[0, 1].item() == pytest.approx(10 / (math.e / 0.9 + 10), abs=1e-6)
    # The logits themselves: (1 - log 0.9, 0 - log 0.1), up to one constant the softmax never sees.
    logits = uniform.logits(GLYPHS)[0]
    assert (logits[1] - logits[0]).item() == pytest.approx((0 - math.log(0.1)) - (1 - math.log(0.9)), abs=1e-6)
    # The same holds with test-time augmentation (every view is adjusted alike).
    assert uniform.logits(GLYPHS, tta=True).argmax(1).tolist() == [1, 1, 1]


def test_uniform_on_a_model_trained_on_a_uniform_prior_changes_nothing_exactly():
    train = fixed_predictor([0.3, -1.7], [25, 25], wanted="train")
    uniform = fixed_predictor([0.3, -1.7], [25, 25], wanted="uniform")
    assert uniform.logit_shift is None  # nothing added at all, so bit for bit the same
    assert torch.equal(uniform.logits(GLYPHS), train.logits(GLYPHS))
    assert torch.equal(uniform.probabilities(GLYPHS), train.probabilities(GLYPHS))


def test_a_balanced_trained_network_is_not_adjusted_twice():
    """--balance logit-adjust trains prior-free logits: `uniform` leaves them, `train` adds log prior back."""
    raw = [0.2, 0.0]
    uniform = fixed_predictor(raw, [90, 10], network="uniform", wanted="uniform")
    train = fixed_predictor(raw, [90, 10], network="uniform", wanted="train")
    assert uniform.logit_shift is None
    torch.testing.assert_close(uniform.logits(GLYPHS)[0], torch.tensor(raw))
    shifted = train.logits(GLYPHS)[0]
    assert (shifted[0] - shifted[1]).item() == pytest.approx(0.2 + math.log(0.9) - math.log(0.1), abs=1e-6)


def test_an_unknown_class_prior_is_a_config_error():
    with pytest.raises(ConfigError, match="class prior must be one of train, uniform"):
        fixed_predictor([0.0, 1.0], [3, 4], wanted="balanced")


def test_the_uniform_temperature_is_fitted_for_class_balanced_images():
    """Labels drawn with prior 0.7/0.2/0.1, features s = 3 onehot(label) + noise of variance 2: the class-balanced
    posterior is softmax(1.5 s). The network's logits are log prior + 3 s (too confident by 2), so once adjusted (3 s)
    the temperature that calibrates them for class-balanced images is 2; the validation images are mixed as in
    training, and only weighting their classes alike finds it."""
    g = torch.Generator().manual_seed(0)
    prior = torch.tensor([0.7, 0.2, 0.1])
    labels = torch.multinomial(prior, 30000, replacement=True, generator=g)
    s = 3 * nn.functional.one_hot(labels, 3).float() + torch.randn(30000, 3, generator=g) * math.sqrt(2)
    counts = torch.bincount(labels, minlength=3).double()
    logits = (counts / counts.sum()).log().float() + 3 * s
    fitted = fit_uniform_temperature(logits, labels, ClassPrior(counts))
    assert 1 / float(fitted.scale) == pytest.approx(2.0, rel=0.05)
    adjusted = (3 * s) * fitted.scale
    assert expected_calibration_error(adjusted.softmax(1).numpy(), labels.numpy(), class_balanced=True) < 0.02


def test_class_balanced_ece_weights_every_class_alike():
    """Two classes: 3 images of class 0, all right at confidence 1; 1 image of class 1, wrong at confidence 1. Image
    weighted: 1/4 of the mass is off by 1; class-balanced: half of it."""
    probabilities = np.array([[1.0, 0.0]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.25)
    assert expected_calibration_error(probabilities, labels, class_balanced=True) == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------------------------
# Runs: the prior in checkpoints and exports, training with --balance, evaluation
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imbalanced_run(tmp_path_factory, tiny_data_dir):
    """A tiny run on 200 of the tiny split's 600 training images, drawn at random: unequal classes."""
    run_dir = tmp_path_factory.mktemp("prior_run")
    config = Config(
        split="tiny",
        data_dir=str(tiny_data_dir),
        model="glyphnet",
        width=8,
        epochs=1,
        batch_size=32,
        device="cpu",
        precision="fp32",
        val_split=0.2,
        seed=0,
        limit_train=200,
    )
    data = load_config_split(config)
    Trainer(config, data, run_dir, **QUIET, max_batches=2).fit()
    return run_dir, data


def by_hand_counts(labels: torch.Tensor, classes: int) -> list[int]:
    found = [0] * classes
    for label in labels.tolist():
        found[label] += 1
    return found


def test_every_checkpoint_keeps_the_training_prior(imbalanced_run):
    run_dir, data = imbalanced_run
    want = by_hand_counts(data.train_labels, data.num_classes)
    assert len(set(want)) > 1  # the classes really are unequal
    for name in (rundir.BEST, rundir.LATEST):
        saved = rundir.load_checkpoint(run_dir / name)["class_prior"]
        assert saved == {"counts": want, "logits": "train"}, name
    predictor = load_predictor(run_dir, class_prior="uniform")
    assert predictor.prior.counts.tolist() == want and predictor.class_prior == "uniform"
    expected = -torch.tensor(want, dtype=torch.float64).div(max(want)).log().float()
    torch.testing.assert_close(predictor.logit_shift, expected)


def test_a_checkpoint_without_a_prior_counts_it_from_its_split(imbalanced_run, tmp_path):
    """A run trained before the prior was stored: the counts come from its split, split again the same way."""
    run_dir, data = imbalanced_run
    old = tmp_path / "old"
    old.mkdir()
    for name in (rundir.BEST, rundir.LATEST):
        state = rundir.load_checkpoint(run_dir / name)
        del state["class_prior"]
        rundir.save_checkpoint(state, old / name)
    new, legacy = load_predictor(run_dir, class_prior="uniform"), load_predictor(old, class_prior="uniform")
    assert legacy.prior.counts.tolist() == by_hand_counts(data.train_labels, data.num_classes)
    torch.testing.assert_close(legacy.logits(data.test_images[:8]), new.logits(data.test_images[:8]))
    # Answering for its own prior, it loads without reading any data.
    assert load_predictor(old).prior is None


@pytest.mark.slow
def test_evaluate_with_the_uniform_prior_records_it_and_balanced_accuracy(imbalanced_run, tmp_path, capsys):
    import shutil

    run_dir, data = imbalanced_run
    run_dir = shutil.copytree(run_dir, tmp_path / "run")
    assert cli.main(["evaluate", str(run_dir), "--class-prior", "uniform", "--no-progress", "--device", "cpu"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["class_prior"] == "uniform"
    assert metrics["calibration"]["ece_class_balanced"] is True
    logits = load_predictor(run_dir).logits(data.test_images)  # the train prior's, then adjusted by hand
    counts = torch.tensor(by_hand_counts(data.train_labels, data.num_classes), dtype=torch.float32)
    answers = (logits - (counts / counts.sum()).log()).argmax(1).numpy()
    assert (answers != logits.argmax(1).numpy()).any()  # the prior changes some answers here
    labels = data.test_labels.numpy()
    recalls = [np.mean(answers[labels == k] == k) for k in range(data.num_classes)]
    assert metrics["accuracy"] == pytest.approx(np.mean(answers == labels), abs=1e-6)
    assert metrics["balanced_accuracy"] == pytest.approx(np.mean(recalls), abs=1e-6)
    assert [metrics["per_class"][ch]["recall"] for ch in data.classes] == pytest.approx(recalls, abs=1e-6)
    assert "class prior: uniform" in (run_dir / "classification_report.txt").read_text()
    assert cli.main(["evaluate", str(run_dir), "--no-progress", "--device", "cpu"]) == 0
    assert json.loads((run_dir / "metrics.json").read_text())["class_prior"] == "train"


def test_calibrating_stores_a_temperature_for_the_uniform_prior(imbalanced_run, tmp_path):
    import shutil

    run_dir, data = imbalanced_run
    run_dir = shutil.copytree(run_dir, tmp_path / "run")
    val = load_trained_run(run_dir, data=data, part="val")
    calibrate(run_dir, val.predictor, val.images, val.labels, min_images=len(val.labels), log=lambda *_: None)
    stored = rundir.load_checkpoint(run_dir / rundir.BEST)
    assert stored["calibration"]["method"] == "temperature" and "uniform" in stored["calibration"]
    uniform = load_predictor(run_dir, class_prior="uniform")
    assert float(uniform.calibrator.scale) == pytest.approx(stored["calibration"]["uniform"]["scale"])
    assert Calibrator.from_state(stored).scale.item() == pytest.approx(stored["calibration"]["scale"])


def tiny_batch_loss(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    trainer.model.eval()  # no dropout: the logits the loss sees are the ones read back here
    with torch.no_grad():
        loss, logits = trainer.loss(x, y)
    return loss.item(), logits.float()


@pytest.mark.parametrize("balance", ["reweight", "logit-adjust"])
def test_balance_changes_the_training_loss_as_its_formula_says(balance, imbalanced_run):
    _, data = imbalanced_run
    config = Config(
        split="tiny",
        model="glyphnet",
        width=8,
        epochs=1,
        batch_size=8,
        device="cpu",
        precision="fp32",
        balance=balance,
        output_dir="unused",
    )
    trainer = Trainer(config, data, progress=False, log=lambda *_: None)
    counts = np.array(by_hand_counts(data.train_labels, data.num_classes), dtype=np.float64)
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    rare, common = int(counts.argmin()), int(counts.argmax())
    y = torch.tensor([rare, common, common, rare, common, common])
    loss, logits = tiny_batch_loss(trainer, x, y)
    z, labels = logits.double().numpy(), y.numpy()
    if balance == "reweight":  # weights 1/count, mean 1 over the classes; torch's weighted mean over the batch
        w = (1 / counts) / np.mean(1 / counts)
        nll = -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(6), labels]
        expected = (w[labels] * nll).sum() / w[labels].sum()
    else:  # cross-entropy of logits + log prior (Menon et al. 2021, eq. 11)
        adjusted = z + np.log(counts / counts.sum())
        expected = -(adjusted - np.log(np.exp(adjusted).sum(1, keepdims=True)))[np.arange(6), labels].mean()
    plain = -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(6), labels].mean()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert abs(expected - plain) > 1e-4  # the batch tells the two apart
    assert trainer.state_dict()["class_prior"]["logits"] == "uniform"


def test_balance_is_checked_and_has_help():
    with pytest.raises(ConfigError, match="balance must be one of none, reweight, logit-adjust"):
        Config(balance="oversample").validate()
    parser = cli.build_parser()
    help_text = {a.dest: a.help for p in parser._subparsers._group_actions[0].choices.values() for a in p._actions}
    assert help_text["balance"] and help_text["class_prior"]


@pytest.mark.slow
def test_an_export_for_the_uniform_prior_answers_as_the_run_does_and_says_so(imbalanced_run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from glyphkit import export
    from glyphkit.runtime_onnx import ModelError, OnnxGlyphReader

    run_dir, data = imbalanced_run
    result = export.export_run(
        run_dir, "onnx", tmp_path / "uniform.onnx", class_prior="uniform", parity_images=50, log=lambda *_: None
    )
    meta = export.read_metadata(result.path)
    assert meta["class_prior"] == {
        "answers_for": "uniform",
        "logits": "train",
        "counts": by_hand_counts(data.train_labels, data.num_classes),
    }
    images = data.test_images[:20]
    reader = OnnxGlyphReader(result.path, class_prior="uniform")
    want = load_predictor(run_dir, device="cpu", class_prior="uniform").probabilities(images).numpy()
    np.testing.assert_allclose(reader.probabilities(images.numpy()), want, atol=1e-5)
    train = load_predictor(run_dir, device="cpu").probabilities(images).numpy()
    assert np.abs(want - train).max() > 1e-3  # the prior is in the graph, not only in the metadata
    with pytest.raises(ModelError, match="answers for the uniform class prior.*--class-prior train"):
        OnnxGlyphReader(result.path, class_prior="train")


def test_both_priors_from_one_pass_match_two_evaluations_and_tabulate(imbalanced_run):
    from glyphkit import tables
    from glyphkit.interpret import Interpretation

    run_dir, data = imbalanced_run
    both = Interpretation.by_class_prior(run_dir, data=data)
    for prior in ("train", "uniform"):
        alone = Interpretation.from_run(run_dir, data=data, class_prior=prior)
        assert both[prior].class_prior == prior
        assert np.array_equal(both[prior].predictions, alone.predictions), prior
        assert both[prior].summary() == pytest.approx(alone.summary()), prior
    table = tables.class_prior_table(both)
    assert list(table.columns) == ["train", "uniform"] and list(table.index) == ["accuracy", "balanced_accuracy"]
    recall = tables.lookalike_recall_table(both)  # tiny's characters 0-9, A-J: groups such as 0/D, 1/I, 2/Z ...
    assert ("0D", "D") in recall.index and ("1I", "I") in recall.index
    k = data.classes.index("D")
    assert recall.loc[("0D", "D"), "recall, uniform"] == f"{100 * both['uniform'].per_class_accuracy()[k]:.1f} %"
