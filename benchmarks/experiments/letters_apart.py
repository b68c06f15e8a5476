"""Should the gaps between letters count them when the line model reads a row? glyphkit.strips.SURELY_ONE.

The line model (glyphkit.lines) reads a row of writing whole and finds its characters itself, and now and then reads
one letter as two (an L as JL, an f as Ff), even where blank paper stands on either side of it. glyphkit gives each
character it reads to the nearest piece of ink (layout.segment_line's), reads a piece that holds one as that one,
and cuts a piece that holds several between them unless the run's piece model (glyphkit.pieces) is surer than
SURELY_ONE that the piece is one character. Letters that touch make one piece of ink, so it cannot simply be one
character: two narrow ones touching (1I) are as wide as one letter.

Lines (gapped and touching, as the paper test draws them) and pages of 3-5 lines of the run's **validation** glyphs
(the paper test reads the test glyphs; a setting must not be chosen on them) are read with `glyphkit predict
--segment` as glyphkit read them before (each row decoded freely, no pieces of ink), and under each SURELY_ONE,
1.0 meaning never (each piece cut into what the model reads). The run needs a line model and a piece model.

    python benchmarks/experiments/letters_apart.py RUN --data-dir ../shared/emnist [--split proxy47] [--lines 120]
        [--pages 60] [--settings 0.5,0.8,0.9,0.95,0.99,1.0] [--out runs/letters_apart] [--results PATH]

Writes benchmarks/results/letters_apart-RUN.json (`--results` to choose). The renders go under --out (git-ignored
`runs/` by default): they are derived from EMNIST and are never committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the paper test draws and reads
import paper_test  # noqa: E402

from glyphkit import strips  # noqa: E402
from glyphkit.lines import LINE_MODEL, LineModel  # noqa: E402
from glyphkit.pieces import PIECE_MODEL  # noqa: E402
from glyphkit.results import command_line, default_result_path, write_result  # noqa: E402

SETTINGS = "0.5,0.8,0.9,0.95,0.99,1.0"  # SURELY_ONE; 1.0: the piece model never keeps a piece whole


def read_freely(read_rows):
    """LineModel.read_rows as glyphkit read rows before the pieces of ink counted: each row one piece, decoded
    freely (every character CTC reads, cut apart at the thinnest columns)."""

    def freely(self, found, rows, row_pieces, one_character=None):
        return read_rows(self, found, rows, [[row] for row in rows])

    return freely


def main() -> None:
    parser = paper_test.line_experiment_parser(__doc__.splitlines()[0], "letters_apart")
    parser.add_argument("--pages", type=int, default=60, help="pages of 3-5 lines (default: 60)")
    parser.add_argument("--settings", default=SETTINGS, help=f"SURELY_ONE values (default: {SETTINGS})")
    args = parser.parse_args()
    run = Path(args.run_dir)
    bench, lines = paper_test.validation_lines(args, needs=(LINE_MODEL, PIECE_MODEL))
    shipped, read_rows = strips.SURELY_ONE, LineModel.read_rows
    rows = []
    for setting in [None, *(float(v) for v in args.settings.split(","))]:
        if setting is None:
            LineModel.read_rows = read_freely(read_rows)
        else:
            LineModel.read_rows, strips.SURELY_ONE = read_rows, setting
        row = {
            "setting": "rows decoded freely (before)" if setting is None else f"{setting:g}",
            "shipped": "yes" if setting == shipped else "",
        }
        for drawn in lines:
            scores = paper_test.read_lines(bench, drawn, piece_model=True, line_model=True)
            row[f"{drawn.kind}_right"], row[f"{drawn.kind}_cer"] = scores["counted_right"], scores["cer"]
        pages = paper_test.part_pages(bench, args.pages).rows[-1]  # the pages of every paper together
        row["pages_right"], row["pages_cer"] = pages["lines_right"], pages["cer"]
        print(row, flush=True)
        rows.append(row)
    LineModel.read_rows, strips.SURELY_ONE = read_rows, shipped
    path = args.results or default_result_path("letters_apart", run.name)
    write_result(
        path,
        what="Lines of validation glyphs, gapped and touching, and pages of 3-5 lines on plain, ruled and squared "
        "paper, read with `predict --segment` and the run's line model: each row decoded freely (before), and with "
        "the pieces of ink counting the letters, a piece read as several kept whole when the piece model is surer "
        "than SURELY_ONE that it is one character. Lines whose character count is right, pages whose lines were all "
        "found right, and the character error rate.",
        command=command_line(),
        columns=[
            {"key": "setting", "header": "SURELY_ONE"},
            {"key": "shipped", "header": "glyphkit's"},
            {"key": "gapped_right", "header": "gapped: count right", "format": "percent1"},
            {"key": "gapped_cer", "header": "gapped: CER", "format": "percent1"},
            {"key": "touching_right", "header": "touching: count right", "format": "percent1"},
            {"key": "touching_cer", "header": "touching: CER", "format": "percent1"},
            {"key": "pages_right", "header": "pages: lines found right", "format": "percent1"},
            {"key": "pages_cer", "header": "pages: CER", "format": "percent1"},
        ],
        rows=rows,
        data=f"{args.split} validation glyphs: {args.lines} lines of each kind (4-9 glyphs, 40-120 px) and "
        f"{args.pages} pages of 3-5 lines",
        summary={"lines_per_kind": args.lines, "pages": args.pages, "run": str(run)},
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
