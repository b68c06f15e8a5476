"""The paper test: real test glyphs drawn as scans, photos, lines and pages, read back with `glyphkit predict`.

Each 28x28 test glyph (real EMNIST handwriting) is drawn as dark ink on light paper (glyphkit.scans). `glyphkit
predict` must then read them about as well as `glyphkit evaluate` reads the same glyphs as 28x28 arrays. The parts
(`--parts`, all by default):

- scans: single glyphs at 40-200 px at random places, under uneven light, with noise, blur and JPEG; and lines of
  4-9 glyphs (gaps of 0.2-0.8 glyph widths) read with `--segment`: how often the number of characters found is
  right, and the accuracy on the characters of those lines against the same glyphs at 28x28.
- conditions: the same glyphs under each condition of a real note (ruled and squared paper, chalk, a shadow, a
  tilted photo, small writing in a photo, tiny glyphs in a bad JPEG, a sticky note, a glyph cropped to its ink),
  beside plain paper.
- lines: lines with gaps of 0.02-0.15 glyph widths and lines whose letters touch (overlap 0 to 0.08 widths), read
  with `--segment`: the share of lines whose character count is right, and the character error rate (CER: the
  Levenshtein distance to the truth over the truth's length, summed over lines), beside the CER of the same
  glyphs read as 28x28 arrays and the CER against that 28x28 reading. As glyphkit reads them when the run has a
  line model (glyphkit.lines: the rows of touching letters read whole by it, the others cut), and with every row
  cut into characters with its piece model and with the classifier alone.
- pages: pages of 3-5 lines (plain, ruled, squared paper in turn): the share of pages whose lines were found
  right (as many rows of text as lines, each with its line's number of characters) and the page CER (rows
  separated by a newline, which counts as a character); then as many pages photographed turned 3, 6 or 9 degrees
  (and on how many the turn was found), and as many lying on a desk.
- blank: blank paper of each kind (plain, ruled, squared, textured, shadowed, a sheet lying on a desk) read with
  `--segment`: the share of pages where no character is read (an error such as "no ink found", or no glyph).
- speed: `predict --segment` on a 12-megapixel photo of a page: the median wall time of 5 calls of
  glyphkit.predict.predict on it, after one call to warm up (each call loads the run, as the command does).

    python benchmarks/paper_test.py RUN_DIR --data-dir ../shared/emnist [--split proxy47] [--out runs/paper_test]
        [--parts scans,conditions,lines,pages,blank,speed] [--results PATH] [--quick]

The renderings are written under --out (git-ignored `runs/` by default): they are derived from EMNIST and must
never be committed. Results: OUT/paper_test.json (scans) and OUT/paper_test-PART.json, a Markdown table per part on
the terminal, and one results record per part: benchmarks/results/paper_test-RUN.json for scans and
paper_test-RUN-PART.json for the others (RUN: the run folder's name; `--results PATH` puts the scans record at PATH
and the others beside it as PATH's name plus `-PART`; `--quick`: a few images per part, a smoke test that writes
records only where --results is given).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein

from glyphkit.config import Config
from glyphkit.data import load_config_split
from glyphkit.inference import Predictor
from glyphkit.lines import LINE_MODEL
from glyphkit.pieces import PIECE_MODEL
from glyphkit.predict import FileResult, predict
from glyphkit.preprocess import ImageError, find_ink, read_image
from glyphkit.results import command_line, format_value, result_path, write_result
from glyphkit.rundir import BEST, checkpoint_config, load_checkpoint, safe_load
from glyphkit.scans import (
    BLANK_KINDS,
    CONDITION_NAMES,
    CONDITIONS,
    LARGE_PAGE,
    PAGE_PAPERS,
    half_intensity_span,
    render_blank,
    render_condition,
    render_large_page,
    render_line,
    render_page,
    render_scan,
)

PARTS = ("scans", "conditions", "lines", "pages", "blank", "speed")
LINE_GLYPHS = (4, 10)  # glyphs per line (numpy's half-open range: 4-9)
PAGE_LINES = (3, 6)  # lines per page: 3-5
PAGE_TURNS = (3.0, 6.0, 9.0)  # the pages part's turned pages: photographed turned this many degrees, either way
READ_AS_CHARACTERS = 24  # the blank paper table shows this much of what a page was read as
TURN_FOUND = 1.0  # a page's turn is found when glyphkit levels it by this many degrees of the turn drawn, or fewer
LINE_KINDS = {  # the lines part: name -> (gap range in glyph widths, how the table says it)
    "gapped": ((0.02, 0.15), "gaps of 0.02-0.15 glyph widths"),
    "touching": ((-0.08, 0.0), "touching: overlap of 0-0.08 glyph widths"),
}
QUICK_LARGE_PAGE = (1200, 900)  # --quick's "large" page: a smoke test need not wait for 12 megapixels


# ---------------------------------------------------------------------------------------------------------------
# The scans part (the paper test as it was first written)
# ---------------------------------------------------------------------------------------------------------------


def render_all(
    images: np.ndarray, out: Path, count: int, lines: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Write `count` scans of single glyphs and `lines` lines; return which test glyphs each one shows."""
    singles = rng.choice(len(images), size=count, replace=False)
    line_glyphs = [rng.choice(len(images), size=int(rng.integers(*LINE_GLYPHS)), replace=False) for _ in range(lines)]
    fresh(out / "scans"), fresh(out / "lines")
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


