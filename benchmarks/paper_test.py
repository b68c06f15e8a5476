"""The paper test: real test glyphs rendered as scans and lines of handwriting, read back with `glyphkit predict`.

Each 28x28 test glyph (real EMNIST handwriting) is drawn as dark ink on light paper at 40-200 px, at a random
place with random margins, under uneven light, with noise, blur and JPEG compression. `glyphkit predict` must
then read them about as well as `glyphkit evaluate` reads the same glyphs as 28x28 arrays. Lines of 4-9 glyphs
(gaps of 0.2-0.8 glyph widths) test `--segment`: how often the number of characters found is right, and the
accuracy on the characters of those lines against the same glyphs at 28x28.

    python benchmarks/paper_test.py RUN_DIR --data-dir ../shared/emnist [--split proxy47] [--out runs/paper_test]

The renderings are written under --out (git-ignored `runs/` by default): they are derived from EMNIST and must
never be committed. Results: OUT/paper_test.json and a Markdown summary on the terminal.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from glyphkit.config import Config
from glyphkit.data import load_config_split
from glyphkit.inference import Predictor
from glyphkit.predict import predict
from glyphkit.rundir import BEST, checkpoint_config, load_checkpoint


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
    return np.asarray(Image.fromarray(glyph).resize((side, side), Image.BICUBIC), dtype=np.float32) / 255


def render_scan(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    side = int(rng.integers(40, 201))
    top, bottom, left, right = rng.integers(10, 151, size=4)
    ink = np.zeros((side + top + bottom, side + left + right), np.float32)
    ink[top:top + side, left:left + side] = scaled(glyph, side)
    return degrade(ink, rng)


def render_line(glyphs: np.ndarray, rng: np.random.Generator) -> Image.Image:
    side = int(rng.integers(40, 121))
    gaps = (rng.uniform(0.2, 0.8, size=len(glyphs)) * side).astype(int)
    jitter = rng.integers(0, side // 8 + 1, size=len(glyphs))
    margin = int(rng.integers(10, 61))
    ink = np.zeros((side + side // 8 + 2 * margin, 2 * margin + len(glyphs) * side + int(gaps[:-1].sum())), np.float32)
    x = margin
    for glyph, gap, dy in zip(glyphs, gaps, jitter):
        ink[margin + dy:margin + dy + side, x:x + side] = np.maximum(ink[margin + dy:margin + dy + side, x:x + side],
                                                                     scaled(glyph, side))
        x += side + gap
    return degrade(ink, rng)


def render_all(images: np.ndarray, out: Path, count: int, lines: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Write `count` scans of single glyphs and `lines` lines; return which test glyphs each one shows."""
    singles = rng.choice(len(images), size=count, replace=False)
    line_glyphs = [rng.choice(len(images), size=int(rng.integers(4, 10)), replace=False) for _ in range(lines)]
    (out / "scans").mkdir(parents=True, exist_ok=True)
    (out / "lines").mkdir(parents=True, exist_ok=True)
    for n, i in enumerate(singles):
        render_scan(images[i], rng).save(out / "scans" / f"{n:05d}.jpg", quality=95)
    for n, ids in enumerate(line_glyphs):
        render_line(images[ids], rng).save(out / "lines" / f"{n:04d}.jpg", quality=95)
    return singles, line_glyphs


def half_intensity_span(glyphs: np.ndarray) -> float:
    """Median long side, in pixels, of the box around each glyph's pixels of at least half its brightest: how
    large the strokes are drawn in the 28x28 frame (glyphkit.preprocess.GLYPH_SPAN aims at EMNIST's)."""
    ink = glyphs >= glyphs.max(axis=(1, 2), keepdims=True) / 2
    rows, cols = ink.any(2), ink.any(1)
    extent = lambda mask: mask.shape[1] - mask[:, ::-1].argmax(1) - mask.argmax(1)  # noqa: E731
    return float(np.median(np.maximum(extent(rows), extent(cols))))


