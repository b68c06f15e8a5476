"""Looking at a split before training (01_data_exploration): class counts, sample glyphs, look-alike groups.

Each function picks or counts glyphs and returns arrays for glyphkit.plots to draw; samples are drawn with a
seeded generator, so a notebook shows the same glyphs every time it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glyphkit.data import GlyphData
from glyphkit.interpret import AMBIGUOUS_GROUPS, groups_present

BLANK = np.zeros((28, 28), np.uint8)


def class_counts(data: GlyphData, part: str = "train") -> np.ndarray:
    """Images per class in one part (train, val or test)."""
    _, labels = data.part(part)
    return np.bincount(labels.numpy(), minlength=data.num_classes)


def montage(images: np.ndarray, side: int, gap: int = 1, gap_value: int = 40) -> np.ndarray:
    """Up to side*side images [K, 28, 28] tiled into one square image (missing tiles stay blank)."""
    h, w = images.shape[1:]
    out = np.full((side * h + (side - 1) * gap, side * w + (side - 1) * gap), gap_value, dtype=np.uint8)
    for i in range(side * side):
        r, c = divmod(i, side)
        tile = images[i] if i < len(images) else np.zeros((h, w), np.uint8)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return out


def _samples(images: np.ndarray, labels: np.ndarray, label: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Up to k random images of one class, [<=k, 28, 28]."""
    members = np.flatnonzero(labels == label)
    pick = rng.choice(members, size=min(k, len(members)), replace=False) if len(members) else []
    return images[pick] if len(pick) else np.zeros((0, 28, 28), np.uint8)


def class_samples(data: GlyphData, side: int = 3, part: str = "train", seed: int = 0) -> np.ndarray:
    """For every class, a side x side montage of random samples (upright): [C, H, W] for plots.plot_glyph_grid."""
    images, labels = (t.numpy() for t in data.part(part))
    rng = np.random.default_rng(seed)
    return np.stack([montage(_samples(images, labels, c, side * side, rng), side) for c in range(data.num_classes)])


def ambiguous_examples(
    data: GlyphData, groups: Sequence[str] | None = None, per_char: int = 2, part: str = "train", seed: int = 0
) -> tuple[np.ndarray, list[str], int]:
    """(images, titles, ncols): one row per look-alike group present in the split, `per_char` samples of each
    member, blank tiles at the end of shorter rows. For plots.plot_glyph_grid(images, titles, ncols=ncols)."""
    present = groups_present(data.classes, AMBIGUOUS_GROUPS if groups is None else groups)
    if not present:
        return np.zeros((0, 28, 28), np.uint8), [], 1
    images, labels = (t.numpy() for t in data.part(part))
    rng = np.random.default_rng(seed)
    ncols = max(len(g) for g in present) * per_char
    tiles, titles = [], []
    for group in present:
        row, row_titles = [], []
        for ch in group:
            picked = _samples(images, labels, data.classes.index(ch), per_char, rng)
            row += list(picked) + [BLANK] * (per_char - len(picked))
            row_titles += [ch] * per_char
        tiles += row + [BLANK] * (ncols - len(row))
        titles += row_titles + [""] * (ncols - len(row_titles))
    return np.stack(tiles), titles, ncols