# ---------------------------------------------------------------------------------------------------------------
# What every part shares
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    """The run, its test glyphs and their truth, where renderings go and the 28x28 reference reader."""

    run_dir: Path
    out: Path
    split: str
    seed: int
    images: np.ndarray  # uint8 [N, 28, 28], the split's test glyphs
    truth: list[str]  # each test glyph's character
    classes: str
    reader: Predictor

    def rng(self, part: str) -> np.random.Generator:
        """A part's own random numbers: a part run alone renders what it renders among all the parts."""
        return np.random.default_rng([self.seed, PARTS.index(part)])

    def pick(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` distinct test glyphs."""
        return rng.choice(len(self.images), size=size, replace=False)

    def line(self, rng: np.random.Generator) -> np.ndarray:
        return self.pick(rng, int(rng.integers(*LINE_GLYPHS)))

    def as_28(self, ids: np.ndarray) -> list[str]:
        """The characters read from these glyphs as 28x28 arrays, the way `glyphkit evaluate` reads them."""
        if len(ids) == 0:
            return []
        probabilities = self.reader.probabilities(torch.from_numpy(self.images[np.asarray(ids)]))
        return [self.classes[c] for c in probabilities.argmax(1).tolist()]

    def text(self, ids) -> str:
        return "".join(self.truth[i] for i in ids)

    def read(
        self, inputs: list[Path], segment: bool, piece_model: bool = True, line_model: bool = True
    ) -> list[FileResult]:
        """`glyphkit predict` on files or folders, the results in file-name order (the order of rendering)."""
        found = predict(
            self.run_dir, inputs, segment=segment, progress=False, piece_model=piece_model, line_model=line_model
        )
        return sorted(found, key=lambda r: r.file)

    def piece_model(self) -> dict | None:
        """How the run's piece model was trained (glyphkit.pieces), or None when it has none."""
        path = self.run_dir / PIECE_MODEL
        return safe_load(path).get("trained", {}) if path.exists() else None

    def line_model(self) -> dict | None:
        """How the run's line model was trained (glyphkit.lines), or None when it has none."""
        path = self.run_dir / LINE_MODEL
        return safe_load(path).get("trained", {}) if path.exists() else None


@dataclass
class Part:
    """One part's measurement: its numbers for OUT/paper_test-PART.json, and its results record."""

    result: dict
    what: str
    columns: list[dict]
    rows: list[dict]
    data: str
    summary: dict


def fresh(folder: Path) -> Path:
    """An empty folder for a part's renderings (a former run's files would be read along with the new ones)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def cer(read: list[str], truth: list[str]) -> float:
    """Character error rate: Levenshtein distances summed over the texts, over the truth's characters."""
    return sum(Levenshtein.distance(r, t) for r, t in zip(read, truth)) / max(1, sum(map(len, truth)))


def nothing_read(result: FileResult) -> bool:
    """No character came out of the file: an error (no ink, no handwriting) or no glyph."""
    return result.error is not None or not result.glyphs


# ---------------------------------------------------------------------------------------------------------------
# The parts beyond the scans: a real note's conditions, lines, pages, blank paper, speed
# ---------------------------------------------------------------------------------------------------------------


def part_conditions(bench: Bench, count: int) -> Part:
    """The same `count` glyphs under each condition, each as its own image, read one glyph per image."""
    rng = bench.rng("conditions")
    ids = bench.pick(rng, count)
    reference = float(np.mean([a == bench.truth[i] for a, i in zip(bench.as_28(ids), ids)]))
    rows = [
        {
            "condition": "28x28 arrays",
            "description": "the same glyphs, read as `glyphkit evaluate` reads them",
            "glyphs": count,
            "accuracy": reference,
        }
    ]
    for condition in CONDITIONS:
        folder = fresh(bench.out / "conditions" / condition)
        for n, i in enumerate(ids):
            render_condition(bench.images[i], condition, rng).save(folder / f"{n:05d}.png")
        start = time.perf_counter()
        results = bench.read([folder], segment=False)
        seconds = time.perf_counter() - start
        right = [not nothing_read(r) and r.glyphs[0].prediction == bench.truth[i] for r, i in zip(results, ids)]
        rows.append(
            {
                "condition": condition,
                "description": CONDITION_NAMES[condition],
                "glyphs": count,
                "accuracy": float(np.mean(right)),
                "refused": sum(r.error is not None for r in results),
                "ms_per_image": 1000 * seconds / count,
            }
        )
    plain = next(r["accuracy"] for r in rows if r["condition"] == "plain")
    for row in rows[1:]:
        row["vs_plain"] = row["accuracy"] - plain
    return Part(
        result={"conditions": {r["condition"]: r for r in rows}},
        what="The same test glyphs drawn under the conditions of a user's notes (ruled and squared paper, chalk, "
        "a shadow, a tilted photo, small writing, a bad JPEG, a sticky note, a glyph cropped to its ink), each as its "
        "own image, read with `glyphkit predict`, beside plain paper and the glyphs as 28x28 arrays.",
        columns=[
            {"key": "condition", "header": "condition"},
            {"key": "description", "header": "drawn as"},
            {"key": "glyphs", "header": "glyphs", "format": "int"},
            {"key": "accuracy", "header": "accuracy", "format": "percent1"},
            {"key": "vs_plain", "header": "against plain paper (points)", "format": "percent1"},
            {"key": "refused", "header": "images refused", "format": "int"},
            {"key": "ms_per_image", "header": "time per image", "format": "ms"},
        ],
        rows=rows,
        data=f"{bench.split} test, {count:,} glyphs, each drawn under {len(CONDITIONS)} conditions",
        summary={"glyphs": count, "accuracy_28x28": reference, "accuracy_plain": plain},
    )


@dataclass
class Lines:
    """Rendered lines of one kind: the folder of their images, and which glyphs each line shows."""

    kind: str
    folder: Path
    glyphs: list[np.ndarray]


def draw_lines(
    bench: Bench, rng: np.random.Generator, kind: str, count: int, gap: tuple[float, float] | None = None
) -> Lines:
    """`count` lines of 4-9 of the bench's glyphs, spaced as LINE_KINDS[kind] says (or `gap`, in glyph widths),
    drawn as scans."""
    folder = fresh(bench.out / f"lines_{kind}")
    lines = [bench.line(rng) for _ in range(count)]
    for n, ids in enumerate(lines):
        render_line(bench.images[ids], rng, gap=gap or LINE_KINDS[kind][0]).save(folder / f"{n:04d}.png")
    return Lines(kind, folder, lines)


def read_lines(bench: Bench, lines: Lines, piece_model: bool, line_model: bool = False) -> dict:
    """The lines read with --segment (as if the run had no piece model, or no line model, when told): the share
    whose character count is right, and the CER."""
    results = bench.read([lines.folder], segment=True, piece_model=piece_model, line_model=line_model)
    read = [r.text.replace("\n", "") for r in results]  # a line read as two rows: its characters still count
    return {
        "counted_right": float(np.mean([len(r.glyphs) == len(ids) for r, ids in zip(results, lines.glyphs)])),
        "cer": cer(read, [bench.text(ids) for ids in lines.glyphs]),
        "read": read,
    }


def line_readers(bench: Bench) -> dict[str, tuple[bool, bool]]:
    """How --segment can read lines with this run, by name: (piece model, line model) for read_lines. As glyphkit
    reads them when the run has a line model (rows of touching letters read whole by it, the others cut: preprocess.
    READ_WHOLE), then every row cut with its piece model and with the classifier alone (without a piece model: the
    classifier)."""
    readers = {"classifier and piece model": (True, False), "classifier alone": (False, False)}
    if not bench.piece_model():
        readers = {"classifier": (False, False)}
    if bench.line_model():
        readers = {"line model on touching rows, the rest cut": (True, True), **readers}
    return readers


def part_lines(bench: Bench, count: int) -> Part:
    """`count` lines of each kind (gapped, touching) read with --segment: count right, CER. With the run's line
    model when it has one (on the rows of touching letters), and (the same lines again) every row cut with its
    piece model and with the classifier alone."""
    rng = bench.rng("lines")
    trained, read_whole = bench.piece_model(), bench.line_model()
    readers = line_readers(bench)
    rows = []
    for kind, (_, description) in LINE_KINDS.items():
        lines = draw_lines(bench, rng, kind, count)
        truth = [bench.text(ids) for ids in lines.glyphs]
        as_28 = ["".join(bench.as_28(ids)) for ids in lines.glyphs]
        for cuts, (piece_model, line_model) in readers.items():
            scores = read_lines(bench, lines, piece_model, line_model)
            rows.append(
                {
                    "lines": kind,
                    "description": description,
                    "cuts": cuts,
                    "count": count,
                    "chars": sum(map(len, truth)),
                    "counted_right": scores["counted_right"],
                    "cer": scores["cer"],
                    "cer_28x28": cer(as_28, truth),
                    "cer_vs_28x28": cer(scores["read"], as_28),
                }
            )
    return Part(
        result={
            "lines": {f"{r['lines']}, {r['cuts']}": r for r in rows},
            "piece_model": trained,
            "line_model": read_whole,
        },
        what="Lines of 4-9 test glyphs with small gaps, and with touching letters, read with `glyphkit predict "
        "--segment`: lines whose character count is right and the character error rate (CER), beside the CER of "
        "the same glyphs read as 28x28 arrays; as glyphkit reads them with the run's line model when it has one "
        "(rows holding touching letters read whole by it, the others cut), and the same lines with every row cut "
        "into characters, the run's piece model and the classifier alone judging the cuts.",
        columns=[
            {"key": "lines", "header": "lines"},
            {"key": "description", "header": "letters"},
            {"key": "cuts", "header": "read by"},
            {"key": "count", "header": "lines read", "format": "int"},
            {"key": "chars", "header": "characters", "format": "int"},
            {"key": "counted_right", "header": "character count right", "format": "percent1"},
            {"key": "cer", "header": "CER", "format": "percent1"},
            {"key": "cer_28x28", "header": "CER as 28x28 arrays", "format": "percent1"},
            {"key": "cer_vs_28x28", "header": "CER against the 28x28 reading", "format": "percent1"},
        ],
        rows=rows,
        data=f"{bench.split} test, {count} lines of each kind, 4-9 glyphs each, glyphs 40-120 px",
        summary={
            "lines_per_kind": count,
            **{f"piece_model_{k}": v for k, v in (trained or {}).items()},
            **{f"line_model_{k}": v for k, v in (read_whole or {}).items()},
        },
    )


