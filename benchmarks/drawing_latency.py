"""Latency of the drawing pad (06_predict): pen-up to the top-5 answer, on this machine's CPU.

The strokes of each glyph are traced from a real test glyph's skeleton (proxy47 handwriting, scaled to the pad),
then the pad's pen-up handler runs as the browser's event would trigger it: the strokes drawn with PIL, the EMNIST
conversion, the model, the top-5 and the views updated. Median and 90th percentile over the runs.

    python benchmarks/drawing_latency.py RUN_DIR --data-dir ../shared/emnist [--runs 200]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from skimage.morphology import skeletonize

from glyphkit.config import Config
from glyphkit.data import load_config_split
from glyphkit.inference import load_predictor
from glyphkit.widgets import DrawingPad


def strokes_of(glyph: np.ndarray, size: int) -> list[list[tuple[float, float]]]:
    """The glyph's skeleton points as one-point-apart strokes on a size x size pad (what a pen would trace)."""
    ys, xs = np.nonzero(skeletonize(glyph > 100))
    scale = size / 28
    return [[(float(x * scale), float(y * scale)), (float(x * scale) + 1, float(y * scale))] for x, y in zip(xs, ys)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="proxy47")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    predictor = load_predictor(args.run_dir)
    data = load_config_split(Config(split=args.split, data_dir=args.data_dir, limit_test=args.runs))
    pad = DrawingPad(predictor)
    times = []
    for glyph in data.test_images.numpy():
        pad.clear()
        pad.strokes = strokes_of(glyph, pad.size)
        pad.drawing = True
        start = time.perf_counter()
        pad.pen_up(0, 0)
        times.append(1000 * (time.perf_counter() - start))
    times = times[5:]  # the first calls warm up allocators and oneDNN
    median, p90 = statistics.median(times), np.percentile(times, 90)
    print(f"pen-up to top-5 on {platform.processor() or 'this CPU'} ({torch.get_num_threads()} threads): median "
          f"{median:.1f} ms, 90th percentile {p90:.1f} ms over {len(times)} glyphs")


if __name__ == "__main__":
    main()
