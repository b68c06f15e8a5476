"""Glyph arrays drawn as paper scans and lines of handwriting: how the benchmarks test reading a user's images.

A 28x28 glyph (EMNIST's upright uint8 array, ink bright) is drawn as dark ink on light paper, at a chosen size and
place, under uneven light, with noise, blur and JPEG compression: what a phone photo or a scanner gives.
`glyphkit predict` must read these about as well as `glyphkit evaluate` reads the arrays themselves
(benchmarks/paper_test.py). Renderings of EMNIST glyphs are derived from EMNIST: never commit them.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def degrade(ink: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Ink (float [H, W], 1 = full ink) as a scan: paper and ink tones, a light gradient, noise, blur, JPEG."""
    paper, pen = rng.uniform(0.80, 0.97), rng.uniform(0.05, 0.30)
    page = paper - (paper - pen) * ink
    h, w = page.shape
    ramp = np.linspace(rng.uniform(0.85, 1.0), 1.0, w)[None, :] * np.linspace(rng.uniform(0.9, 1.0), 1.0, h)[:, None]
    page = page * ramp + rng.normal(0, rng.uniform(0.01, 0.03), page.shape)
    image = Image.fromarray(np.clip(page * 255, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.2)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(50, 91)))
    return Image.open(io.BytesIO(buffer.getvalue()))


def scaled(glyph: np.ndarray, side: int) -> np.ndarray:
    """A uint8 glyph resized to side x side (bicubic), as ink in [0, 1]."""
    return np.asarray(Image.fromarray(glyph).resize((side, side), Image.BICUBIC), dtype=np.float32) / 255


def render_scan(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One glyph at 40-200 px with random margins of 10-150 px, as a scan."""
    side = int(rng.integers(40, 201))
    top, bottom, left, right = rng.integers(10, 151, size=4)
    ink = np.zeros((side + top + bottom, side + left + right), np.float32)
    ink[top : top + side, left : left + side] = scaled(glyph, side)
    return degrade(ink, rng)


def render_line(glyphs: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Glyphs side by side at 40-120 px, gaps of 0.2-0.8 glyph widths, a little vertical jitter, as a scan."""
    side = int(rng.integers(40, 121))
    gaps = (rng.uniform(0.2, 0.8, size=len(glyphs)) * side).astype(int)
    jitter = rng.integers(0, side // 8 + 1, size=len(glyphs))
    margin = int(rng.integers(10, 61))
    ink = np.zeros((side + side // 8 + 2 * margin, 2 * margin + len(glyphs) * side + int(gaps[:-1].sum())), np.float32)
    x = margin
    for glyph, gap, dy in zip(glyphs, gaps, jitter):
        ink[margin + dy : margin + dy + side, x : x + side] = np.maximum(
            ink[margin + dy : margin + dy + side, x : x + side], scaled(glyph, side)
        )
        x += side + gap
    return degrade(ink, rng)


def half_intensity_span(glyphs: np.ndarray) -> float:
    """Median long side, in pixels, of the box around each glyph's pixels of at least half its brightest: how
    large the strokes are drawn in the 28x28 frame (glyphkit.preprocess.GLYPH_SPAN aims at EMNIST's)."""
    ink = glyphs >= glyphs.max(axis=(1, 2), keepdims=True) / 2
    rows, cols = ink.any(2), ink.any(1)
    extent = lambda mask: mask.shape[1] - mask[:, ::-1].argmax(1) - mask.argmax(1)  # noqa: E731
    return float(np.median(np.maximum(extent(rows), extent(cols))))
