"""Batched prediction: inference with batch norms folded and compiled inference give the network's own answers,
follow weight changes, and compilation falls back to eager (with a warning) where torch.compile cannot work."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from glyphkit import inference
from glyphkit.inference import predict_logits
from glyphkit.models import GlyphNet


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = GlyphNet(num_classes=5, width=8).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so folding BN into the convs is really tested
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _images(n: int = 37) -> torch.Tensor:
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def _predict(model, images, **kwargs) -> torch.Tensor:
    return predict_logits(
        model, images, mean=0.17, std=0.33, input_size=28, device=torch.device("cpu"), batch_size=16, **kwargs
    )  # 37 images: the last batch is partial


@pytest.mark.slow
def test_compiled_inference_matches_eager_and_follows_weight_changes():
    model, images = _model(), _images()
    eager = _predict(model, images)
    compiled = _predict(model, images, compile_model=True)
    assert compiled.shape == eager.shape == (37, 5)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)

    with torch.no_grad():  # e.g. another epoch of training: the frozen compiled copy must not be reused
        model.classifier[-1].bias.add_(torch.arange(5.0))
    torch.testing.assert_close(
        _predict(model, images, compile_model=True), _predict(model, images), rtol=1e-4, atol=1e-4
    )


def test_inference_runs_the_network_with_batch_norms_folded_and_gives_its_answers():
    model, images = _model(), _images()
    x = (images.float().unsqueeze(1) / 255 - 0.17) / 0.33
    with torch.no_grad():
        expected = model(x)  # the network itself, batch norms and all
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    calls = []
    for norm in norms:
        norm.register_forward_hook(lambda *_: calls.append(1))
    model.train()  # predict switches to eval mode and back
    logits = _predict(model, images)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert calls == []  # folded into the convolutions: no separate normalisation pass
    assert model.training and len([m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]) == len(norms)

    with torch.no_grad():  # another epoch of training changes the statistics: the folded copy must follow
        norms[0].running_mean.add_(0.3)
        expected = model.eval()(x)
    assert not torch.allclose(expected, logits, atol=1e-3)
    torch.testing.assert_close(_predict(model, images), expected, rtol=1e-4, atol=1e-4)


def test_inference_without_folding_runs_the_batch_norms_as_layers_and_gives_the_same_answers():
    """fold_batch_norms=False (what benchmarks/fp32_levers.py compares folding against) runs the network as built."""
    from glyphkit.config import Config
    from glyphkit.inference import Predictor

    model, images = _model(), _images()
    calls = []
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.register_forward_hook(lambda *_: calls.append(1))
    folded = _predict(model, images)
    assert calls == []
    kept = _predict(model, images, fold_batch_norms=False)
    assert calls  # every batch norm ran as its own layer
    torch.testing.assert_close(kept, folded, rtol=1e-4, atol=1e-4)
    calls.clear()
    config = Config(
        model="glyphnet", width=8, precision="fp32", channels_last=False, norm_mean=0.17, norm_std=0.33, input_size=28
    )
    predictor = Predictor(model, config, "cpu", batch_size=16, compile_model=False, fold_batch_norms=False)
    torch.testing.assert_close(predictor.logits(images), folded, rtol=1e-4, atol=1e-4)
    assert calls


@pytest.mark.slow
def test_a_network_no_longer_used_is_freed_despite_its_cached_inference_copies():
    """A notebook that trains or loads one network after another must not keep every one of them in memory."""
    with_norms = _model()
    without_norms = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 5)
    ).eval()
    for model in (with_norms, without_norms):
        _predict(model, _images(8))  # runs and caches the folded copy
    inference.compile_for_inference(with_norms)  # caches the compiled copy (compilation waits for the first call)
    alive = [weakref.ref(with_norms), weakref.ref(without_norms)]
    del model, with_norms, without_norms
    gc.collect()
    assert [ref() for ref in alive] == [None, None]


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(model, **kwargs):
        def run(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

        return run

    monkeypatch.setattr(inference.torch, "compile", broken_compile)
    model, images = _model(), _images()
    with pytest.warns(RuntimeWarning, match="could not compile.*no working C\\+\\+ compiler"):
        logits = _predict(model, images, compile_model=True)
    torch.testing.assert_close(logits, _predict(model, images))


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels():
    from glyphkit.inference import fit_temperature

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20_000, 10, generator=g) * 3
    labels = torch.multinomial((logits / 2.5).softmax(1), 1, generator=g).squeeze(1)  # drawn at temperature 2.5
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_vector_scaling_recovers_the_per_class_scales_and_biases_that_made_the_labels():
    from glyphkit.inference import fit_vector_scaling

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40_000, 5, generator=g) * 3
    scale = torch.tensor([0.3, 0.5, 0.7, 0.9, 1.1])
    bias = torch.tensor([0.0, 0.5, -0.5, 1.0, -1.0])  # only differences between classes matter to a softmax
    labels = torch.multinomial((logits * scale + bias).softmax(1), 1, generator=g).squeeze(1)
    fitted = fit_vector_scaling(logits, labels)
    torch.testing.assert_close(fitted.scale, scale, atol=0.05, rtol=0)
    torch.testing.assert_close(fitted.bias - fitted.bias[0], bias, atol=0.1, rtol=0)


def test_a_checkpoint_from_before_vector_scaling_keeps_its_temperature():
    from glyphkit.inference import Calibrator

    logits = torch.tensor([[2.0, 1.0, 0.0]])
    old = Calibrator.from_state({"temperature": 2.0})  # what older glyphkit versions stored
    torch.testing.assert_close(old(logits), logits / 2)
    assert old.describe() == "temperature 2.000"
    assert Calibrator.from_state({}).is_identity  # never calibrated
    new = Calibrator.from_state({"calibration": {"scale": [1.0, 2.0, 1.0], "bias": [0.0, 0.0, 3.0]}})
    torch.testing.assert_close(new(logits), torch.tensor([[2.0, 2.0, 3.0]]))


def test_expected_calibration_error_by_hand():
    import numpy as np

    from glyphkit.inference import expected_calibration_error

    # Two images at confidence 0.9 (one right) and two at 0.6 (both right), 10 bins:
    # bin 9: |0.5 - 0.9| = 0.4, bin 6: |1.0 - 0.6| = 0.4; weighted by 2/4 each -> 0.4.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(0.4)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0]), bins=10) == pytest.approx(0.0)


class _PixelReader(torch.nn.Module):
    """Class 0 reads the centre pixel (weight 1), class 1 its four neighbours (weight 0.4 each): a one-pixel shift
    of a glyph moves ink from one class's pixels to the other's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = 14
        around = x[:, 0, c, c + 1] + x[:, 0, c, c - 1] + x[:, 0, c + 1, c] + x[:, 0, c - 1, c]
        return torch.stack([x[:, 0, c, c], 0.4 * around], dim=1)


