"""How much should the piece model count? Its weight, the width from which ink is cut, and the cost per character.

Lines of the run's **validation** glyphs (never the test glyphs the paper test reads), gapped and touching as the
paper test draws them, are read with `glyphkit predict --segment` under each setting of (PIECE_WEIGHT, PIECE_WIDE,
PIECE_CUT_COST) in glyphkit.pieces, and once with the classifier alone. The run needs a piece model
(`glyphkit train-pieces RUN`).

    python benchmarks/experiments/piece_tuning.py RUN --data-dir ../shared/emnist [--lines 120]
        [--settings 4,0.7,0 2,0.7,0 ...] [--out runs/piece_tuning] [--results PATH]

Writes benchmarks/results/piece_tuning-RUN.json (`--results` to choose). The renders go under --out (git-ignored
`runs/` by default): they are derived from EMNIST and are never committed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

from glyphkit import pieces
from glyphkit.data import load_config_split
from glyphkit.predict import predict
from glyphkit.results import command_line, default_result_path, write_result
from glyphkit.rundir import BEST, checkpoint_config, load_checkpoint
from glyphkit.scans import render_line

KINDS = {"gapped": (0.02, 0.15), "touching": (-0.08, 0.0)}  # the paper test's lines (benchmarks/paper_test.py)
SETTINGS = ("4,0.7,0", "2,0.7,0", "1,0.7,0", "4,1.2,0", "4,0.7,0.75", "4,0.4,0")  # weight, width, cost


def cer(read: list[str], truth: list[str]) -> float:
    return sum(Levenshtein.distance(r, t) for r, t in zip(read, truth)) / max(1, sum(map(len, truth)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--lines", type=int, default=120, help="lines of each kind (default: 120)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help="WEIGHT,WIDE,COST each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/piece_tuning", help="where the rendered lines go")
    parser.add_argument("--results", default=None, help="the record's path (default: piece_tuning-RUN.json)")
    args = parser.parse_args()
    run = Path(args.run_dir)
    if not (run / pieces.PIECE_MODEL).exists():
        raise SystemExit(f"error: {run} has no piece model; train one with: glyphkit train-pieces {run}")
    config = checkpoint_config(load_checkpoint(run / BEST))
    data = load_config_split(config.replace(data_dir=args.data_dir))
    images, truth = data.val_images.numpy(), [config.classes[c] for c in data.val_labels.tolist()]
    rng = np.random.default_rng(args.seed)
    lines = {}
    for kind, gap in KINDS.items():
        folder = Path(args.out) / kind
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        lines[kind] = [rng.choice(len(images), size=int(rng.integers(4, 10)), replace=False) for _ in range(args.lines)]
        for n, ids in enumerate(lines[kind]):
            render_line(images[ids], rng, gap=gap).save(folder / f"{n:04d}.png")
    shipped = (pieces.PIECE_WEIGHT, pieces.PIECE_WIDE, pieces.PIECE_CUT_COST)
    rows = []
    for setting in [None, *args.settings]:
        if setting is not None:
            pieces.PIECE_WEIGHT, pieces.PIECE_WIDE, pieces.PIECE_CUT_COST = map(float, setting.split(","))
        row = {"setting": "classifier alone" if setting is None else setting.replace(",", ", ")}
        row["shipped"] = "yes" if setting is not None and tuple(map(float, setting.split(","))) == shipped else ""
        for kind in KINDS:
            results = sorted(
                predict(run, [Path(args.out) / kind], segment=True, progress=False, piece_model=setting is not None),
                key=lambda r: r.file,
            )
            text = ["".join(truth[i] for i in ids) for ids in lines[kind]]
            row[f"{kind}_right"] = float(np.mean([len(r.glyphs) == len(i) for r, i in zip(results, lines[kind])]))
            row[f"{kind}_cer"] = cer([r.text.replace("\n", "") for r in results], text)
        print(row, flush=True)
        rows.append(row)
    path = args.results or default_result_path("piece_tuning", run.name)
    write_result(
        path,
        what="Lines of validation glyphs, gapped and touching, read with `predict --segment` under settings of the "
        "piece model's weight, the width (letter heights) from which ink is cut, and the cost per character, and "
        "with the classifier alone: lines whose character count is right, and the character error rate.",
        command=command_line(),
        columns=[
            {"key": "setting", "header": "weight, width, cost"},
            {"key": "shipped", "header": "glyphkit's"},
            {"key": "gapped_right", "header": "gapped: count right", "format": "percent1"},
            {"key": "gapped_cer", "header": "gapped: CER", "format": "percent1"},
            {"key": "touching_right", "header": "touching: count right", "format": "percent1"},
            {"key": "touching_cer", "header": "touching: CER", "format": "percent1"},
        ],
        rows=rows,
        data=f"{config.split} validation glyphs, {args.lines} lines of each kind, 4-9 glyphs each, glyphs 40-120 px",
        summary={"lines_per_kind": args.lines, "run": str(run)},
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