def page_rows_right(result: FileResult, lines: list[np.ndarray]) -> bool:
    """The page's lines found right: a row of text per line (rows split on newlines), each as long as its line."""
    rows = result.text.split("\n") if not nothing_read(result) else []
    return len(rows) == len(lines) and all(len(row) == len(ids) for row, ids in zip(rows, lines))


@dataclass
class Pages:
    """Rendered pages: the folder of their images, each page's paper, which glyphs each of its lines shows, and the
    degrees each page is turned in its photo."""

    folder: Path
    papers: list[str]
    lines: list[list[np.ndarray]]
    turns: list[float | None]  # None: not known (a sheet lying on a desk)


def draw_pages(
    bench: Bench,
    rng: np.random.Generator,
    count: int,
    turns: tuple[float, ...] = (0.0,),
    name: str = "pages",
    desk: bool = False,
) -> Pages:
    """`count` pages of 3-5 lines of 4-9 of the bench's glyphs, on plain, ruled and squared paper in turn, into
    OUT/`name`. With `turns`, each three pages (one of each paper) are turned by the next of them, clockwise and
    counter-clockwise in turn: every turn meets every paper, both ways. With `desk`, each sheet lies on a desk
    (scans.render_page)."""
    folder = fresh(bench.out / name)
    pages, papers, turned = [], [], []
    for n in range(count):
        paper = PAGE_PAPERS[n % len(PAGE_PAPERS)]
        turn = turns[n // len(PAGE_PAPERS) % len(turns)] * (-1) ** n
        lines = [bench.line(rng) for _ in range(int(rng.integers(*PAGE_LINES)))]
        page = render_page([bench.images[ids] for ids in lines], rng, paper, turn=turn, desk=desk)
        page.save(folder / f"{n:04d}-{paper}.png")
        pages.append(lines)
        papers.append(paper)
        turned.append(None if desk else turn)  # on a desk, render_page lays the sheet turned at random
    return Pages(folder, papers, pages, turned)


def turn_found(path: Path, turn: float) -> bool:
    """Whether `predict --segment` levels the page at `path` by within TURN_FOUND degrees of the `turn` it was drawn
    with (find_ink is the step that levels it; a level page is found level when it is left as it is)."""
    try:
        return abs(find_ink(read_image(path)).angle - turn) <= TURN_FOUND
    except ImageError:
        return False


def pages_row(bench: Bench, drawn: Pages, results: list[FileResult], mine: list[int], name: str) -> dict:
    """The table's row for the pages `mine` (indices into `drawn`)."""
    truth = ["\n".join(bench.text(ids) for ids in drawn.lines[n]) for n in mine]
    as_28 = ["\n".join("".join(bench.as_28(ids)) for ids in drawn.lines[n]) for n in mine]
    row = {
        "paper": name,
        "pages": len(mine),
        "lines": sum(len(drawn.lines[n]) for n in mine),
        "lines_right": float(np.mean([page_rows_right(results[n], drawn.lines[n]) for n in mine])),
        "cer": cer([results[n].text for n in mine], truth),
        "cer_28x28": cer(as_28, truth),
    }
    if all(drawn.turns[n] is not None for n in mine):
        row["turn_found"] = float(np.mean([turn_found(Path(results[n].file), drawn.turns[n]) for n in mine]))
    return row


def paper_rows(bench: Bench, drawn: Pages, results: list[FileResult], suffix: str = "") -> list[dict]:
    """The table's rows for each paper of `drawn` and for all of them, named by the paper (or "all") and `suffix`."""
    rows = []
    for paper in (*PAGE_PAPERS, "all"):
        mine = [n for n in range(len(drawn.papers)) if paper in ("all", drawn.papers[n])]
        if mine:
            rows.append(pages_row(bench, drawn, results, mine, f"{paper}{suffix}"))
    return rows


def part_pages(bench: Bench, count: int) -> Part:
    """`count` pages of 3-5 lines on plain, ruled and squared paper in turn, read with --segment; then `count`
    more, photographed turned by PAGE_TURNS degrees, and `count` more lying on a desk (each set drawn after the
    ones before, which it leaves as they were)."""
    rng = bench.rng("pages")
    level = draw_pages(bench, rng, count)
    turned = draw_pages(bench, rng, count, PAGE_TURNS, name="pages-turned")
    on_desk = draw_pages(bench, rng, count, name="pages-desk", desk=True)
    level_read, turned_read, desk_read = (bench.read([d.folder], segment=True) for d in (level, turned, on_desk))
    rows = paper_rows(bench, level, level_read)
    for turn in (*PAGE_TURNS, None):
        mine = [n for n in range(count) if turn is None or abs(turned.turns[n]) == turn]
        name = (
            f"all, turned {PAGE_TURNS[0]:g}-{PAGE_TURNS[-1]:g} degrees"
            if turn is None
            else f"all, turned {turn:g} degrees"
        )
        if mine:
            rows.append(pages_row(bench, turned, turned_read, mine, name))
    rows += paper_rows(bench, on_desk, desk_read, ", on a desk")
    examples = {Path(r.file).name: r.text for r in level_read[:3]}
    return Part(
        result={"pages": {r["paper"]: r for r in rows}, "examples": examples},
        what="Pages of 3-5 lines of 4-9 test glyphs on plain, ruled and squared paper, read with `glyphkit predict "
        "--segment`: pages whose lines were found right (one row of text per line, each with its line's number of "
        "characters) and the page's character error rate, beside the same glyphs read as 28x28 arrays. Then as "
        "many pages again (other glyphs, the three papers alike) photographed turned either way, and as many lying "
        "on a darker desk; and on how many pages glyphkit found the turn (a level page: found level; not counted "
        "on a desk, where the sheet lies turned at random).",
        columns=[
            {"key": "paper", "header": "paper"},
            {"key": "pages", "header": "pages", "format": "int"},
            {"key": "lines", "header": "lines", "format": "int"},
            {"key": "lines_right", "header": "lines found right", "format": "percent1"},
            {"key": "cer", "header": "CER", "format": "percent1"},
            {"key": "cer_28x28", "header": "CER as 28x28 arrays", "format": "percent1"},
            {"key": "turn_found", "header": f"turn found (within {TURN_FOUND:g} degree)", "format": "percent1"},
        ],
        rows=rows,
        data=f"{bench.split} test, {count} pages of 3-5 lines, {count} more turned "
        f"{', '.join(f'{t:g}' for t in PAGE_TURNS)} degrees and {count} more on a desk, glyphs 40-100 px, lines "
        "1.3-2 glyph heights apart",
        summary={"pages": count, "turned_pages": count, "desk_pages": count},
    )


def shortened(text: str, most: int = READ_AS_CHARACTERS) -> str:
    """A text read from blank paper as the table shows it: its rows joined by " / ", cut to `most` characters."""
    text = " / ".join(text.split("\n"))
    return text if len(text) <= most else text[: most - 3] + "..."


def part_blank(bench: Bench, count: int) -> Part:
    """`count` blank pages of each kind, read with --segment: how many give no character."""
    rng = bench.rng("blank")
    rows = []
    for kind in BLANK_KINDS:
        folder = fresh(bench.out / "blank" / kind)
        for n in range(count):
            render_blank(kind, rng).save(folder / f"{n:03d}.png")
        start = time.perf_counter()
        results = bench.read([folder], segment=True)
        seconds = time.perf_counter() - start
        read = [r.text for r in results if not nothing_read(r)]
        rows.append(
            {
                "paper": kind,
                "pages": count,
                "nothing_read": float(np.mean([nothing_read(r) for r in results])),
                "read_as": ", ".join(f"`{shortened(t)}`" for t in list(dict.fromkeys(read))[:4]) or None,
                "s_per_page": seconds / count,
            }
        )
    return Part(
        result={"blank": {r["paper"]: r for r in rows}},
        what="Blank paper of each kind, photographed, read with `glyphkit predict --segment`: the pages where no "
        "character is read (an error such as no ink or no handwriting found, or no glyph).",
        columns=[
            {"key": "paper", "header": "blank paper"},
            {"key": "pages", "header": "pages", "format": "int"},
            {"key": "nothing_read", "header": "no character read", "format": "percent1"},
            {"key": "read_as", "header": "read as (some)"},
            {"key": "s_per_page", "header": "time per page", "format": "seconds"},
        ],
        rows=rows,
        data=f"{count} pages of each kind, 600-1200 px wide (on a desk, the sheet; the desk shows round it)",
        summary={"pages_per_kind": count},
    )


def part_speed(bench: Bench, repeats: int, size: tuple[int, int]) -> Part:
    """Wall time of predict --segment on one large photo of a page: the median of `repeats` calls after a warm-up."""
    rng = bench.rng("speed")
    lines = [bench.line(rng) for _ in range(int(rng.integers(*PAGE_LINES)))]
    folder = fresh(bench.out / "speed")
    file = folder / "page.jpg"
    render_large_page([bench.images[ids] for ids in lines], rng, size=size).save(file, quality=90)
    bench.read([file], segment=True)  # warm-up: imports, caches, the first allocation of the big arrays
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        (result,) = bench.read([file], segment=True)
        times.append(time.perf_counter() - start)
    row = {
        "image": f"{size[0]}x{size[1]} photo, {len(lines)} lines, {sum(map(len, lines))} characters",
        "calls": repeats,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "glyphs_read": len(result.glyphs),
        "lines_right": "yes" if page_rows_right(result, lines) else "no",
    }
    return Part(
        result={"speed": row, "times_s": times, "error": result.error},
        what="Wall time of `glyphkit predict --segment` (glyphkit.predict.predict, loading the run each call, as "
        "the command does) on a 12-megapixel photo of a page with a few lines of writing: the median of the timed "
        "calls after one warm-up call.",
        columns=[
            {"key": "image", "header": "image"},
            {"key": "calls", "header": "timed calls", "format": "int"},
            {"key": "median_s", "header": "median", "format": "float2"},
            {"key": "min_s", "header": "fastest", "format": "float2"},
            {"key": "max_s", "header": "slowest", "format": "float2"},
            {"key": "glyphs_read", "header": "characters read", "format": "int"},
            {"key": "lines_right", "header": "lines found right"},
        ],
        rows=[row],
        data=f"one page of {bench.split} test glyphs, 90-160 px, JPEG quality 90; times in seconds",
        summary={"median_s": row["median_s"], "torch_threads": torch.get_num_threads()},
    )


def part_scans(bench: Bench, count: int, lines: int) -> Part:
    """The paper test as it was first written: `count` single scans and `lines` lines (gaps 0.2-0.8 widths)."""
    images, truth = bench.images, bench.truth
    # The same random numbers as before the parts existed (the seed itself), so the same glyphs are drawn.
    singles, line_glyphs = render_all(images, bench.out, count, lines, np.random.default_rng(bench.seed))
    every = np.concatenate([singles, *line_glyphs])
    as_28 = dict(zip(every.tolist(), bench.as_28(every)))
    start = time.perf_counter()
    scans = bench.read([bench.out / "scans"], segment=False)
    result = {
        "run": str(bench.run_dir),
        "split": bench.split,
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
        **score_lines(bench.read([bench.out / "lines"], segment=True), line_glyphs, truth, as_28),
    }
    summary_keys = (
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
    return Part(
        result=result,
        what="Real test glyphs rendered as scans and lines of handwriting, read back with `glyphkit predict`, "
        "against the same glyphs read as 28x28 arrays.",
        columns=COLUMNS,
        rows=table_rows(result),
        data=f"{bench.split} test, {count:,} glyphs as scans and {lines} lines "
        f"({result['line_chars']:,} glyphs in lines segmented right)",
        summary={k: result[k] for k in summary_keys},
    )


def print_scans(result: dict) -> None:
    pct = lambda value: f"{100 * value:.2f}%"  # noqa: E731
    print(
        f"strokes span (median, half intensity): {result['span_28x28']:g} of 28 pixels in the arrays, "
        f"{result['span_scans']:g} in the glyphs read from the scans\n"
        f"lines with the right number of characters: {pct(result['lines_counted_right'])} of {result['lines']}; "
        f"{result['scans']} scans read in {result['scan_read_s']:.1f} s"
    )


# ---------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------


def markdown(columns: list[dict], rows: list[dict]) -> str:
    """A part's table as the docs show it (glyphkit.results.format_value)."""
    lines = ["| " + " | ".join(c["header"] for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append(
            "| " + " | ".join(format_value(row.get(c["key"]), c.get("format", "text")) for c in columns) + " |"
        )
    return "\n".join(lines)


def part_record_path(results: str | None, quick: bool, part: str, run_name: str) -> Path | None:
    """Where a part's record goes: the scans part's at `results` (default benchmarks/results/paper_test-RUN.json),
    every other part's beside it with `-PART` added to the name; none for a --quick run without `results`."""
    path = result_path(results, quick, "paper_test", run_name)
    if path is None or part == "scans":
        return path
    return path.with_name(f"{path.stem}-{part}{path.suffix}")


def parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if unknown := [p for p in parts if p not in PARTS]:
        raise argparse.ArgumentTypeError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return parts or list(PARTS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the trained run folder to read with")
    parser.add_argument("--data-dir", required=True, help="folder with the split's EMNIST files")
    parser.add_argument("--split", default="proxy47", help="whose test glyphs are rendered (default: proxy47)")
    parser.add_argument(
        "--parts",
        type=parse_parts,
        default=list(PARTS),
        help=f"comma-separated parts to run (default: all): {', '.join(PARTS)}",
    )
    parser.add_argument("--count", type=int, default=2000, help="scans: single glyphs rendered (default: 2000)")
    parser.add_argument("--lines", type=int, default=120, help="scans: lines of 4-9 glyphs (default: 120)")
    parser.add_argument(
        "--condition-count", type=int, default=300, help="conditions: glyphs drawn under each (default: 300)"
    )
    parser.add_argument(
        "--line-count", type=int, default=120, help="lines: gapped lines, and as many touching (default: 120)"
    )
    parser.add_argument(
        "--pages",
        type=int,
        default=60,
        help="pages: pages of 3-5 lines, and as many turned and as many on a desk (default: 60)",
    )
    parser.add_argument("--blank", type=int, default=12, help="blank: blank pages of each kind (default: 12)")
    parser.add_argument("--repeats", type=int, default=5, help="speed: timed calls after the warm-up (default: 5)")
    parser.add_argument("--out", default="runs/paper_test", help="where the renderings and the JSON summaries go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the renderings (default: 0)")
    parser.add_argument(
        "--results",
        metavar="PATH",
        help="the scans part's results record, the other parts' beside it as PATH's name plus -PART (default: "
        "benchmarks/results/paper_test-RUN.json, RUN the run folder's name; with --quick: none)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test, not a measurement: 20 scans and 3 lines, 2 glyphs per condition, 3 lines of each kind, "
        f"3 pages, 1 blank page of each kind, 1 timed call on a {QUICK_LARGE_PAGE[0]}x{QUICK_LARGE_PAGE[1]} page",
    )
    return parser


def load_bench(args: argparse.Namespace, glyphs: str = "test") -> Bench:
    """The bench of `args` (build_parser's), reading the split's test glyphs, or (glyphs="validation") its
    validation glyphs, which settings may be chosen on."""
    best = Path(args.run_dir) / BEST
    state = load_checkpoint(best)
    config = checkpoint_config(state)
    data = load_config_split(Config(split=args.split, data_dir=args.data_dir, seed=config.seed))
    images, labels = (data.test_images, data.test_labels) if glyphs == "test" else (data.val_images, data.val_labels)
    return Bench(
        run_dir=Path(args.run_dir),
        out=Path(args.out),
        split=args.split,
        seed=args.seed,
        images=images.numpy(),
        truth=[config.classes[label] for label in labels.tolist()],
        classes=config.classes,
        reader=Predictor.from_checkpoint(state, best),
    )


# What the experiments on lines of validation glyphs share (benchmarks/experiments: line_ctc.py, piece_tuning.py,
# letters_apart.py): their arguments, the models they need, and the lines they draw.
TRAINED_BY = {PIECE_MODEL: "train-pieces", LINE_MODEL: "train-lines"}  # a run's model file -> the command writing it


def line_experiment_parser(description: str, name: str) -> argparse.ArgumentParser:
    """The arguments every line experiment takes: the run, the data, the split, lines of each kind, the seed of the
    renderings, where they go (runs/NAME) and the record's path (default: NAME-RUN.json)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="proxy47")
    parser.add_argument("--lines", type=int, default=120, help="lines of each kind (default: 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=f"runs/{name}", help="where the renderings go")
    parser.add_argument("--results", default=None, help=f"the record's path (default: {name}-RUN.json)")
    return parser


def check_models(run: Path, needs: tuple[str, ...]) -> None:
    """Stop with one error line, naming the command that trains it, when the run lacks a model file in `needs`."""
    for model in needs:
        if not (run / model).exists():
            raise SystemExit(f"error: {run} has no {model}; train one with: glyphkit {TRAINED_BY[model]} {run}")


def validation_lines(args: argparse.Namespace, needs: tuple[str, ...]) -> tuple[Bench, list[Lines]]:
    """The bench of the run's validation glyphs and `args.lines` lines of each kind drawn from them, once the run is
    found to have each model file in `needs` (check_models)."""
    check_models(Path(args.run_dir), needs)
    bench = load_bench(args, glyphs="validation")
    rng = bench.rng("lines")
    return bench, [draw_lines(bench, rng, kind, args.lines) for kind in LINE_KINDS]


def main() -> None:
    args = build_parser().parse_args()
    if args.quick:
        args.count, args.lines, args.condition_count, args.line_count = 20, 3, 2, 3
        args.pages, args.blank, args.repeats = 3, 1, 1
    bench = load_bench(args)
    runs: dict[str, Callable[[], Part]] = {
        "scans": lambda: part_scans(bench, args.count, args.lines),
        "conditions": lambda: part_conditions(bench, args.condition_count),
        "lines": lambda: part_lines(bench, args.line_count),
        "pages": lambda: part_pages(bench, args.pages),
        "blank": lambda: part_blank(bench, args.blank),
        "speed": lambda: part_speed(bench, args.repeats, QUICK_LARGE_PAGE if args.quick else LARGE_PAGE),
    }
    for name in dict.fromkeys(args.parts):
        part = runs[name]()
        summary_file = bench.out / ("paper_test.json" if name == "scans" else f"paper_test-{name}.json")
        summary_file.write_text(json.dumps(part.result, indent=2, default=str) + "\n")
        print(f"\n## {name}\n\n{markdown(part.columns, part.rows)}\n")
        if name == "scans":
            print_scans(part.result)
        path = part_record_path(args.results, args.quick, name, bench.run_dir.name)
        if path is not None:
            write_result(
                path,
                what=part.what,
                command=command_line(),
                columns=part.columns,
                rows=part.rows,
                data=part.data,
                summary=part.summary,
                notes="a --quick smoke run: not a measurement" if args.quick else None,
            )
            print(f"results record: {path}")


if __name__ == "__main__":
    main()
