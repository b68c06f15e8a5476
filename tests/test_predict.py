"""Reading users' images: EMNIST's conversion recipe on drawn glyphs, polarity, alpha, specks, segmentation of a
line, the `predict` command's table and files, and bad inputs (each named, the other files still answered)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from glyphkit import cli
from glyphkit.preprocess import (ImageError, glyphs_from_file, glyphs_from_image, image_files, ink_map,
                                 read_image)
from glyphkit.training import Trainer
from tests.test_evaluation import SYNTH_CLASSES, synthetic_data


def bar_image(size=(120, 200), box=(40, 30, 80, 170), ink=20, paper=235, mode="L") -> Image.Image:
    """A dark vertical bar (a '1' or an 'l') on light paper."""
    image = Image.new(mode, size, paper if mode == "L" else (paper,) * len(mode))
    ImageDraw.Draw(image).rectangle(box, fill=ink if mode == "L" else (ink,) * len(mode))
    return image


def test_a_glyph_comes_out_as_emnist_makes_them():
    glyph = glyphs_from_image(bar_image())[0]
    assert glyph.image.shape == (28, 28) and glyph.image.dtype == np.uint8
    assert glyph.image.max() == 255  # intensities scaled to 0..255, ink bright as glyphkit holds EMNIST
    rows, cols = np.nonzero(glyph.image > 30)
    assert rows.max() - rows.min() + 1 in (23, 24, 25)  # the long side spans ~24 of 28 pixels (2-pixel margins)
    assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 13.5) <= 1
    assert cols.max() - cols.min() + 1 < 12  # the aspect ratio is kept: a bar stays a bar
    assert glyph.box == (40, 30, 41, 141)  # where it was in the image: x, y, w, h


def test_polarity_alpha_and_colour_give_the_same_glyph():
    reference = glyphs_from_image(bar_image())[0].image.astype(int)
    light_on_dark = glyphs_from_image(bar_image(ink=235, paper=20))[0].image.astype(int)
    colour = glyphs_from_image(bar_image(mode="RGB"))[0].image.astype(int)
    drawing = Image.new("RGBA", (120, 200), (0, 0, 0, 0))  # strokes on a transparent canvas
    ImageDraw.Draw(drawing).rectangle((40, 30, 80, 170), fill=(255, 255, 255, 255))
    for other in (light_on_dark, colour, glyphs_from_image(drawing)[0].image.astype(int)):
        assert np.abs(other - reference).max() <= 8
    assert np.array_equal(ink_map(bar_image(), polarity="dark-on-light"), ink_map(bar_image()))  # auto got it right
    told_wrong = ink_map(bar_image(), polarity="light-on-dark")  # the dark bar is then no ink at all
    assert told_wrong[100, 60] < 0.1 < ink_map(bar_image())[100, 60]


def test_specks_and_uneven_light_do_not_move_the_glyph():
    clean = glyphs_from_image(bar_image())[0]
    image = bar_image()
    gradient = np.linspace(0.7, 1.0, image.width)[None, :]  # the left side in shadow
    noisy = np.asarray(image, dtype=np.float32) * gradient
    noisy[5:7, 5:7] = 20  # a speck of dust in the corner
    glyph = glyphs_from_image(Image.fromarray(noisy.astype(np.uint8)))[0]
    assert glyph.box == clean.box
    assert np.abs(glyph.image.astype(int) - clean.image.astype(int)).max() <= 16


def test_a_line_is_split_into_characters_left_to_right_with_dots_kept():
    image = Image.new("L", (400, 160), 240)
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 40, 40, 140), fill=10)  # a bar
    draw.rectangle((120, 70, 140, 140), fill=10)  # the stem of an i ...
    draw.ellipse((122, 40, 138, 56), fill=10)  # ... and its dot, a component of its own
    draw.ellipse((220, 60, 320, 140), outline=10, width=14)  # an o
    glyphs = glyphs_from_image(image, segment=True)
    assert [g.box[0] for g in glyphs] == [20, 120, 220]
    assert glyphs[1].box[1] == 40 and glyphs[1].box[3] == 101  # the i's box holds its dot
    assert len(glyphs_from_image(image)) == 1  # without segment the image is one glyph


def test_bad_images_are_named_and_clear(tmp_path):
    (tmp_path / "notes.png").write_text("not an image at all")
    Image.new("L", (50, 50), 200).save(tmp_path / "blank.png")
    bar_image().save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="notes.png: not an image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageError, match="blank.png: the image is blank"):
        glyphs_from_file(tmp_path / "blank.png")
    with pytest.raises(ImageError, match="big.png: 120x200 pixels is more than the 1,000"):
        read_image(tmp_path / "big.png", max_pixels=1000)
    with pytest.raises(ImageError, match="nowhere: no such file or folder"):
        image_files([tmp_path / "nowhere"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    config = Config(split="synth", model="glyphnet", width=8, epochs=1, batch_size=32, device="cpu")
    Trainer(config, synthetic_data(SYNTH_CLASSES), run_dir, progress=False, log=lambda *_: None, max_batches=2).fit()
    return run_dir


from glyphkit.config import Config  # noqa: E402 - after the helpers above, for the fixture


def test_predict_reads_a_folder_and_keeps_going_past_bad_files(trained_run, tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    bar_image().save(folder / "one.png")
    bar_image(box=(20, 60, 100, 90)).save(folder / "sub" / "dash.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.new("L", (30, 30), 255).save(folder / "empty.png")
    code = cli.main(["predict", str(trained_run), str(folder), "--top-k", "3", "--output", str(tmp_path / "p.csv"),
                     "--save-crops", str(tmp_path / "crops"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2  # some files could not be read ...
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors) and "Traceback" not in err
    assert "broken.png" in errors[0] and "empty.png" in errors[1]
    assert "one.png: " in out and "dash.jpg: " in out  # ... and the others still got their answers
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["one.png", "dash.jpg"]
    assert set(rows[0]) >= {"file", "prediction", "confidence", "top1", "p1", "top3", "p3"}
    assert rows[0]["prediction"] == rows[0]["top1"] and rows[0]["prediction"] in SYNTH_CLASSES
    assert 0 < float(rows[0]["p3"]) <= float(rows[0]["p1"]) == float(rows[0]["confidence"]) <= 1
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == ["dash.png", "one.png"]
    assert np.asarray(Image.open(tmp_path / "crops" / "one.png")).shape == (28, 28)


def test_predict_segment_writes_one_row_per_character(trained_run, tmp_path, capsys):
    image = Image.new("L", (300, 120), 240)
    draw = ImageDraw.Draw(image)
    for x in (20, 110, 200):
        draw.rectangle((x, 20, x + 20, 100), fill=10)
    image.save(tmp_path / "line.png")
    assert cli.main(["predict", str(trained_run), str(tmp_path / "line.png"), "--segment", "--output",
                     str(tmp_path / "p.json"), "--no-progress"]) == 0
    assert "(3 characters" in capsys.readouterr().out
    saved = json.loads((tmp_path / "p.json").read_text())
    assert [r["index"] for r in saved["predictions"]] == [0, 1, 2]
    assert [r["x"] for r in saved["predictions"]] == [20, 110, 200]
    assert {"file", "index", "x", "y", "w", "h", "prediction", "confidence"} <= set(saved["predictions"][0])
    assert saved["files"][0]["text"] == "".join(r["prediction"] for r in saved["predictions"])


def test_predict_without_images_or_with_a_bad_output_name_is_one_error_line(trained_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["predict", str(trained_run), str(tmp_path / "empty"), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("error: no images in")
    bar_image().save(tmp_path / "one.png")
    assert cli.main(["predict", str(trained_run), str(tmp_path / "one.png"), "--output", str(tmp_path / "p.txt"),
                     "--no-progress"]) == 2
    assert "must end in .csv or .json" in capsys.readouterr().err
