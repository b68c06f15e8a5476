"""How large should `glyphkit.preprocess` draw a glyph's strokes in the 28x28 frame? A paired comparison.

Test glyphs are rendered as scans, as the paper test renders them (glyphkit.scans.render_scan: 40-200 px, random
margins, uneven light, noise, blur, JPEG). Each scan is read into ink and strokes once, then framed at each span
(the long side of the strokes, in pixels of 28; glyphkit.preprocess.GLYPH_SPAN is the one `predict` uses) and read
by each run. Every span sees the same scans, so the differences between spans are not render noise. Also printed:
how large the strokes are in the arrays themselves and at each span (median long side at half intensity).

    python benchmarks/experiments/glyph_span.py RUN [RUN ...] --data-dir ../shared/emnist [--spans 22,24] [--count 6000]

Nothing is written: the renderings are held in memory (they are derived from EMNIST and never committed).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm.auto import tqdm

from glyphkit.config import Config
from glyphkit.data import load_config_split
from glyphkit.inference import load_predictor
from glyphkit.preprocess import emnist_glyph, ink_components, ink_map
from glyphkit.scans import half_intensity_span, render_scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="proxy47")
    parser.add_argument("--spans", default="22,24", help="comma-separated spans to compare (pixels of 28)")
    parser.add_argument("--count", type=int, default=6000, help="test glyphs rendered as scans")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    spans = [float(s) for s in args.spans.split(",")]
    data = load_config_split(Config(split=args.split, data_dir=args.data_dir))
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(data.test_labels), size=args.count, replace=False)
    images, labels = data.test_images.numpy()[chosen], data.test_labels.numpy()[chosen]
    framed = {span: [] for span in spans}
    for glyph in tqdm(images, desc="render and read scans"):
        ink = ink_map(render_scan(glyph, rng))
        components, regions = ink_components(ink)
        for span in spans:
            framed[span].append(emnist_glyph(ink, regions, components, span=span).image)
    framed = {span: np.stack(glyphs) for span, glyphs in framed.items()}
    print(
        f"{args.count} {args.split} test glyphs; strokes span (median, half intensity) "
        f"{half_intensity_span(images):g} of 28 pixels in the arrays, "
        + ", ".join(f"{half_intensity_span(g):g} at span {s:g}" for s, g in framed.items())
    )
    print("\n| run | 28x28 arrays | " + " | ".join(f"scans, span {s:g}" for s in spans) + " |")
    print("|---|---|" + "---|" * len(spans))
    for run in args.runs:
        predictor = load_predictor(run)

        def accuracy(glyphs, predictor=predictor) -> float:
            answers = predictor.probabilities(torch.from_numpy(glyphs)).argmax(1).numpy()
            return 100 * float((answers == labels).mean())

        print(
            f"| {run} | {accuracy(images):.2f}% | " + " | ".join(f"{accuracy(g):.2f}%" for g in framed.values()) + " |"
        )


if __name__ == "__main__":
    main()
