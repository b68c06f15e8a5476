"""Reading a page: rows of writing, ruled and squared paper, shadows, a turned photo, and blank paper.

The pages are drawn here with Pillow's own font (not handwriting), so where each character is and which row it is on
is known from the drawing, not from the code under test.
"""

import io
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from glyphkit import scans
from glyphkit.layout import paper_lines, runs_along_rows, segment_line, text_of, without_paper_lines
from glyphkit.preprocess import ImageError, Splitter, find_ink, glyphs_from_image, glyphs_of_files, row_medians

CHAR = 64  # the font size the pages are written in
PAPER, INK = (245, 245, 238), (25, 25, 70)
LETTERS = "ACEFHKLMNRSTUVWXYZ"  # one stroke each in Pillow's font (no dot, no separate accent)


def page(
    rows: list[str],
    size: tuple[int, int] = (900, 560),
    ruled: int = 0,
    squared: int = 0,
    margin: bool = False,
    shadow: bool = False,
    line_colour: tuple[int, int, int] = (150, 180, 230),
    line_width: int = 2,
) -> tuple[Image.Image, list[tuple[int, tuple[int, int, int, int]]]]:
    """A page with `rows` written on it, and (row, box x0, y0, x1, y1) of each character as drawn."""
    image = Image.new("RGB", size, PAPER)
    draw = ImageDraw.Draw(image)
    top, left, spacing = 50, 100, int(1.8 * CHAR)
    for y in range(top + CHAR, size[1], ruled) if ruled else ():  # the characters sit on these lines
        draw.line((0, y, size[0], y), fill=line_colour, width=line_width)
    for step in (squared,) if squared else ():
        for y in range(step // 2, size[1], step):
            draw.line((0, y, size[0], y), fill=line_colour, width=line_width)
        for x in range(step // 2, size[0], step):
            draw.line((x, 0, x, size[1]), fill=line_colour, width=line_width)
    if margin:
        draw.line((70, 0, 70, size[1]), fill=(225, 90, 90), width=2)
    font = ImageFont.load_default(size=CHAR)
    drawn = []
    for number, text in enumerate(rows):
        x, y = left, top + number * spacing
        for char in text:
            draw.text((x, y), char, fill=INK, font=font)
            alone = Image.new("L", size, 0)  # the character's own ink, for its box
            ImageDraw.Draw(alone).text((x, y), char, fill=255, font=font)
            box = alone.point(lambda v: 255 if v >= 128 else 0).getbbox()
            drawn.append((number, box))
            x = box[2] + (box[2] - box[0]) // 2
    if shadow:  # a soft-edged shadow over the right part of the page, half the light there
        pixels = np.asarray(image, dtype=np.float32)
        ys, xs = np.mgrid[: size[1], : size[0]]
        shade = 1 / (1 + np.exp(-(xs - 0.55 * size[0] - 0.3 * (ys - size[1] / 2)) / 6))
        image = Image.fromarray((pixels * (1 - 0.5 * shade[..., None])).astype(np.uint8))
    return image, drawn


def read(image: Image.Image) -> list:
    return glyphs_from_image(image, segment=True)


def test_a_page_of_two_rows_is_read_row_by_row_each_left_to_right():
    image, drawn = page(["HELLO", "WORLD"])
    glyphs = read(image)
    assert [g.line for g in glyphs] == [row for row, _ in drawn] == [0] * 5 + [1] * 5
    for glyph, (_, (x0, y0, x1, y1)) in zip(glyphs, drawn):  # each box is the character drawn there
        x, y, w, h = glyph.box
        assert abs(x - x0) <= 3 and abs(y - y0) <= 3 and abs(x + w - x1) <= 3 and abs(y + h - y1) <= 3


def test_stacked_letters_of_two_rows_stay_in_their_rows():
    """Letters straight above each other on two rows are two characters, not one (the old rule joined
    components that overlap horizontally, so a page read as one line of stacked pairs)."""
    glyphs = read(page(["TXT", "TXT"])[0])
    assert [g.line for g in glyphs] == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    "paper",
    [dict(ruled=115, margin=True), dict(squared=40), dict(squared=32, line_width=1), dict(shadow=True)],
    ids=["ruled with a margin", "squared", "fine squares", "a shadow"],
)
def test_paper_lines_and_shadows_are_not_ink(paper):
    """On ruled or squared paper, or under a shadow, the characters are found and look as they do on plain paper."""
    plain = read(page(["HELLO", "WORLD"])[0])
    glyphs = read(page(["HELLO", "WORLD"], **paper)[0])
    assert [g.line for g in glyphs] == [g.line for g in plain]
    for glyph, reference in zip(glyphs, plain):  # (two different letters correlate about 0.3)
        assert np.corrcoef(glyph.image.ravel(), reference.image.ravel())[0, 1] > 0.9


@pytest.mark.parametrize(
    "paper",
    [dict(), dict(ruled=60, margin=True), dict(squared=40), dict(shadow=True), dict(ruled=60, shadow=True)],
    ids=["plain", "ruled", "squared", "shadowed", "ruled and shadowed"],
)
def test_blank_paper_is_no_handwriting_and_never_a_character(paper):
    image, _ = page([], **paper)
    for segment in (True, False):
        with pytest.raises(ImageError, match="no handwriting found|the image is blank"):
            glyphs_from_image(image, segment=segment, source="blank.png")


def test_a_printed_line_broken_into_pieces_is_still_one_paper_line():
    """A faint printed line breaks up in a photo's noise: its pieces (here 17% of the page each, 3% apart), none
    long enough to be a line alone, are one line."""
    mask = np.zeros((400, 1000), dtype=bool)
    for start in range(0, 1000, 200):
        mask[200:202, start : start + 170] = True
    found, thickness = paper_lines(mask)
    assert found[mask].mean() > 0.95 and not found[~mask].any() and thickness == 2


def faint_grid(rows: list[str], weak: float = 0.12) -> Image.Image:
    """Squared paper whose printed lines fade in and out along their length (uneven printing, uneven light): dark
    for a fifth of every 150 pixels, faint (taking `weak` of the paper's light) for the rest."""
    image, _ = page(rows, size=(1000, 800))
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    fade = lambda n: np.where(np.arange(n) % 150 < 30, 0.3, weak)  # noqa: E731
    for y in range(20, 800, 40):
        grey[y : y + 2] *= 1 - fade(1000)[None, :]
    for x in range(20, 1000, 40):
        grey[:, x : x + 2] *= 1 - fade(800)[:, None]
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))


