"""Which rows should the line model read whole: every row, or only the rows whose letters touch?

With a line model, `predict --segment` used to read every row of writing whole. The line model reads touching
letters far better than the cuts do, but letters that stand apart a little worse than the classifier reads them one
by one (benchmarks/experiments/line_ctc.md). So the choice here: read whole only the rows holding a piece of ink
wider than a letter (glyphkit.preprocess.READ_WHOLE letter heights: touching letters), and cut the other rows as a
run without a line model does (the classifier and the piece model); against reading every row whole, and against
cutting every row.

Read, all three ways, on the run's **validation** glyphs drawn as the paper test draws its test glyphs: pages of
3-5 lines on plain, ruled and squared paper (pages whose lines are found right, the pages' CER), and lines with
gaps of 0.02-0.15 glyph widths, touching lines and lines whose letters stand 0.2-0.8 widths apart (the scans
part's): lines whose character count is right, and the CER.

The rule, written before the deciding run (seed 1, fresh renders; earlier looks used other seeds): glyphkit reads
only the rows with wide ink whole if, against every row read whole, (a) pages' lines are found right at least as
often and the pages' CER is at most 0.3 points higher; (b) touching lines are counted right at most 1 point less
often and their CER is at most 0.5 points higher; (c) gapped and spaced lines are counted right at least as often.
Otherwise it goes on reading every row whole.

    python benchmarks/experiments/rows_whole.py RUN --data-dir ../shared/emnist [--split proxy47] [--lines 240]
        [--pages 240] [--seed 1] [--out runs/rows_whole] [--results PATH]

The run needs both models (`glyphkit train-pieces RUN`, `glyphkit train-lines RUN`). Writes
benchmarks/results/rows_whole-RUN.json (`--results` to choose). The renders go under --out (git-ignored `runs/` by
default): they are derived from EMNIST and are never committed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the paper test draws and reads
import paper_test  # noqa: E402

from glyphkit import preprocess  # noqa: E402
from glyphkit.lines import LINE_MODEL  # noqa: E402
from glyphkit.pieces import PIECE_MODEL  # noqa: E402
from glyphkit.results import command_line, default_result_path, write_result  # noqa: E402
from glyphkit.scans import LINE_GAP  # noqa: E402

# How the rows are read, by name: (READ_WHOLE, whether the line model is used at all).
READERS = {
    "every row whole": (0.0, True),
    "rows with wide ink whole, the others cut": (preprocess.WIDE, True),
    "every row cut": (preprocess.WIDE, False),
}
KINDS = {"gapped": None, "touching": None, "spaced": LINE_GAP}  # None: the paper test's own gaps (LINE_KINDS)


def use(reader: str) -> bool:
    """Have glyphkit read rows as `reader` says (preprocess.READ_WHOLE); whether the line model is used at all."""
    read_whole, line_model = READERS[reader]
    preprocess.READ_WHOLE = read_whole
    return line_model


def record_row(what: str, reader: str, right: float, cer: float, seconds: float, count: int) -> dict:
    """One row of the record: pages or lines of a kind, read one way."""
    return {"what": what, "reader": reader, "right": right, "cer": cer, "ms_each": 1000 * seconds / count}


def main() -> None:
    parser = paper_test.line_experiment_parser(__doc__.splitlines()[0], "rows_whole")
    parser.add_argument("--pages", type=int, default=240, help="pages (a third on each paper; default: 240)")
    parser.set_defaults(lines=240, seed=1)
    args = parser.parse_args()
    run = Path(args.run_dir)
    paper_test.check_models(run, (PIECE_MODEL, LINE_MODEL))
    bench = paper_test.load_bench(args, glyphs="validation")
    shipped = preprocess.READ_WHOLE
    rows = []
    pages = paper_test.draw_pages(bench, bench.rng("pages"), args.pages)
    truth = ["\n".join(bench.text(ids) for ids in lines) for lines in pages.lines]
    for reader in READERS:
        start = time.perf_counter()
        results = bench.read([pages.folder], segment=True, line_model=use(reader))
        seconds = time.perf_counter() - start
        right = np.mean([paper_test.page_rows_right(r, lines) for r, lines in zip(results, pages.lines)])
        cer = paper_test.cer([r.text for r in results], truth)
        rows.append(record_row("pages", reader, float(right), cer, seconds, len(results)))
        print(rows[-1], flush=True)
    rng = bench.rng("lines")
    for kind, gap in KINDS.items():
        lines = paper_test.draw_lines(bench, rng, kind, args.lines, gap)
        for reader in READERS:
            start = time.perf_counter()
            scores = paper_test.read_lines(bench, lines, piece_model=True, line_model=use(reader))
            seconds = time.perf_counter() - start
            rows.append(
                record_row(f"{kind} lines", reader, scores["counted_right"], scores["cer"], seconds, args.lines)
            )
            print(rows[-1], flush=True)
    preprocess.READ_WHOLE = shipped
    for row in rows:
        row["shipped"] = "yes" if READERS[row["reader"]] == (shipped, True) else ""
    path = args.results or default_result_path("rows_whole", run.name)
    write_result(
        path,
        what="Pages and lines of validation glyphs read with `predict --segment`: every row read whole by the run's "
        "line model, only the rows holding ink wider than a letter read whole (the others cut into characters and "
        "read by the classifier, the piece model judging the cuts), or every row cut. Pages: the share whose lines "
        "were found right; lines: the share whose character count is right; and the character error rate (CER).",
        command=command_line(),
        columns=[
            {"key": "what", "header": "read"},
            {"key": "reader", "header": "rows"},
            {"key": "shipped", "header": "glyphkit's"},
            {"key": "right", "header": "lines found / counted right", "format": "percent1"},
            {"key": "cer", "header": "CER", "format": "percent"},
            {"key": "ms_each", "header": "ms per page or line", "format": "ms"},
        ],
        rows=rows,
        data=f"{args.split} validation glyphs (seed {args.seed}): {args.pages} pages of 3-5 lines, a third each on "
        f"plain, ruled and squared paper; {args.lines} lines of 4-9 glyphs of each kind (gaps 0.02-0.15, touching, "
        "gaps 0.2-0.8 glyph widths)",
        summary={
            "pages": args.pages,
            "lines_per_kind": args.lines,
            "read_whole_wider_than": preprocess.WIDE,
            "run": str(run),
            **{f"line_model_{k}": v for k, v in (bench.line_model() or {}).items()},
        },
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
