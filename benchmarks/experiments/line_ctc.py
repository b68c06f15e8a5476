"""Read a row whole with the line model, or cut it into characters: which reads touching letters better?

`predict --segment` can cut ink into characters and read each (recognition-driven segmentation, the piece model
judging the cuts: glyphkit.pieces), or read each row whole with the run's line model (glyphkit.lines: the
classifier's convolutions along the row, trained with CTC on lines of training glyphs). Lines of the run's
**validation** glyphs (the paper test reads the test glyphs; a choice must not be made on them), gapped and
touching as the paper test draws them, are read both ways and with the classifier alone: lines whose character
count is right, the character error rate (CER), and the same glyphs' CER as 28x28 arrays. The run needs both models
(`glyphkit train-pieces RUN`, `glyphkit train-lines RUN`).

    python benchmarks/experiments/line_ctc.py RUN --data-dir ../shared/emnist [--split proxy47] [--lines 120]
        [--out runs/line_ctc] [--results PATH]

The lines are drawn and read by the paper test's own code (benchmarks/paper_test.py: draw_lines, read_lines).
Writes benchmarks/results/line_ctc-RUN.json (`--results` to choose). The renders go under --out (git-ignored
`runs/` by default): they are derived from EMNIST and are never committed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the paper test draws and reads the lines
import paper_test  # noqa: E402

from glyphkit.lines import LINE_MODEL  # noqa: E402
from glyphkit.pieces import PIECE_MODEL  # noqa: E402
from glyphkit.results import command_line, default_result_path, write_result  # noqa: E402


def main() -> None:
    args = paper_test.line_experiment_parser(__doc__.splitlines()[0], "line_ctc").parse_args()
    run = Path(args.run_dir)
    bench, drawn = paper_test.validation_lines(args, needs=(PIECE_MODEL, LINE_MODEL))
    rows = []
    for lines in drawn:
        truth = [bench.text(ids) for ids in lines.glyphs]
        cer_28x28 = paper_test.cer(["".join(bench.as_28(ids)) for ids in lines.glyphs], truth)
        for reader, (piece_model, line_model) in paper_test.line_readers(bench).items():
            start = time.perf_counter()
            scores = paper_test.read_lines(bench, lines, piece_model, line_model)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "lines": lines.kind,
                    "reader": reader,
                    "counted_right": scores["counted_right"],
                    "cer": scores["cer"],
                    "cer_28x28": cer_28x28,
                    "ms_per_line": 1000 * seconds / len(truth),
                }
            )
            print(rows[-1], flush=True)
    path = args.results or default_result_path("line_ctc", run.name)
    write_result(
        path,
        what="Lines of validation glyphs, gapped and touching, read with `predict --segment` whole by the run's line "
        "model, and cut into characters with its piece model and with the classifier alone: lines whose character "
        "count is right, and the character error rate (CER).",
        command=command_line(),
        columns=[
            {"key": "lines", "header": "lines"},
            {"key": "reader", "header": "read by"},
            {"key": "counted_right", "header": "character count right", "format": "percent1"},
            {"key": "cer", "header": "CER", "format": "percent1"},
            {"key": "cer_28x28", "header": "CER as 28x28 arrays", "format": "percent1"},
            {"key": "ms_per_line", "header": "ms per line (one pass)", "format": "ms"},
        ],
        rows=rows,
        data=f"{args.split} validation glyphs, {args.lines} lines of each kind, 4-9 glyphs each, glyphs 40-120 px",
        summary={
            "lines_per_kind": args.lines,
            "run": str(run),
            **{f"line_model_{k}": v for k, v in (bench.line_model() or {}).items()},
        },
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