def test_a_blank_grid_whose_lines_fade_in_and_out_is_no_handwriting_but_writing_on_it_is_read():
    """At the ink's level such a grid is a crowd of dashes and crosses, none of them a line (it was read as 150
    characters); at a fainter level its lines are whole, and what is left of them is taken out."""
    with pytest.raises(ImageError, match="no handwriting found"):
        read(faint_grid([]))
    assert [g.line for g in read(faint_grid(["HELLO", "WORLD"]))] == [0] * 5 + [1] * 5


def test_textured_paper_is_no_handwriting():
    rng = np.random.default_rng(0)
    texture = 232 + rng.normal(0, 6, (500, 700))  # paper grain
    for y, x in rng.integers(0, (500, 700), size=(40, 2)):  # and a few specks of dust
        texture[y : y + 2, x : x + 2] = 120
    with pytest.raises(ImageError, match="no handwriting found"):
        read(Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8)))


@pytest.mark.parametrize("shaded", [0.3, 0.45, 0.6])
def test_writing_beside_a_shadow_that_holds_most_of_the_border_is_dark_ink(shaded):
    """A shadow across the right half of a wide photo holds more than half of its border: the border's median tone
    is the shadow's, and the lit paper departs from it most. The ink is still the dark writing in the light (it
    was read as light ink on dark paper, the lit paper as one character)."""
    size = (1000, 300)
    plain = read(page(["HELLO"], size=size)[0])
    image = np.asarray(page(["HELLO"], size=size)[0], dtype=np.float32)
    xs = np.arange(size[0])[None, :]
    shade = shaded / (1 + np.exp(-(xs - 480) / 6))  # a soft straight edge, right of the writing
    border = np.concatenate([shade[0].repeat(2), np.full(2 * size[1], shade[0, -1]), np.full(2 * size[1], 0)])
    assert np.mean(border > shaded / 2) > 0.5  # the shadow holds most of the border
    image *= 1 - shade[..., None]
    glyphs = read(Image.fromarray(image.astype(np.uint8)))
    assert len(glyphs) == len(plain) == 5
    for glyph, reference in zip(glyphs, plain):
        assert np.corrcoef(glyph.image.ravel(), reference.image.ravel())[0, 1] > 0.9