def score_lines(results: list, line_glyphs: list[np.ndarray], truth: list[str], as_28: dict) -> dict:
    """Lines whose character count is right; on their glyphs, accuracy as read from the line and at 28x28."""
    right = [(r, ids) for r, ids in zip(sorted(results, key=lambda r: r.file), line_glyphs)
             if r.error is None and len(r.glyphs) == len(ids)]
    chars = sum(len(ids) for _, ids in right)
    read = sum(g.prediction == truth[i] for r, ids in right for g, i in zip(r.glyphs, ids))
    reference = sum(as_28[i] == truth[i] for _, ids in right for i in ids)
    return {"lines_counted_right": len(right) / len(line_glyphs), "line_chars": chars,
            "line_char_accuracy": read / max(chars, 1), "line_char_accuracy_28x28": reference / max(chars, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="proxy47")
    parser.add_argument("--count", type=int, default=2000, help="single glyphs rendered as scans")
    parser.add_argument("--lines", type=int, default=120, help="lines of 4-9 glyphs")
    parser.add_argument("--out", default="runs/paper_test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out, rng, best = Path(args.out), np.random.default_rng(args.seed), Path(args.run_dir) / BEST
    state = load_checkpoint(best)
    data = load_config_split(Config(split=args.split, data_dir=args.data_dir, seed=checkpoint_config(state).seed))
    images, classes = data.test_images.numpy(), checkpoint_config(state).classes
    truth = [classes[label] for label in data.test_labels.tolist()]
    singles, line_glyphs = render_all(images, out, args.count, args.lines, rng)
    # The reference: the same glyphs as 28x28 arrays, read the way `glyphkit evaluate` reads them.
    every = np.concatenate([singles, *line_glyphs])
    probabilities = Predictor.from_checkpoint(state, best).probabilities(torch.from_numpy(images[every]))
    as_28 = {i: classes[c] for i, c in zip(every.tolist(), probabilities.argmax(1).tolist())}

    start = time.perf_counter()
    scans = sorted(predict(args.run_dir, [out / "scans"], progress=False), key=lambda r: r.file)
    result = {"run": str(args.run_dir), "split": args.split, "scans": args.count, "lines": args.lines,
              "scan_read_s": time.perf_counter() - start, "scan_errors": sum(r.error is not None for r in scans),
              "scan_accuracy": float(np.mean([r.error is None and r.glyphs[0].prediction == truth[i]
                                              for r, i in zip(scans, singles)])),
              "scan_accuracy_28x28": float(np.mean([as_28[i] == truth[i] for i in singles])),
              "span_28x28": half_intensity_span(images[singles]),
              "span_scans": half_intensity_span(np.stack([r.glyphs[0].glyph for r in scans if r.error is None])),
              **score_lines(predict(args.run_dir, [out / "lines"], segment=True, progress=False), line_glyphs,
                            truth, as_28)}
    (out / "paper_test.json").write_text(json.dumps(result, indent=2) + "\n")
    pct = lambda key: f"{100 * result[key]:.2f}%"  # noqa: E731
    print(f"| {args.split} test glyphs | read as | accuracy |\n|---|---|---|\n"
          f"| {args.count} single glyphs | 28x28 arrays (as `glyphkit evaluate` reads them) | {pct('scan_accuracy_28x28')} |\n"
          f"| the same glyphs | rendered scans, `glyphkit predict` | {pct('scan_accuracy')} |\n"
          f"| the {result['line_chars']} glyphs of the lines segmented right | 28x28 arrays | "
          f"{pct('line_char_accuracy_28x28')} |\n"
          f"| the same glyphs | rendered lines, `glyphkit predict --segment` | {pct('line_char_accuracy')} |\n\n"
          f"strokes span (median, half intensity): {result['span_28x28']:g} of 28 pixels in the arrays, "
          f"{result['span_scans']:g} in the glyphs read from the scans\n"
          f"lines with the right number of characters: {pct('lines_counted_right')} of {args.lines}; "
          f"{args.count} scans read in {result['scan_read_s']:.1f} s")


if __name__ == "__main__":
    main()