def test_tta_averages_the_glyph_and_its_four_one_pixel_shifts():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 14, 14] = 255  # ink on the centre pixel
    images[1, 14, 15] = 255  # ink one pixel right of it
    kwargs = dict(mean=0.0, std=1.0, input_size=28, device=torch.device("cpu"))
    plain = predict_logits(_PixelReader(), images, **kwargs)
    tta = predict_logits(_PixelReader(), images, tta=True, **kwargs)
    # By hand: the centre glyph is seen at the centre once and on a neighbour four times; the right-shifted one
    # on a neighbour once (unshifted), at the centre once (shifted left), elsewhere three times.
    torch.testing.assert_close(plain, torch.tensor([[1.0, 0.0], [0.0, 0.4]]))
    torch.testing.assert_close(tta, torch.tensor([[1 / 5, 4 * 0.4 / 5], [1 / 5, 0.4 / 5]]))
    assert plain.argmax(1).tolist() == [0, 1] and tta.argmax(1).tolist() == [1, 0]  # TTA changes both answers


class _CountingReader(_PixelReader):
    """_PixelReader that counts the glyphs it is shown."""

    seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return super().forward(x)


def test_plain_and_tta_answers_come_from_one_pass_of_five_views_per_glyph():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 14, 14] = 255
    images[1, 14, 15] = 255
    reader = _CountingReader()
    plain, tta = inference.predict_plain_and_tta(
        reader, images, mean=0.0, std=1.0, input_size=28, device=torch.device("cpu"), batch_size=1
    )
    # The same numbers as the by-hand test above, and the plain answer costs no sixth view.
    torch.testing.assert_close(plain, torch.tensor([[1.0, 0.0], [0.0, 0.4]]))
    torch.testing.assert_close(tta, torch.tensor([[1 / 5, 4 * 0.4 / 5], [1 / 5, 0.4 / 5]]))
    assert reader.seen == 2 * 5


def test_tta_only_for_the_glyphs_the_calibrated_network_is_unsure_of():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 14, 14] = 255  # plain logits [1, 0]: top-1 probability e / (e + 1) = 0.731
    images[1, 14, 14] = images[1, 14, 15] = 255  # plain logits [1, 0.4]: 0.646
    kwargs = dict(mean=0.0, std=1.0, input_size=28, device=torch.device("cpu"), batch_size=1)
    reader = _CountingReader()
    plain, tta = inference.predict_plain_and_tta(reader, images, tta_below=0.7, **kwargs)
    # By hand for the unsure glyph: the centre pixel is inked in the unshifted and the left-shifted views (2 of
    # 5), a neighbour of it in all five.
    torch.testing.assert_close(plain, torch.tensor([[1.0, 0.0], [1.0, 0.4]]))
    torch.testing.assert_close(tta, torch.tensor([[1.0, 0.0], [0.4, 0.4]]))
    assert reader.seen == 2 + 4  # the sure glyph is seen once, the unsure one five times

    # The threshold applies to calibrated probabilities: at temperature 2 the first glyph is unsure too (0.622).
    reader = _CountingReader()
    _, tta = inference.predict_plain_and_tta(reader, images, tta_below=0.7, calibrator=lambda x: x / 2, **kwargs)
    torch.testing.assert_close(tta[0], torch.tensor([1 / 5, 4 * 0.4 / 5]))
    assert reader.seen == 2 * 5
