"""Model shapes for both block types, both official class counts and every registered architecture."""

import pytest
import torch

from glyphkit.config import Config
from glyphkit.models import MODELS, DepthwiseSeparableConv, EnhancedGlyphCNN, ResidualBlock, build_model


@pytest.mark.parametrize("num_classes", [47, 62])
@pytest.mark.parametrize("use_residual", [True, False])
def test_enhanced_cnn_output_shape(num_classes, use_residual):
    model = EnhancedGlyphCNN(num_classes, use_residual=use_residual).eval()
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, num_classes)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("num_classes", [47, 62])
def test_every_model_builds_and_runs(name, num_classes):
    spec = MODELS[name]
    config = Config(model=name, num_classes=num_classes, width=spec.width, input_size=spec.input_size)
    model = build_model(config).eval()
    assert model(torch.randn(2, 1, spec.input_size, spec.input_size)).shape == (2, num_classes)


def test_enhanced_matches_the_original_specification():
    model = EnhancedGlyphCNN(47)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [c.out_channels for c in convs] == [32, 64, 64, 128, 128, 256, 256]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(256, 512), (512, 47)]
    dropouts = sorted(m.p for m in model.modules() if isinstance(m, torch.nn.Dropout))
    assert dropouts == [0.3, 0.4]
    assert MODELS["enhanced"].width == 32 and MODELS["enhanced"].input_size == 32


def test_residual_block_adds_its_input():
    block = ResidualBlock(8, 8).eval()
    for m in (block.conv2,):
        torch.nn.init.zeros_(m.weight)  # the residual branch then contributes only BN's bias (0)
    x = torch.rand(1, 8, 5, 5)
    assert torch.allclose(block(x), torch.relu(x))


def test_depthwise_separable_is_cheaper_than_a_full_conv():
    ds = sum(p.numel() for p in DepthwiseSeparableConv(64, 128).parameters())
    full = 64 * 128 * 9
    assert ds < full / 5


def test_adaptive_pooling_accepts_other_input_sizes():
    model = EnhancedGlyphCNN(10).eval()
    assert model(torch.randn(1, 1, 48, 48)).shape == (1, 10)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model(Config(model="nope", num_classes=10))


def test_width_and_input_size_are_the_models_own_unless_set(tiny_data):
    from glyphkit.training import resolve_config

    wide = resolve_config(Config(model="glyphnet-wide"), tiny_data)
    assert (wide.width, wide.input_size) == (48, 28)  # 1.5x glyphnet's 32 channels, native 28x28 glyphs
    spec = resolve_config(Config(model="enhanced"), tiny_data)
    assert (spec.width, spec.input_size) == (32, 32)  # the original specification's network
    mine = resolve_config(Config(model="enhanced", width=8, input_size=28), tiny_data)
    assert (mine.width, mine.input_size) == (8, 28)
    assert build_model(mine).stem[0].out_channels == 8
