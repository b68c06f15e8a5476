"""The piece model (glyphkit.pieces): the truth it learns from, how it changes where touching letters are cut, and
`glyphkit train-pieces` end to end on a tiny run."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from glyphkit import cli
from glyphkit.models import GlyphNet
from glyphkit.pieces import PIECE_MODEL, PieceModel, is_one_character, train_piece_model
from glyphkit.predict import predict
from glyphkit.preprocess import glyphs_from_image
from glyphkit.scans import INK_LEVEL, line_ink, render_line
from tests.test_benchmarks import tiny_run  # noqa: F401 - the fixture
from tests.test_layout import reading, two_bars_touching


def bar_glyph(left: int, right: int) -> np.ndarray:
    """A 28x28 glyph whose strokes are one upright bar over columns left..right-1."""
    glyph = np.zeros((28, 28), np.uint8)
    glyph[4:24, left:right] = 255
    return glyph


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(2, 6))
def test_line_ink_says_where_each_glyphs_strokes_are(seed, count):
    """With gaps between the letters, the columns holding ink are exactly the glyphs' extents, in order."""
    rng = np.random.default_rng(seed)
    glyphs = np.stack(
        [bar_glyph(int(a), int(a) + int(w)) for a, w in zip(rng.integers(2, 12, count), rng.integers(3, 14, count))]
    )
    ink, extents = line_ink(glyphs, rng, gap=(0.2, 0.8))
    columns = np.flatnonzero((ink >= INK_LEVEL * ink.max()).any(0))
    expected = np.concatenate([np.arange(a, b) for a, b in extents])
    assert np.array_equal(columns, expected)
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(extents, extents[1:]))


def test_render_line_draws_what_line_ink_describes():
    """render_line is line_ink photographed: the same random numbers give the same line (the paper test's renders
    did not change when line_ink was taken out of it)."""
    glyphs = np.stack([bar_glyph(8, 14), bar_glyph(10, 20)])
    photo = np.asarray(render_line(glyphs, np.random.default_rng(3)), dtype=float)
    ink, _ = line_ink(glyphs, np.random.default_rng(3))
    assert photo.shape == ink.shape
    dark = photo < photo.mean() - 2 * photo.std()
    assert (ink[dark] > 0.5).mean() > 0.95


def test_a_piece_is_one_character_when_it_covers_one_glyph_and_little_of_its_neighbours():
    extents = [(0, 20), (18, 40), (40, 50)]  # the first two touch (overlap by 2 columns)
    assert is_one_character((0, 0, 20, 30), extents)
    assert is_one_character((1, 0, 18, 30), extents)  # cut a little short: still the letter
    assert is_one_character((18, 0, 22, 30), extents)  # takes the overlap of its neighbour along
    assert not is_one_character((0, 0, 40, 30), extents)  # two letters
    assert not is_one_character((0, 0, 10, 30), extents)  # half a letter
    assert not is_one_character((10, 0, 20, 30), extents)  # half of one and a bit of the next
    assert not is_one_character((18, 0, 32, 30), extents)  # the second letter's middle bar cut through


