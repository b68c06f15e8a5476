"""The networks: the original specification's `EnhancedGlyphCNN` and its building blocks, and `build_model`.

The spec's network runs three stages (32->64, 64->128, 128->256 channels), each a block at full resolution
followed by 2x downsampling, then global average pooling and a 256->512->classes head. `width` scales every
stage and `input_size` sets the (square) input; the spec's exact network is width 32 at 32x32, registered as
`enhanced`. Other names in MODELS are the same family at the sizes the benchmark measured (see docs/training.md#models).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from glyphkit.config import Config, ConfigError


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, plus the input (through a 1x1 conv + BN when the width changes), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class DepthwiseSeparableConv(nn.Module):
    """A 3x3 depthwise conv then a 1x1 pointwise conv, each with BN + ReLU: ~8x fewer multiply-adds than 3x3."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.depthwise(x)))
        return self.relu(self.bn2(self.pointwise(x)))


class EnhancedGlyphCNN(nn.Module):
    """The original specification's network.

    stem conv (1->w) -> [block (w->2w) + pool] -> [block (2w->4w) + pool] -> [block (4w->8w) + pool]
    -> global average pool -> dropout 0.3 -> FC 8w->512 -> ReLU -> dropout `dropout_rate` -> FC 512->classes.
    With w=32 that is the spec's 32 / 64 / 128 / 256 channels. `use_residual=False` swaps each residual block
    for two depthwise-separable convolutions. Adaptive pooling makes any input size >= 8 work.
    """

    def __init__(self, num_classes: int, dropout_rate: float = 0.4, use_residual: bool = True, width: int = 32):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        stages = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            block = (
                ResidualBlock(cin, cout)
                if use_residual
                else nn.Sequential(DepthwiseSeparableConv(cin, cout), DepthwiseSeparableConv(cout, cout))
            )
            stages.append(nn.Sequential(block, nn.MaxPool2d(2)))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(widths[-1], 512),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout_rate),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.stages(self.stem(x))))


class GlyphNet(nn.Module):
    """glyphkit's fast network: the spec's parts (residual blocks, BN, global pooling, dropout head), arranged
    so the expensive convolutions run at 14x14 and 7x7 instead of 32x32.

    stem conv (1->w) at 28x28 -> pool -> block (w->2w) at 14x14 -> pool -> block (2w->4w) + block (4w->4w)
    at 7x7 -> global average pool -> dropout -> FC 4w->classes. At w=32 it trains ~5x faster than the spec's
    network on a CPU (see docs/benchmarks.md).
    """

    def __init__(self, num_classes: int, dropout_rate: float = 0.4, use_residual: bool = True, width: int = 32):
        super().__init__()
        w = width
        block = ResidualBlock if use_residual else DepthwiseSeparableConv
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(
            nn.MaxPool2d(2), block(w, 2 * w), nn.MaxPool2d(2), block(2 * w, 4 * w), block(4 * w, 4 * w)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout_rate), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.stages(self.stem(x))))


@dataclass(frozen=True)
class ModelSpec:
    """A named architecture: its class, width and input size (used when the config leaves them at None)."""

    cls: type
    width: int
    input_size: int
    description: str


MODELS: dict[str, ModelSpec] = {
    "enhanced": ModelSpec(
        EnhancedGlyphCNN, 32, 32, "the original specification's network, exactly (width 32, 32x32 input)"
    ),
    "glyphnet": ModelSpec(GlyphNet, 32, 28, "glyphkit's fast default: convolutions at 14x14 and 7x7, 28x28 input"),
    "glyphnet-wide": ModelSpec(GlyphNet, 48, 28, "glyphnet at 1.5x the width, for the fast and best presets"),
}


def model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def model_dims(config: Config) -> tuple[int, int]:
    """(width, input_size) of the network a Config asks for: its own values, else the model's (None = default)."""
    spec = model_spec(config.model)
    return (config.width or spec.width, config.input_size or spec.input_size)


def build_model(config: Config) -> nn.Module:
    """The network a Config asks for (`model`, `width`, `use_residual`, `dropout_rate`, `num_classes`)."""
    if not config.num_classes:
        raise ValueError("config.num_classes is not set; load the data first (it sets the class count)")
    width, _ = model_dims(config)
    return model_spec(config.model).cls(config.num_classes, config.dropout_rate, config.use_residual, width)
