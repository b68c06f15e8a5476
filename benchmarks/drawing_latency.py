"""Latency of the drawing pad (06_predict): pen-up to the top-5 answer, on this machine's CPU.

The strokes of each glyph are traced from a real test glyph's skeleton (proxy47 handwriting, scaled to the pad),
then the pad's pen-up handler runs as the browser's event would trigger it: the strokes drawn with PIL, the EMNIST
conversion, the model, the top-5 and the views updated. Median and 90th percentile over the runs, and how many of
the traced glyphs the pad read right (its top answer is the glyph's class).

    python benchmarks/drawing_latency.py RUN_DIR --data-dir ../shared/emnist [--runs 200] [--results PATH] [--quick]

Writes the results record benchmarks/results/drawing_latency-RUN.json (RUN: the run folder's name; `--results` to
choose; `--quick`: 10 glyphs, a smoke test that writes a record only where --results is given).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from skimage.morphology import skeletonize

from glyphkit.config import Config
from glyphkit.data import load_config_split
from glyphkit.inference import load_predictor
from glyphkit.results import command_line, machine_info, result_path, write_result
from glyphkit.widgets import DrawingPad


def strokes_of(glyph: np.ndarray, size: int) -> list[list[tuple[float, float]]]:
    """The glyph's skeleton points as one-point-apart strokes on a size x size pad (what a pen would trace)."""
    ys, xs = np.nonzero(skeletonize(glyph > 100))
    scale = size / 28
    return [[(float(x * scale), float(y * scale)), (float(x * scale) + 1, float(y * scale))] for x, y in zip(xs, ys)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the trained run folder the pad reads with")
    parser.add_argument("--data-dir", required=True, help="folder with the split's EMNIST files")
    parser.add_argument("--split", default="proxy47", help="whose test glyphs are traced (default: proxy47)")
    parser.add_argument("--runs", type=int, default=200, help="glyphs drawn; the first 5 warm up (default: 200)")
    parser.add_argument(
        "--results",
        metavar="PATH",
        help="the results record (default: "
        "benchmarks/results/drawing_latency-RUN.json, RUN the run folder's name; with --quick: none)",
    )
    parser.add_argument("--quick", action="store_true", help="10 glyphs: a smoke test, not a measurement")
    args = parser.parse_args()
    runs = 10 if args.quick else args.runs
    predictor = load_predictor(args.run_dir)
    data = load_config_split(Config(split=args.split, data_dir=args.data_dir, limit_test=runs))
    pad = DrawingPad(predictor)
    times, right = [], []
    for glyph, label in zip(data.test_images.numpy(), data.test_labels.tolist()):
        pad.clear()
        pad.strokes = strokes_of(glyph, pad.size)
        pad.drawing = True
        start = time.perf_counter()
        pad.pen_up(0, 0)
        times.append(1000 * (time.perf_counter() - start))
        right.append(pad.answer[0][0] == data.classes[label])
    times, right = times[5:], right[5:]  # the first calls warm up allocators and oneDNN
    row = {
        "run": Path(args.run_dir).name,
        "model": predictor.config.model,
        "threads": torch.get_num_threads(),
        "glyphs": len(times),
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "p90_ms": float(np.percentile(times, 90)),
        "accuracy": float(np.mean(right)),
    }
    print(
        f"pen-up to top-5 on {machine_info('cpu')['cpu']} ({row['threads']} threads): median "
        f"{row['median_ms']:.1f} ms, 90th percentile {row['p90_ms']:.1f} ms over {len(times)} glyphs; "
        f"read right {100 * row['accuracy']:.1f}%"
    )
    path = result_path(args.results, args.quick, "drawing_latency", Path(args.run_dir).name)
    if path is not None:
        write_result(
            path,
            what="The drawing pad's latency from pen-up to the top-5 answer (strokes traced from real "
            "test glyphs), on the CPU, and how many of the traced glyphs it read right.",
            command=command_line(),
            columns=COLUMNS,
            rows=[row],
            machine=machine_info("cpu"),
            data=f"{args.split} test, {len(times):,} glyphs (after 5 warm-up)",
            notes="a --quick smoke run: not a measurement" if args.quick else None,
        )
        print(f"results record: {path}")


COLUMNS = [
    {"key": "run", "header": "run"},
    {"key": "model", "header": "model"},
    {"key": "threads", "header": "threads", "format": "int"},
    {"key": "glyphs", "header": "glyphs", "format": "int"},
    {"key": "median_ms", "header": "median", "format": "ms"},
    {"key": "mean_ms", "header": "mean", "format": "ms"},
    {"key": "p90_ms", "header": "90th percentile", "format": "ms"},
    {"key": "accuracy", "header": "read right (top 1)", "format": "percent1"},
]


if __name__ == "__main__":
    main()
