"""The paper test: real test glyphs rendered as scans and lines of handwriting, read back with `glyphkit predict`.

Each 28x28 test glyph (real EMNIST handwriting) is drawn as dark ink on light paper at 40-200 px, at a random
place with random margins, under uneven light, with noise, blur and JPEG compression. `glyphkit predict` must
then read them about as well as `glyphkit evaluate` reads the same glyphs as 28x28 arrays. Lines of 4-9 glyphs
(gaps of 0.2-0.8 glyph widths) test `--segment`: how often the number of characters found is right, and the
accuracy on the characters of those lines against the same glyphs at 28x28.

    python benchmarks/paper_test.py RUN_DIR --data-dir ../shared/emnist [--split proxy47] [--out runs/paper_test]
        [--results PATH] [--quick]

The renderings are written under --out (git-ignored `runs/` by default): they are derived from EMNIST and must
never be committed. Results: OUT/paper_test.json, a Markdown summary on the terminal, and the results record
benchmarks/results/paper_test-RUN.json (RUN: the run folder's name; `--results` to choose; `--quick`: 20 scans and
3 lines, a smoke test that writes a record only where --results is given).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from glyphkit.config import Config
from glyphkit.data import load_config_split
from glyphkit.inference import Predictor
from glyphkit.predict import predict
from glyphkit.results import command_line, result_path, write_result
from glyphkit.rundir import BEST, checkpoint_config, load_checkpoint
from glyphkit.scans import half_intensity_span, render_line, render_scan


def render_all(
    images: np.ndarray, out: Path, count: int, lines: int, rng: np.random.Generator
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


def score_lines(results: list, line_glyphs: list[np.ndarray], truth: list[str], as_28: dict) -> dict:
    """Lines whose character count is right; on their glyphs, accuracy as read from the line and at 28x28."""
    right = [
        (r, ids)
        for r, ids in zip(sorted(results, key=lambda r: r.file), line_glyphs)
        if r.error is None and len(r.glyphs) == len(ids)
    ]
    chars = sum(len(ids) for _, ids in right)
    read = sum(g.prediction == truth[i] for r, ids in right for g, i in zip(r.glyphs, ids))
    reference = sum(as_28[i] == truth[i] for _, ids in right for i in ids)
    return {
        "lines_counted_right": len(right) / len(line_glyphs),
        "line_chars": chars,
        "line_char_accuracy": read / max(chars, 1),
        "line_char_accuracy_28x28": reference / max(chars, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the trained run folder to read with")
    parser.add_argument("--data-dir", required=True, help="folder with the split's EMNIST files")
    parser.add_argument("--split", default="proxy47", help="whose test glyphs are rendered (default: proxy47)")
    parser.add_argument("--count", type=int, default=2000, help="single glyphs rendered as scans (default: 2000)")
    parser.add_argument("--lines", type=int, default=120, help="lines of 4-9 glyphs (default: 120)")
    parser.add_argument("--out", default="runs/paper_test", help="where the renderings and paper_test.json go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the renderings (default: 0)")
    parser.add_argument(
        "--results",
        metavar="PATH",
        help="the results record (default: "
        "benchmarks/results/paper_test-RUN.json, RUN the run folder's name; with --quick: none)",
    )
    parser.add_argument("--quick", action="store_true", help="20 scans and 3 lines: a smoke test, not a measurement")
    args = parser.parse_args()
    count, lines = (20, 3) if args.quick else (args.count, args.lines)
    out, rng, best = Path(args.out), np.random.default_rng(args.seed), Path(args.run_dir) / BEST
    state = load_checkpoint(best)
    data = load_config_split(Config(split=args.split, data_dir=args.data_dir, seed=checkpoint_config(state).seed))
    images, classes = data.test_images.numpy(), checkpoint_config(state).classes
    truth = [classes[label] for label in data.test_labels.tolist()]
    singles, line_glyphs = render_all(images, out, count, lines, rng)
    # The reference: the same glyphs as 28x28 arrays, read the way `glyphkit evaluate` reads them.
    every = np.concatenate([singles, *line_glyphs])
    probabilities = Predictor.from_checkpoint(state, best).probabilities(torch.from_numpy(images[every]))
    as_28 = {i: classes[c] for i, c in zip(every.tolist(), probabilities.argmax(1).tolist())}

    start = time.perf_counter()
    scans = sorted(predict(args.run_dir, [out / "scans"], progress=False), key=lambda r: r.file)
    result = {
        "run": str(args.run_dir),
        "split": args.split,
        "scans": count,
        "lines": lines,
        "scan_read_s": time.perf_counter() - start,
        "scan_errors": sum(r.error is not None for r in scans),
        "scan_accuracy": float(
            np.mean([r.error is None and r.glyphs[0].prediction == truth[i] for r, i in zip(scans, singles)])
        ),
        "scan_accuracy_28x28": float(np.mean([as_28[i] == truth[i] for i in singles])),
        "span_28x28": half_intensity_span(images[singles]),
        "span_scans": half_intensity_span(np.stack([r.glyphs[0].glyph for r in scans if r.error is None])),
        **score_lines(predict(args.run_dir, [out / "lines"], segment=True, progress=False), line_glyphs, truth, as_28),
    }
    (out / "paper_test.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = table_rows(result)
    pct = lambda value: f"{100 * value:.2f}%"  # noqa: E731
    print(
        "| test glyphs | read as | accuracy |\n|---|---|---|\n"
        + "\n".join(f"| {r['glyphs']} | {r['read_as']} | {pct(r['accuracy'])} |" for r in rows)
        + "\n\n"
        f"strokes span (median, half intensity): {result['span_28x28']:g} of 28 pixels in the arrays, "
        f"{result['span_scans']:g} in the glyphs read from the scans\n"
        f"lines with the right number of characters: {pct(result['lines_counted_right'])} of {lines}; "
        f"{count} scans read in {result['scan_read_s']:.1f} s"
    )
    path = result_path(args.results, args.quick, "paper_test", Path(args.run_dir).name)
    if path is not None:
        write_result(
            path,
            what="Real test glyphs rendered as scans and lines of handwriting, read back with "
            "`glyphkit predict`, against the same glyphs read as 28x28 arrays.",
            command=command_line(),
            columns=COLUMNS,
            rows=rows,
            data=f"{args.split} test, {count:,} glyphs as scans and {lines} lines "
            f"({result['line_chars']:,} glyphs in lines segmented right)",
            summary={
                k: result[k]
                for k in (
                    "run",
                    "scans",
                    "lines",
                    "scan_errors",
                    "lines_counted_right",
                    "line_chars",
                    "span_28x28",
                    "span_scans",
                    "scan_read_s",
                )
            },
            notes="a --quick smoke run: not a measurement" if args.quick else None,
        )
        print(f"results record: {path}")


COLUMNS = [
    {"key": "glyphs", "header": "test glyphs"},
    {"key": "read_as", "header": "read as"},
    {"key": "count", "header": "glyphs", "format": "int"},
    {"key": "accuracy", "header": "accuracy", "format": "percent"},
]


def table_rows(result: dict) -> list[dict]:
    """The paper test's table: each way of reading beside the same glyphs read as 28x28 arrays."""
    scans, chars = result["scans"], result["line_chars"]
    return [
        {
            "glyphs": f"{scans} single glyphs",
            "read_as": "28x28 arrays (as `glyphkit evaluate` reads them)",
            "count": scans,
            "accuracy": result["scan_accuracy_28x28"],
        },
        {
            "glyphs": "the same glyphs",
            "read_as": "rendered scans, `glyphkit predict`",
            "count": scans,
            "accuracy": result["scan_accuracy"],
        },
        {
            "glyphs": f"the {chars} glyphs of the lines segmented right",
            "read_as": "28x28 arrays",
            "count": chars,
            "accuracy": result["line_char_accuracy_28x28"],
        },
        {
            "glyphs": "the same glyphs",
            "read_as": "rendered lines, `glyphkit predict --segment`",
            "count": chars,
            "accuracy": result["line_char_accuracy"],
        },
    ]


if __name__ == "__main__":
    main()