def noisy_photo(image: Image.Image, seed: int) -> Image.Image:
    """`image` as a cheap camera takes it in dim light: grey, darker to one side, grainy (3% noise), a little soft,
    JPEG-compressed."""
    rng = np.random.default_rng(seed)
    grey = 0.85 * np.asarray(image.convert("L"), dtype=np.float32) / 255
    grey = grey * np.linspace(0.85, 1.0, grey.shape[1])[None, :] + rng.normal(0, 0.03, grey.shape)
    soft = Image.fromarray(np.clip(grey * 255, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.3))
    buffer = io.BytesIO()
    soft.save(buffer, format="JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("seed", range(3))
def test_a_grainy_photo_of_blank_paper_is_no_handwriting_but_writing_on_it_is_read(seed):
    """The grain of a noisy photo reaches the ink level in a few pixels; read as ink it became dozens of
    characters. Writing on the same photo stands far out of the grain and is read."""
    with pytest.raises(ImageError, match="no handwriting found"):
        read(noisy_photo(page([])[0], seed))
    assert [g.line for g in read(noisy_photo(page(["HELLO"])[0], seed))] == [0] * 5


def test_blank_ruled_photos_with_a_margin_line_are_no_handwriting():
    """A faint ruled page leaves a few specks of its red margin line at the ink's level: a column of specks, which
    was measured as a page turned by several degrees; turned back, the margin was no longer a straight printed line
    and was read as an L or a 1 (4 of the first 40 of these photos)."""
    for seed in range(24):
        with pytest.raises(ImageError, match="no handwriting found"):
            glyphs_from_image(scans.render_blank("ruled", np.random.default_rng(seed)), segment=True)


def test_blank_photos_with_a_soft_shadow_are_no_handwriting():
    """A soft shadow across blank paper: its edge is neither dark ink nor light (it was read as chalk on a board,
    light on dark, in 2 of these 24), and where the shadow reaches the image's edge its runs are no strokes (taken
    as strokes a hundred pixels wide, the paper's light was estimated too coarsely, and the shade became ink)."""
    for seed in range(24):
        with pytest.raises(ImageError, match="no handwriting found"):
            glyphs_from_image(scans.render_blank("shadowed", np.random.default_rng(seed)), segment=True)


def test_a_blank_page_in_a_batch_is_its_own_error_and_the_others_are_read(tmp_path):
    page([], ruled=60)[0].save(tmp_path / "blank.png")
    page(["HELLO"])[0].save(tmp_path / "note.png")
    answers = {
        f.name: (len(found), error) for f, found, error in glyphs_of_files(sorted(tmp_path.iterdir()), segment=True)
    }
    assert answers["note.png"] == (5, None)
    assert answers["blank.png"][0] == 0 and "blank.png: no handwriting found" in answers["blank.png"][1]


@pytest.mark.parametrize("angle", [-7, 5, 9])
def test_a_turned_photo_of_a_page_is_levelled_and_boxes_stay_in_its_pixels(angle):
    image, drawn = page(["HELLO", "WORLD", "AGAIN"], size=(900, 640))
    turned = image.rotate(angle, expand=True, fillcolor=PAPER, resample=Image.Resampling.BICUBIC)
    glyphs = read(turned)
    assert [g.line for g in glyphs] == [row for row, _ in drawn]
    ink = np.asarray(turned.convert("L")) < 128
    for glyph in glyphs:  # every box holds ink of the turned photo, and its middle is near some ink
        x, y, w, h = glyph.box
        assert 0 <= x and 0 <= y and x + w <= turned.width and y + h <= turned.height
        assert ink[y : y + h, x : x + w].mean() > 0.05


def ring_and_bar() -> tuple[np.ndarray, np.ndarray]:
    """An 'O' and an 'l' as EMNIST draws glyphs (28x28, bright ink on black), for scans.render_page."""
    ys, xs = np.mgrid[0:28, 0:28]
    radius = np.hypot(ys - 13.5, xs - 13.5)
    ring = np.where((radius > 6) & (radius < 10), 255, 0)
    bar = np.zeros((28, 28), np.uint8)
    bar[3:25, 12:16] = 255
    return ring.astype(np.uint8), bar


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("turn", [-8.0, -6.0, 6.0, 8.0])
@pytest.mark.parametrize("paper", scans.PAGE_PAPERS)
def test_a_page_photographed_turned_is_found_turned_by_as_much(paper, turn, seed):
    """Short rows of writing line up only a little better at the page's real tilt than level; counted in bins
    of a fractional number of pixel rows, a level page's score was inflated enough to win, and a page turned 6
    degrees was read as it was. The page's own slope and waves are under a degree (scans.PAGE_SLOPE, PAGE_WAVE): 2
    degrees leaves room for them."""
    ring, bar = ring_and_bar()
    lines = [np.stack([(ring, bar)[(row + n) % 2] for n in range(count)]) for row, count in enumerate((5, 4, 6, 5))]
    photo = scans.render_page(lines, np.random.default_rng(seed), paper, turn=turn)
    assert find_ink(photo).angle == pytest.approx(turn, abs=2.0)


def on_desk(sheet: Image.Image, tone: int, turn: float) -> Image.Image:
    """A photo of `sheet` lying on a desk of grey `tone`, turned `turn` degrees on it, the desk showing all round."""
    sheet = sheet.rotate(turn, expand=True, fillcolor=(tone,) * 3, resample=Image.Resampling.BICUBIC)
    margin = sheet.width // 6
    desk = Image.new("RGB", (sheet.width + 2 * margin, sheet.height + 2 * margin), (tone,) * 3)
    desk.paste(sheet, (margin, margin))
    return desk


@pytest.mark.parametrize("tone", [60, 140])
@pytest.mark.parametrize("turn", [0.0, 4.0])
def test_a_page_lying_on_a_darker_desk_is_dark_writing_read_row_by_row(tone, turn):
    """The desk fills the photo's outer band, so the sheet looked like light ink on a dark board and the whole note
    was read as a character or two; the sheet is paper, its writing dark, and the desk holds no characters."""
    image, drawn = page(["HELLO", "WORLD", "AGAIN"], size=(900, 640))
    glyphs = read(on_desk(image, tone, turn))
    assert [g.line for g in glyphs] == [row for row, _ in drawn]


@pytest.mark.parametrize("tone", [60, 140])
@pytest.mark.parametrize("turn", [0.0, 3.0])
def test_a_blank_sheet_lying_on_a_desk_is_no_handwriting(tone, turn):
    """Lighter than the desk, a blank sheet looked like one huge light letter on a board and was read as one."""
    sheet, _ = page([], size=(900, 640))
    with pytest.raises(ImageError, match="no handwriting found"):
        read(on_desk(sheet, tone, turn))


@pytest.mark.parametrize("letters", [5, 12])
def test_chalk_letters_on_a_board_are_light_ink(letters):
    """Light strokes on a dark board, however many, are ink: none of them is a sheet of paper."""
    board = Image.new("RGB", (900, 640), (40, 60, 50))
    draw = ImageDraw.Draw(board)
    font = ImageFont.load_default(size=CHAR)
    for n in range(letters):
        draw.text((60 + (n % 6) * 130, 60 + (n // 6) * 200), LETTERS[n], fill=(230, 230, 220), font=font)
    glyphs = read(board)
    assert len(glyphs) == letters


def test_a_large_photo_is_read_and_its_boxes_are_in_its_own_pixels():
    image, drawn = page(["HELLO", "WORLD"])
    large = image.resize((image.width * 3, image.height * 3), Image.Resampling.BICUBIC)  # 4.5 megapixels
    glyphs = read(large)
    assert len(glyphs) == len(drawn)
    for glyph, (_, (x0, y0, x1, _)) in zip(glyphs, drawn):
        x, y, w, h = glyph.box
        assert abs(x - 3 * x0) <= 9 and abs(y - 3 * y0) <= 9 and abs(x + w - 3 * x1) <= 9


@settings(max_examples=12, deadline=None)
@given(
    text=st.text(alphabet=LETTERS, min_size=1, max_size=6),
    spacing=st.integers(90, 140),
    width=st.integers(1, 3),
    colour=st.sampled_from([(150, 180, 230), (120, 120, 120), (200, 200, 200), (230, 150, 150)]),
)
def test_any_ruling_leaves_every_character(text, spacing, width, colour):
    image, drawn = page([text], size=(700, 300), ruled=spacing, line_colour=colour, line_width=width)
    assert len(read(image)) == len(drawn) == len(text)


def test_segmenting_many_specks_assigns_each_to_one_character():
    """A row with thousands of small fragments: each lands in exactly one character, the nearest."""

    class Region:  # the two fields segment_line reads from skimage's regionprops
        def __init__(self, y0, x0, y1, x1):
            self.bbox = (y0, x0, y1, x1)

    characters = [Region(0, 100 * i, 50, 100 * i + 40) for i in range(50)]
    specks = [Region(20, x, 22, x + 2) for x in range(0, 5000, 3)]
    found = segment_line(characters + specks)
    assert len(found) == 50
    assert sum(len(c) for c in found) == 50 + len(specks)
    gap = lambda speck, k: max(0, 100 * k - speck.bbox[3], speck.bbox[1] - (100 * k + 40))  # noqa: E731
    for i, character in enumerate(found):  # a speck joins a character nearest to it (no other is closer)
        assert characters[i] in character
        for speck in (r for r in character if r is not characters[i]):
            assert gap(speck, i) == min(gap(speck, k) for k in range(50))


def test_text_has_one_line_per_row_of_writing():
    assert text_of([(0, "H"), (0, "i"), (1, "y"), (1, "o"), (2, "u")]) == "Hi\nyo\nu"
    assert text_of([]) == ""


def two_bars_touching(right: int = 110) -> Image.Image:
    """Two bars (say an l and a 1) joined by a thin bridge: one piece of ink holding two letters. The bars are 61
    pixels tall; the right one starts at `right`."""
    image = Image.new("L", (200, 140), 240)
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 60, 100), fill=20)
    draw.rectangle((right, 40, right + 20, 100), fill=20)
    draw.rectangle((60, 68, right, 71), fill=20)  # the bridge where they touch
    return image


def reading(score) -> Splitter:
    """A Splitter whose scorer (standing in for the model) answers from the candidate pieces' 28x28 glyphs."""
    return Splitter(lambda glyphs: score(np.stack([g.image for g in glyphs])))


def narrow(glyphs: np.ndarray) -> np.ndarray:
    """Ink columns of each 28x28 glyph: a bar alone is narrow, the two bars together are wide."""
    return (glyphs > 64).any(1).sum(1) <= 12


def test_touching_letters_come_apart_where_the_pieces_read_best():
    """A scorer (standing in for the model) sure of single bars and unsure of anything wider: the piece is cut in
    two, at the bridge, and each half is one bar."""
    image = two_bars_touching()
    assert len(glyphs_from_image(image, segment=True)) == 1  # without a model to ask, touching letters are one
    confident_of_bars = lambda glyphs: np.where(narrow(glyphs), np.log(0.95), np.log(0.2))  # noqa: E731
    glyphs = glyphs_from_image(image, segment=True, split=reading(confident_of_bars))
    assert len(glyphs) == 2
    (xa, _, wa, _), (xb, _, wb, _) = glyphs[0].box, glyphs[1].box
    assert 38 <= xa <= 42 and 60 <= xa + wa <= xb <= 111  # the left bar, then the right, cut on the bridge
    assert 129 <= xb + wb <= 133


def test_the_pieces_of_a_page_are_read_in_one_batch():
    """Two pairs of touching bars on one line: every candidate piece of both goes to the scorer in one call (a network
    called once per piece of ink spends more on the calls than on the glyphs), and both pairs come apart."""
    image = Image.new("L", (400, 140), 240)
    image.paste(two_bars_touching(), (0, 0))
    image.paste(two_bars_touching(), (200, 0))
    calls = []

    def confident_of_bars(glyphs):
        calls.append(len(glyphs))
        return np.where(narrow(glyphs), np.log(0.95), np.log(0.2))

    glyphs = glyphs_from_image(image, segment=True, split=reading(confident_of_bars))
    assert len(calls) == 1 and len(glyphs) == 4


def test_a_wide_letter_read_with_confidence_stays_whole():
    """Ink as wide as it is tall (a W, an m), which the scorer reads whole with confidence and its pieces only
    fairly: halves at 0.8 each (log 0.64 in all) lose to the whole at 0.9, and a letter's height of width is a
    likely width for one letter."""
    sure_of_the_whole = lambda glyphs: np.where(narrow(glyphs), np.log(0.8), np.log(0.9))  # noqa: E731
    assert len(glyphs_from_image(two_bars_touching(right=80), segment=True, split=reading(sure_of_the_whole))) == 1


def test_a_letter_wider_than_most_is_not_read_as_two_narrower_ones():
    """A letter 1.3 heights wide (a wide e), read whole at 0.95 and as two halves at 0.7 each: each extra
    character has to earn its place, so it stays one (on the paper test's pages such an e was read as C3)."""
    sure_of_the_whole = lambda glyphs: np.where((glyphs > 64).any(1).sum(1) >= 20, np.log(0.95), np.log(0.7))  # noqa: E731
    assert len(glyphs_from_image(two_bars_touching(right=99), segment=True, split=reading(sure_of_the_whole))) == 1


def three_rings_touching() -> Image.Image:
    """Three rings (say o, o, o), each as wide as most letters are (about three quarters of their height), each
    touching the next by a short bridge: one piece of ink, two and a half letter heights wide."""
    image = Image.new("L", (260, 140), 240)
    draw = ImageDraw.Draw(image)
    for left in (40, 100, 160):
        draw.rectangle((left, 40, left + 45, 100), outline=20, width=6)
    for left in (85, 145):
        draw.rectangle((left, 66, left + 15, 72), fill=20)
    return image


def test_touching_letters_are_split_even_when_the_model_reads_them_whole_with_confidence():
    """The model reads two or three touching letters as one wide letter (a W, an M) about as confidently as it
    reads each alone. A scorer sure of everything (0.9 for any piece): the width decides, and ink two and a half
    letter heights wide is no one letter, so it comes apart into three letter-wide pieces."""
    sure_of_anything = lambda glyphs: np.full(len(glyphs), np.log(0.9))  # noqa: E731
    glyphs = glyphs_from_image(three_rings_touching(), segment=True, split=reading(sure_of_anything))
    assert len(glyphs) == 3
    for glyph, left in zip(glyphs, (40, 100, 160)):
        x, _, w, _ = glyph.box
        assert left - 15 <= x <= left and left + 45 <= x + w <= left + 60  # its ring whole, and bridge, no more


@pytest.mark.parametrize("side", [28, 56, 128])
@pytest.mark.parametrize("width", [2, 4])
@pytest.mark.parametrize("polarity", ["dark ink on white", "white ink on black"])
def test_a_thin_letter_filling_its_own_image_is_a_character_not_a_paper_line(side, width, polarity):
    """A glyph folder's image of an l or a 1 is one straight stroke from edge to edge, as a printed line is; in an
    image that small it is the character (a training folder once stopped on such an l as "no handwriting")."""
    paper, ink = (255, 0) if polarity == "dark ink on white" else (0, 255)
    image = Image.new("L", (side, side), paper)
    ImageDraw.Draw(image).line((0.46 * side, 0.08 * side, 0.54 * side, 0.92 * side), fill=ink, width=width)
    for segment in (True, False):
        (glyph,) = glyphs_from_image(image, segment=segment, source="l.png")
        assert glyph.image.max() > 0.5


def test_a_tiny_image_with_only_a_faint_mark_is_no_handwriting():
    """Under 100 pixels the ink-pixel count asked for rounds down; a mark fainter than any ink is still none."""
    image = Image.new("L", (9, 9), 240)
    ImageDraw.Draw(image).line((4, 1, 4, 7), fill=204)  # takes 15% of the paper's light: under MIN_CONTRAST
    with pytest.raises(ImageError, match="no handwriting found"):
        glyphs_from_image(image, source="tiny.png")


def test_writing_on_a_printed_line_stays_and_does_not_hide_the_line():
    """A thick stroke lying along a grid line for half its length (a 1 drawn on the line) neither makes the line
    too thick to be one (the rest of the line stayed as ink), nor goes with the line (the stroke was cut out)."""
    mask = np.zeros((300, 300), dtype=bool)
    mask[:, 150:152] = True  # the printed line, 2 px
    mask[100:102, :] = True  # another, across it
    mask[60:240, 144:158] = True  # the stroke on it, 14 px wide
    stroke = np.zeros_like(mask)
    stroke[60:240, 144:158] = True
    writing, lines = without_paper_lines(mask)
    assert (writing == stroke).all()  # the whole stroke, and nothing of either line
    assert lines[:55, 150:152].all() and lines[245:, 150:152].all()


def test_a_piece_of_squared_paper_narrower_than_a_page_loses_its_grid_both_ways():
    """One character photographed on squared paper, 170 px wide: the grid's vertical lines show it is paper, so its
    horizontal lines, shorter than a page is wide, are printed lines too (they were read as the letter's strokes)."""
    plain = glyphs_from_image(page(["A"], size=(170, 300))[0])
    squared = glyphs_from_image(page(["A"], size=(170, 300), squared=40)[0])
    assert len(squared) == 1
    assert np.corrcoef(squared[0].image.ravel(), plain[0].image.ravel())[0, 1] > 0.9


def test_a_narrow_image_of_one_straight_stroke_is_writing_not_a_paper_line():
    """An image under a page's size with no printed line the long way (a tightly cropped 1 in a glyph folder): its
    stroke is writing, though it runs from edge to edge."""
    mask = np.zeros((120, 40), dtype=bool)
    mask[:, 18:21] = True
    found, _ = paper_lines(mask)
    assert not found.any()


@pytest.mark.parametrize(
    "corner", [(0, 0), (0, 1), (1, 0), (1, 1)], ids=["top left", "top right", "bottom left", "bottom right"]
)
def test_a_wedge_of_shadow_in_a_corner_is_not_part_of_the_letter(corner):
    """A shadow's edge that turns into a corner of a small photo is too sharp for the paper's light to follow, and
    was left as a solid wedge of ink that the letter's box took in. The letter now reads as on plain paper."""
    image, _ = page(["A"], size=(300, 260))
    plain = glyphs_from_image(image)
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    ys, xs = np.mgrid[:260, :300]
    ys, xs = (259 - ys if corner[0] else ys), (299 - xs if corner[1] else xs)
    wedge = Image.fromarray((255 * (xs / 90 + ys / 70 < 1)).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    shaded = grey * (1 - 0.45 * np.asarray(wedge, dtype=np.float32) / 255)
    glyphs = glyphs_from_image(Image.fromarray(shaded.astype(np.uint8)))
    assert len(glyphs) == 1
    assert np.corrcoef(glyphs[0].image.ravel(), plain[0].image.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("letter", ["A", "S", "7"])
def test_a_speck_on_the_image_edge_is_no_part_of_one_letter(letter):
    """A shadow's edge leaves slivers of shade where it meets the image's edge; taken into the letter's box they
    shrank the glyph. A letter alone in its image reads the same with such a sliver on an edge or in a corner."""
    image, _ = page([letter], size=(260, 200))
    grey = np.asarray(image.convert("L")).copy()
    alone = glyphs_from_image(Image.fromarray(grey))[0].image
    for rows, cols in [(slice(80, 100), slice(257, 260)), (slice(197, 200), slice(0, 16))]:  # slivers, as a shadow's
        specked = grey.copy()
        specked[rows, cols] = 40
        glyphs = glyphs_from_image(Image.fromarray(specked))
        assert len(glyphs) == 1
        assert np.corrcoef(glyphs[0].image.ravel(), alone.ravel())[0, 1] > 0.95


def test_a_solid_mark_cropped_to_its_ink_is_read_though_it_looks_like_shade():
    """A thick bar (a dash) cropped to its width reaches two edges and is solid and thicker than a stroke, as a
    shadow's wedge is; it is all the ink there is, so it is read, not refused."""
    bar = np.full((40, 60), 240, dtype=np.uint8)
    bar[16:24] = 30
    assert len(glyphs_from_image(Image.fromarray(bar))) == 1


def test_a_small_blurred_letter_is_no_bolder_than_the_same_letter_drawn_large():
    """A letter 15 px high in a photo is magnified six times to NIST's scale, its blurred edge with it: without
    dropping that edge its 28x28 glyph held 15% more ink than the same letter's drawn large (under 10% with)."""
    large, _ = page(["A"], size=(300, 200))
    small = large.resize((100, 66), Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(0.6))
    ink_large = glyphs_from_image(large)[0].image.astype(float).mean()
    ink_small = glyphs_from_image(small)[0].image.astype(float).mean()
    assert ink_small <= 1.1 * ink_large


def tiny_jpeg(letter: str, high: int) -> tuple[Image.Image, Image.Image]:
    """A letter drawn large, and the same letter `high` pixels high with a little paper round it, as JPEG quality 30."""
    large, _ = page([letter], size=(260, 200))
    grey = np.asarray(large.convert("L"))
    ys, xs = np.nonzero(grey < 128)
    crop = Image.fromarray(grey[max(0, ys.min() - 12) : ys.max() + 12, max(0, xs.min() - 12) : xs.max() + 12])
    scale = high / (ys.max() - ys.min())
    small = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.BOX)
    saved = io.BytesIO()
    small.save(saved, "JPEG", quality=30)
    return large, Image.open(io.BytesIO(saved.getvalue()))


def test_a_tiny_jpeg_letter_reads_like_the_same_letter_drawn_large():
    """A letter 14-20 px high saved as a poor JPEG: its 28x28 glyph should look like the large letter's. Read at its
    own pixels, its crop was a pixel off either way (a sixth of its width) and the glyphs correlated 0.938 on
    average with the large ones; read enlarged (preprocess.TINY_IMAGE), 0.960."""
    similarity = []
    for letter, high in itertools.product("0O1I5S8BDX", (14, 16, 18, 20)):
        large, small = tiny_jpeg(letter, high)
        (big,), (tiny,) = glyphs_from_image(large), glyphs_from_image(small)
        similarity.append(np.corrcoef(big.image.ravel(), tiny.image.ravel())[0, 1])
    assert np.mean(similarity) > 0.955
    assert min(similarity) > 0.88


@pytest.mark.parametrize("letter", ["O", "A", "H", "W", "X", "0", "8", "4"])
def test_a_bold_letter_cropped_tight_to_its_ink_is_read_as_dark_ink(letter):
    """A glyph folder's images are often cropped to the ink: bold strokes then take much of the image's edge, which
    looked like a shadow across it, and most such letters were read as light ink on dark paper (or refused)."""
    image, _ = page([letter], size=(260, 200))
    bold = np.asarray(image.convert("L").filter(ImageFilter.MinFilter(3)))
    ys, xs = np.nonzero(bold < 128)
    tight = Image.fromarray(bold[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    with_margin = glyphs_from_image(Image.fromarray(bold))[0].image
    glyphs = glyphs_from_image(tight)
    assert len(glyphs) == 1
    assert np.corrcoef(glyphs[0].image.ravel(), with_margin.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("letter", ["O", "W", "X", "0", "S", "5"])
def test_a_small_scanned_letter_cropped_to_its_ink_is_read(letter):
    """A glyph folder cut from scanned forms: letters 40 px high, cropped to their ink, with a scan's paper tone,
    noise, blur and JPEG. Such an image is a tile or two of paper, half strokes; its strokes were taken for the
    paper's noise, and most of these letters were refused as blank. They read as with a margin round them."""
    image, _ = page([letter], size=(260, 200))
    bold = np.asarray(image.convert("L").filter(ImageFilter.MinFilter(3)))
    ys, xs = np.nonzero(bold < 128)
    crop = Image.fromarray(255 - bold[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    small = crop.resize((round(crop.width * 40 / crop.height), 40), Image.Resampling.BOX)
    ink = np.asarray(small, dtype=np.float32) / 255
    for seed in range(4):
        tight = glyphs_from_image(scans.degrade(ink, np.random.default_rng(seed)))
        with_margin = glyphs_from_image(scans.degrade(np.pad(ink, 10), np.random.default_rng(seed)))
        assert len(tight) == 1
        assert np.corrcoef(tight[0].image.ravel(), with_margin[0].image.ravel())[0, 1] > 0.9


@settings(max_examples=200, deadline=None)
@given(arrays(bool, array_shapes(min_dims=2, max_dims=2, max_side=30)))
def test_runs_along_rows_are_the_runs_counted_by_hand(mask):
    """The stroke width, the printed lines' thickness and a tight crop's edge are all measured from these runs."""
    expected = []
    for number, row in enumerate(mask.tolist()):
        column = 0
        for value, group in itertools.groupby(row):
            length = len(list(group))
            if value:
                expected.append((number, column, length))
            column += length
    found = runs_along_rows(mask)
    assert [tuple(int(v) for v in run) for run in zip(*found)] == expected


@st.composite
def rows_and_kept(draw):
    """A float32 array of a few rows and a mask of the values each row keeps, one at least."""
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 40)))
    values = draw(arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    keep = draw(arrays(bool, shape))
    keep[:, draw(st.integers(0, shape[1] - 1))] = True
    return values, keep


@settings(max_examples=200, deadline=None)
@given(rows_and_kept())
def test_row_medians_are_each_rows_median_of_the_kept_values(case):
    """The paper's noise is the median spread of each tile's paper pixels, found for all tiles at once."""
    values, keep = case
    expected = [np.median(row[kept]) for row, kept in zip(values, keep)]
    np.testing.assert_allclose(row_medians(values, keep), expected, rtol=1e-6)