class WidthJudge(nn.Module):
    """A stand-in piece network: a piece whose ink is at most 12 columns wide is one character (a bar), anything
    wider is not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = (x[:, 0] > 64).any(1).sum(1)  # x is the glyph itself (mean 0, std 1/255)
        one = torch.where(width <= 12, 4.0, -4.0)
        return torch.stack([torch.zeros_like(one), one], 1)


def test_the_piece_model_cuts_two_letters_the_classifier_reads_as_one():
    """Two touching bars, which the classifier reads whole (0.9) a little more confidently than as two bars (0.8
    each), so it alone keeps them one letter. The piece model knows the whole is no one character: two letters."""
    image = two_bars_touching(right=80)
    narrow = lambda glyphs: (glyphs > 64).any(1).sum(1) <= 12  # noqa: E731
    sure_of_the_whole = lambda glyphs: np.where(narrow(glyphs), np.log(0.8), np.log(0.9))  # noqa: E731
    assert len(glyphs_from_image(image, segment=True, split=reading(sure_of_the_whole))) == 1
    pieces = PieceModel(WidthJudge(), mean=0.0, std=1 / 255)
    glyphs = glyphs_from_image(image, segment=True, split=pieces.splitter(sure_of_the_whole))
    assert len(glyphs) == 2
    (xa, _, wa, _), (xb, _, wb, _) = glyphs[0].box, glyphs[1].box
    assert xa == 40 and 60 <= xa + wa <= xb <= 80 and xb + wb == 101  # the left bar, the right, cut on the bridge


def line_of_bars(path):
    """A line of three bars with the middle two touching, saved as a PNG."""
    image = Image.new("L", (260, 140), 240)
    for left in (30, 100, 130):
        image.paste(20, (left, 40, left + 16, 100))
    image.paste(20, (116, 66, 130, 70))
    image.save(path)
    return path


def test_train_pieces_writes_a_model_predict_reads_with(tiny_run, tmp_path, capsys):  # noqa: F811
    assert cli.main(["train-pieces", str(tiny_run), "--lines", "8", "--epochs", "1", "--no-progress"]) == 0
    assert "pieces from 8 lines" in capsys.readouterr().out
    model = PieceModel.load(tiny_run / PIECE_MODEL)
    log_p = model.log_one_character(np.stack([bar_glyph(10, 16), bar_glyph(2, 26)]))
    assert log_p.shape == (2,) and (log_p <= 0).all()
    result = predict(tiny_run, [line_of_bars(tmp_path / "line.png")], segment=True, progress=False)[0]
    assert result.error is None and len(result.glyphs) >= 2


def test_train_pieces_is_reproducible(tiny_run, tmp_path):  # noqa: F811
    """The same seed gives the same piece model."""
    weights = []
    for _ in range(2):
        path = train_piece_model(tiny_run, lines=4, epochs=1, seed=5, progress=False, log=lambda *_: None)
        weights.append(torch.load(path, weights_only=True)["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_damaged_piece_model_is_one_error_line(tiny_run, tmp_path, capsys):  # noqa: F811
    """--segment names the damaged file; reading single glyphs does not need it and still works."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "best_model.pth").write_bytes((tiny_run / "best_model.pth").read_bytes())
    (run / PIECE_MODEL).write_bytes(b"not a model")
    line = line_of_bars(tmp_path / "line.png")
    assert cli.main(["predict", str(run), str(line), "--segment", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and PIECE_MODEL in err and "Traceback" not in err
    assert cli.main(["predict", str(run), str(line), "--no-progress"]) == 0


def test_train_pieces_without_a_run_is_one_error_line(tmp_path, capsys):
    assert cli.main(["train-pieces", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err


def test_the_piece_model_reads_many_pieces_a_batch_at_a_time():
    """Thousands of held-out pieces are read in batches, never all at once, with the answers one call would give."""
    torch.manual_seed(0)
    model = PieceModel(GlyphNet(2, 0.0, True, 8), 0.2, 0.3)
    sizes = []
    model.network.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    glyphs = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    in_batches = model.log_one_character(glyphs, batch_size=4)
    assert sizes == [4, 4, 2]
    assert np.allclose(in_batches, model.log_one_character(glyphs, batch_size=10), atol=1e-5)
    assert model.log_one_character(glyphs[:0]).shape == (0,)


def test_06_predict_uses_the_runs_piece_model_or_trains_one_when_asked(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    """Without a piece model the notebook says how to train one and trains nothing; in quick mode it trains a small
    one; a run that has one keeps it (never trained again, never replaced)."""
    from glyphkit import notebook as nb

    run = tmp_path / "run"
    run.mkdir()
    (run / "best_model.pth").write_bytes((tiny_run / "best_model.pth").read_bytes())
    monkeypatch.delenv(nb.QUICK_ENV, raising=False)
    said = []
    assert nb.ensure_piece_model(run, log=said.append) is None
    assert "glyphkit train-pieces" in said[-1] and not (run / PIECE_MODEL).exists()
    monkeypatch.setenv(nb.QUICK_ENV, "1")
    path = nb.ensure_piece_model(run, log=said.append)
    assert path == run / PIECE_MODEL and PieceModel.load(path).trained["lines"] == nb.QUICK_PIECES["lines"]
    written = path.read_bytes()
    assert nb.ensure_piece_model(run, train=True, log=said.append) == path
    assert path.read_bytes() == written


def test_train_pieces_finds_the_data_as_training_did_when_the_run_names_no_folder(
    tiny_run,  # noqa: F811
    tiny_data_dir,
    tmp_path,
    monkeypatch,
):
    """A run trained with its data found through $GLYPHKIT_DATA_DIR records no data folder; train-pieces then finds
    the data the same way (it looked for a folder named "None")."""
    run = tmp_path / "run"
    run.mkdir()
    state = torch.load(tiny_run / "best_model.pth", weights_only=True)
    state["config"]["data_dir"] = None
    torch.save(state, run / "best_model.pth")
    monkeypatch.setenv("GLYPHKIT_DATA_DIR", str(tiny_data_dir))
    assert cli.main(["train-pieces", str(run), "--lines", "4", "--epochs", "1", "--no-progress"]) == 0
    assert (run / PIECE_MODEL).is_file()
