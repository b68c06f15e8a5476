"""The line model (glyphkit.lines): CTC's decoding, the strip a row becomes, how its reading becomes characters with
boxes and answers in `predict --segment`, and `glyphkit train-lines` end to end on a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from glyphkit import cli, tables
from glyphkit.inference import ClassPrior, load_predictor
from glyphkit.layout import find_lines, segment_line
from glyphkit.lines import LINE_MODEL, LineModel, train_line_model
from glyphkit.predict import GlyphPrediction, _read, predict
from glyphkit.preprocess import GLYPH_SPAN, find_ink
from glyphkit.strips import STRIDE, STRIP_HEIGHT, STRIP_PAD, best_path, row_characters, row_strip
from tests.test_benchmarks import tiny_run  # noqa: F401 - the fixture

BLANK = 0


def columns(*best: int, classes: int = 4) -> np.ndarray:
    """Log-probabilities [classes + 1, T] whose likeliest entry in column t is best[t] (0: CTC's blank)."""
    log_probs = np.full((classes + 1, len(best)), np.log(0.05))
    log_probs[list(best), range(len(best))] = np.log(0.8)
    return log_probs


def test_best_path_merges_repeats_and_a_blank_parts_two_alike_letters():
    """CTC's rule: a class repeated over neighbouring columns is one character; the same class again after a blank
    is a second one. Classes come out shifted down by one (the blank is index 0)."""
    read = best_path(columns(BLANK, 1, 1, BLANK, 1, 2, 2, BLANK, 3))
    assert read == [(0, 1), (0, 4), (1, 5), (2, 8)]
    assert best_path(columns(BLANK, BLANK, BLANK)) == []


def bars(
    *lefts: int,
    width: int = 14,
    top: int = 40,
    height: int = 44,
    touching: bool = False,
    image: Image.Image | None = None,
) -> Image.Image:
    """Dark upright bars on light paper (or drawn on `image`), one per left edge; `touching`: each joined to the next
    by a thin bridge."""
    image = image or Image.new("L", (400, 140), 235)
    draw = ImageDraw.Draw(image)
    for left in lefts:
        draw.rectangle((left, top, left + width - 1, top + height - 1), fill=20)
    if touching:
        draw.rectangle((lefts[0], top + height // 2, lefts[-1], top + height // 2 + 2), fill=20)
    return image


def two_rows() -> Image.Image:
    """A page of two rows of three bars each: the top row's bars stand apart, the bottom row's touch (one piece of
    ink 154 pixels wide, 3.5 letter heights)."""
    top_row = bars(50, 120, 190, image=Image.new("L", (400, 240), 235))
    return bars(50, 120, 190, top=150, touching=True, image=top_row)


def test_a_row_becomes_a_strip_with_letters_glyph_span_high():
    """Bars 44 pixels high (a row's typical letter) are GLYPH_SPAN pixels high in the strip, centred in its
    STRIP_HEIGHT rows, with STRIP_PAD columns of paper before the first bar; the strip knows where it came from."""
    found = find_ink(bars(50, 120, 190), level=False)
    strip = row_strip(found.ink, found.labels, found.regions)
    ink_rows = np.flatnonzero((strip.image > 0.5).any(1))
    ink_cols = np.flatnonzero((strip.image > 0.5).any(0))
    assert strip.image.shape[0] == STRIP_HEIGHT and strip.image.max() == pytest.approx(1.0)
    assert abs(len(ink_rows) - GLYPH_SPAN) <= 1
    assert abs(ink_rows[0] - (STRIP_HEIGHT - 1 - ink_rows[-1])) <= 1  # centred
    assert abs(ink_cols[0] - STRIP_PAD) <= 1
    assert abs(strip.left - 50) <= 1 and strip.scale == pytest.approx(GLYPH_SPAN / 44, rel=0.05)


def reading_line_model(run) -> None:
    """Give `run` a line model that reads characters: trained for a step (a real train-lines file), then CTC's
    blank made unlikely, so every row reads as several characters (a step of training mostly reads blanks)."""
    train_line_model(run, lines=6, epochs=1, progress=False, log=lambda *_: None)
    state = torch.load(run / LINE_MODEL, weights_only=True)
    state["model"]["context.4.bias"][0] = -20.0
    torch.save(state, run / LINE_MODEL)


def copy_of(run, folder):
    """A run folder holding only the tiny run's checkpoint (a line model written there stays there)."""
    folder.mkdir()
    (folder / "best_model.pth").write_bytes((run / "best_model.pth").read_bytes())
    return folder


def test_train_lines_writes_a_model_predict_reads_rows_with(tiny_run, tmp_path, capsys):  # noqa: F811
    run = copy_of(tiny_run, tmp_path / "run")
    assert cli.main(["train-lines", str(run), "--lines", "6", "--epochs", "1", "--no-progress"]) == 0
    assert "lines of training glyphs drawn" in capsys.readouterr().out
    model = LineModel.load(run / LINE_MODEL)
    assert model.trained["lines"] <= 6 and model.trained["epochs"] == 1
    page = tmp_path / "page.png"
    two_rows().save(page)
    forced = predict(run, [page], segment=True, progress=False, line_model=False)[0]
    assert {g.line for g in forced.glyphs} == {0, 1} and all(g.read is None for g in forced.glyphs)  # all cut
    result = predict(run, [page], segment=True, progress=False)[0]
    assert result.error is None
    # the row of touching bars is read whole by the line model; the row whose bars stand apart is cut, read by the
    # classifier (which reads well-spaced letters better)
    assert [g.line for g in result.glyphs if g.read is None] == [0, 0, 0]
    assert {g.line for g in result.glyphs if g.read is not None} == {1}
    table = tables.texts_table({"whole": [result], "cut": [forced]})  # 06_predict's comparison
    assert table.to_dict("records") == [{"file": "page.png", "whole": result.text, "cut": forced.text}]


def test_train_lines_is_reproducible(tiny_run, tmp_path):  # noqa: F811
    """The same seed gives the same line model."""
    run = copy_of(tiny_run, tmp_path / "run")
    weights = []
    for _ in range(2):
        path = train_line_model(run, lines=4, epochs=1, seed=3, progress=False, log=lambda *_: None)
        weights.append(torch.load(path, weights_only=True)["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_each_character_the_line_model_reads_gets_its_own_ink_as_box(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    """Three touching bars (one piece of ink) and a line model that reads class 2 at the first bar's middle, 0 at the
    second's and 1 at the third's (standing in for a trained one): predict answers those classes left to right,
    each boxed around its own bar and none of its neighbours'."""
    run = copy_of(tiny_run, tmp_path / "run")
    train_line_model(run, lines=2, epochs=1, progress=False, log=lambda *_: None)
    lefts, width = (50, 90, 130), 14
    image = bars(*lefts, width=width, touching=True)
    found = find_ink(image, level=False)
    strip = row_strip(found.ink, found.labels, found.regions)
    classes = load_predictor(run).config.classes

    def reads_three(self, strips):
        log_probs = torch.full((1, len(classes) + 1, strips[0].shape[1] // STRIDE), float(np.log(0.01)))
        log_probs[0, 0] = float(np.log(0.9))  # blank everywhere ...
        for c, left in zip((2, 0, 1), lefts):  # ... but at each bar's middle
            column = int(((left + width / 2 - strip.left) * strip.scale + STRIP_PAD) // STRIDE)
            log_probs[0, :, column] = float(np.log(0.01))
            log_probs[0, c + 1, column] = float(np.log(0.9))
        return log_probs

    monkeypatch.setattr(LineModel, "log_probs", reads_three)
    page = tmp_path / "page.png"
    image.save(page)
    result = predict(run, [page], segment=True, progress=False)[0]
    assert [g.top[0][0] for g in result.glyphs] == [classes[2], classes[0], classes[1]]
    edges = [0, *lefts, 400]  # a box may reach into the bridges, never into another bar
    for k, glyph in enumerate(result.glyphs):
        x, _, w, _ = glyph.box
        assert edges[k] + width <= x <= lefts[k] and lefts[k] + width <= x + w <= edges[k + 2]


def test_uniform_class_prior_takes_the_training_prior_out_of_the_line_models_answers(tiny_run):  # noqa: F811
    """The line model read 0.6 for class 0 and 0.4 for class 1 where class 0 has 9 training images for class 1's
    one: under the uniform prior p ~ 0.6 / 9 against 0.4 / 1, so class 1 wins, by 0.4 / (0.4 + 0.6 / 9)."""
    predictor = load_predictor(tiny_run)
    n = len(predictor.config.classes)
    counts = torch.ones(n, dtype=torch.float64)
    counts[0], counts[1] = 9.0, 1.0
    read = np.zeros(n, np.float32)
    read[0], read[1] = 0.6, 0.4
    for wanted, best, p in (("train", 0, 0.6), ("uniform", 1, 0.4 / (0.4 + 0.6 / 9))):
        predictor.use_class_prior(wanted, ClassPrior(counts, "train"))
        glyph = GlyphPrediction(0, (0, 0, 1, 1), np.zeros((28, 28), np.uint8), read=read)
        _read(predictor, [glyph], top_k=2, min_confidence=0.0)
        assert glyph.top[0][0] == predictor.config.classes[best]
        assert glyph.top[0][1] == pytest.approx(p, abs=1e-4)


def bars_read_at(lefts: tuple[int, ...], width: int, reads: dict[int, int], classes: int = 4, touching: bool = False):
    """A row of bars 44 px high, and the line model's log-probabilities for it reading class `reads[x]` at page x
    (blank elsewhere): what row_characters gets, with the row's pieces of ink."""
    found = find_ink(bars(*lefts, width=width, touching=touching), level=False)
    row = find_lines(found.regions)[0]
    strip = row_strip(found.ink, found.labels, row)
    best = [BLANK] * strip.columns
    for x, c in reads.items():
        best[int(((x - strip.left) * strip.scale + STRIP_PAD) // STRIDE)] = c + 1
    return found, row, strip, columns(*best, classes=classes), segment_line(row)


def test_a_letter_standing_apart_read_as_two_stays_one_when_the_piece_model_is_sure():
    """Three separate bars; the model reads two characters over the first (classes 1 and 2), one over each other.
    With the piece model sure (0.99) that the first bar is one character, it is one glyph boxed around the whole bar
    and answering 1 or 2; unsure (0.5), or with no piece model, the two characters it read are cut apart."""
    lefts, width = (50, 150, 250), 40
    found, row, strip, log_probs, pieces = bars_read_at(lefts, width, {55: 1, 85: 2, 170: 3, 270: 0})
    sure = row_characters(found, row, strip, log_probs, pieces, one_character=lambda g: np.full(len(g), np.log(0.99)))
    assert len(sure) == 3
    assert [g.box[0] for g in sure] == list(lefts) and sure[0].box[2] == width
    assert [int(np.argmax(g.probabilities)) for g in sure][1:] == [3, 0] and np.argmax(sure[0].probabilities) in (1, 2)
    unsure = row_characters(found, row, strip, log_probs, pieces, one_character=lambda g: np.full(len(g), np.log(0.5)))
    alone = row_characters(found, row, strip, log_probs, pieces)
    for cut in (unsure, alone):
        assert [int(np.argmax(g.probabilities)) for g in cut] == [1, 2, 3, 0]
        (xa, _, wa, _), (xb, _, wb, _) = cut[0].box, cut[1].box
        assert xa == 50 and xa + wa <= xb and xb + wb == 50 + width  # the first bar, in two


def test_ink_wider_than_any_one_character_is_cut_however_sure_the_piece_model_is():
    """Two touching bars read as two characters, the piece model sure (0.99) each time that the piece is one: 44 px
    wide (one letter height) they may be one letter and are kept whole; 74 px wide (1.7 letter heights, wider than
    MAX_CHARACTER) no letter is, and they are cut, as the piece model, which sees only a 28x28 glyph, cannot tell."""
    sure = lambda g: np.full(len(g), np.log(0.99))  # noqa: E731
    for right, expected in ((80, 1), (110, 2)):
        found, row, strip, log_probs, pieces = bars_read_at((50, right), 14, {57: 1, right + 7: 2}, touching=True)
        assert len(pieces) == 1
        assert len(row_characters(found, row, strip, log_probs, pieces, one_character=sure)) == expected


def test_a_character_read_in_a_gap_is_the_nearest_letters_and_ink_read_as_nothing_is_left_out():
    """The model reads class 2 just right of the first bar (in the gap) and class 3 over the third; nothing over the
    second (a speck, as far as it can tell): two glyphs, boxed around the first and third bars."""
    lefts, width = (50, 150, 250), 30
    found, row, strip, log_probs, pieces = bars_read_at(lefts, width, {90: 2, 265: 3})
    read = row_characters(found, row, strip, log_probs, pieces)
    assert [int(np.argmax(g.probabilities)) for g in read] == [2, 3]
    assert [(g.box[0], g.box[2]) for g in read] == [(50, width), (250, width)]


def test_predict_asks_the_runs_piece_model_about_a_letter_read_as_two(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    """predict --segment hands the run's piece model to the line model's reading: sure, a bar read as two
    characters is one; unsure, two."""
    from glyphkit import preprocess
    from glyphkit.pieces import PieceModel
    from tests.test_pieces import WidthJudge

    monkeypatch.setattr(preprocess, "READ_WHOLE", 0.0)  # every row read whole, though its bars stand apart
    run = copy_of(tiny_run, tmp_path / "run")
    train_line_model(run, lines=2, epochs=1, progress=False, log=lambda *_: None)
    lefts, width = (50, 150, 250), 40
    page = tmp_path / "page.png"
    bars(*lefts, width=width).save(page)
    classes = len(load_predictor(run).config.classes)
    found, row, strip, log_probs, _ = bars_read_at(lefts, width, {55: 1, 85: 2, 170: 3, 270: 0}, classes)
    monkeypatch.setattr(LineModel, "log_probs", lambda self, strips: torch.from_numpy(log_probs)[None].float())
    pieces = PieceModel(WidthJudge(), mean=0.0, std=1 / 255)
    monkeypatch.setattr(PieceModel, "of_run", classmethod(lambda cls, *a, **k: pieces))
    counts = []
    for p in (0.99, 0.5):
        monkeypatch.setattr(PieceModel, "log_one_character", lambda self, g, p=p: np.full(len(g), np.log(p)))
        counts.append(len(predict(run, [page], segment=True, progress=False)[0].glyphs))
    assert counts == [3, 4]


def test_train_lines_without_a_run_is_one_error_line(tmp_path, capsys):
    assert cli.main(["train-lines", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_predict_no_line_model_cuts_the_rows_even_when_the_run_has_one(tiny_run, tmp_path, monkeypatch, capsys):  # noqa: F811
    """`glyphkit predict --segment` reads rows with the run's line model; `--no-line-model` never asks it."""
    run = copy_of(tiny_run, tmp_path / "run")
    train_line_model(run, lines=2, epochs=1, progress=False, log=lambda *_: None)
    asked = []
    real = LineModel.log_probs
    monkeypatch.setattr(LineModel, "log_probs", lambda self, strips: asked.append(len(strips)) or real(self, strips))
    page = tmp_path / "page.png"
    bars(50, 90, 130, touching=True).save(page)
    assert cli.main(["predict", str(run), str(page), "--segment", "--no-progress"]) == 0
    assert asked == [1]  # the page's one row, in one call
    assert cli.main(["predict", str(run), str(page), "--segment", "--no-line-model", "--no-progress"]) == 0
    assert asked == [1]
    assert "Traceback" not in capsys.readouterr().err


def test_06_predict_uses_the_runs_line_model_or_trains_one_only_when_asked(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    """Without a line model the notebook says how to train one and trains nothing, in quick mode too; asked, it
    trains one (small in quick mode); a run that has one keeps it (never trained again, never replaced)."""
    from glyphkit import notebook as nb

    run = copy_of(tiny_run, tmp_path / "run")
    said = []
    for quick in ("", "1"):
        monkeypatch.setenv(nb.QUICK_ENV, quick)
        assert nb.ensure_line_model(run, log=said.append) is None
        assert "glyphkit train-lines" in said[-1] and not (run / LINE_MODEL).exists()
    path = nb.ensure_line_model(run, train=True, log=said.append)
    assert path == run / LINE_MODEL and LineModel.load(path).trained["lines"] <= nb.QUICK_LINES["lines"]
    written = path.read_bytes()
    monkeypatch.setenv(nb.QUICK_ENV, "")
    assert nb.ensure_line_model(run, train=True, log=said.append) == path
    assert path.read_bytes() == written
