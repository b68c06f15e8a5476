"""How much should the piece model count? Its weight, the width from which ink is cut, and the cost per character.

Lines of the run's **validation** glyphs (never the test glyphs the paper test reads), gapped and touching as the
paper test draws them, are read with `glyphkit predict --segment` under each setting of (PIECE_WEIGHT, PIECE_WIDE,
PIECE_CUT_COST) in glyphkit.pieces, and once with the classifier alone. The run needs a piece model
(`glyphkit train-pieces RUN`).

    python benchmarks/experiments/piece_tuning.py RUN --data-dir ../shared/emnist [--split proxy47] [--lines 120]
        [--settings 4,0.7,0 2,0.7,0 ...] [--out runs/piece_tuning] [--results PATH]

The lines are drawn and read by the paper test's own code (benchmarks/paper_test.py: draw_lines, read_lines), from
the validation glyphs instead of the test glyphs.

Writes benchmarks/results/piece_tuning-RUN.json (`--results` to choose). The renders go under --out (git-ignored
`runs/` by default): they are derived from EMNIST and are never committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the paper test draws and reads the lines
import paper_test  # noqa: E402

from glyphkit import pieces  # noqa: E402
from glyphkit.results import command_line, default_result_path, write_result  # noqa: E402

SETTINGS = ("4,0.7,0", "2,0.7,0", "1,0.7,0", "4,1.2,0", "4,0.7,0.75", "4,0.4,0")  # weight, width, cost


def main() -> None:
    parser = paper_test.line_experiment_parser(__doc__.splitlines()[0], "piece_tuning")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help="WEIGHT,WIDE,COST each")
    args = parser.parse_args()
    run = Path(args.run_dir)
    bench, lines = paper_test.validation_lines(args, needs=(pieces.PIECE_MODEL,))
    shipped = (pieces.PIECE_WEIGHT, pieces.PIECE_WIDE, pieces.PIECE_CUT_COST)
    rows = []
    for setting in [None, *args.settings]:
        if setting is not None:
            pieces.PIECE_WEIGHT, pieces.PIECE_WIDE, pieces.PIECE_CUT_COST = map(float, setting.split(","))
        row = {"setting": "classifier alone" if setting is None else setting.replace(",", ", ")}
        row["shipped"] = "yes" if setting is not None and tuple(map(float, setting.split(","))) == shipped else ""
        for drawn in lines:
            scores = paper_test.read_lines(bench, drawn, piece_model=setting is not None, line_model=False)
            row[f"{drawn.kind}_right"], row[f"{drawn.kind}_cer"] = scores["counted_right"], scores["cer"]
        print(row, flush=True)
        rows.append(row)
    pieces.PIECE_WEIGHT, pieces.PIECE_WIDE, pieces.PIECE_CUT_COST = shipped
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
        data=f"{args.split} validation glyphs, {args.lines} lines of each kind, 4-9 glyphs each, glyphs 40-120 px",
        summary={"lines_per_kind": args.lines, "run": str(run)},
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
