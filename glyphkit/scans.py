"""Glyph arrays drawn as paper scans, photos, lines and pages of handwriting: how the benchmarks test reading a
user's images.

A 28x28 glyph (EMNIST's upright uint8 array, ink bright) is drawn as dark ink on light paper, at a chosen size and
place, under uneven light, with noise, blur and JPEG compression: what a phone photo or a scanner gives. The
conditions of a real note (`CONDITIONS`, `render_condition`) draw it on ruled and squared paper, in chalk on a board,
under a shadow, tilted, small in a large photo, tiny and badly compressed, and on a coloured sticky note; lines
(`render_line`) have gaps or touching letters; pages (`render_page`) hold several lines of writing; blank pages
(`render_blank`) hold none. `glyphkit predict` must read these about as well as `glyphkit evaluate` reads the
arrays themselves (benchmarks/paper_test.py). Renderings of EMNIST glyphs are derived from EMNIST: never commit
them.

Tones are floats in [0, 1] (1 = white paper). Ranges of two integers are numpy's half-open `integers` ranges.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter
from skimage.filters import gaussian
from skimage.transform import resize, rotate

# -- Paper, pen and photo -----------------------------------------------------------------------------------------
PAPER = (0.80, 0.97)  # the paper's grey tone
PEN = (0.05, 0.30)  # the ink's grey tone
BLUR = (0.0, 1.2)  # the photo's Gaussian blur radius, pixels
JPEG = (50, 91)  # the photo's JPEG quality
# -- Single glyphs (render_scan, and the conditions that draw a glyph at the same sizes) ------------------------------
SCAN_SIDE = (40, 201)  # the glyph's 28x28 frame drawn this many pixels high
SCAN_MARGIN = (10, 151)  # paper around the frame on each side, pixels
INK_LEVEL = 0.5  # a glyph's ink box: its pixels of at least half its brightest (the strokes, not their soft edges)
# -- Ruled notebook paper -----------------------------------------------------------------------------------------
RULE_PITCH = (0.8, 1.2)  # ruled lines apart, in the glyph's ink heights (the glyph sits on one of them)
RULE_WIDTH = (0.01, 0.03)  # a ruled line's thickness, as a share of the glyph's frame (at least 1 pixel)
RULE_BLUE = ((0.55, 0.75), (0.72, 0.86), (0.90, 1.0))  # the light blue of the rules: ranges of R, G, B
MARGIN_RED = ((0.85, 1.0), (0.30, 0.50), (0.35, 0.55))  # the red margin line: ranges of R, G, B
PEN_DARK = (0.05, 0.20)  # a ballpoint on ruled paper: its darkness (R = G = this) ...
PEN_BLUE = (0.0, 0.35)  # ... and how much bluer (B): black to dark blue
PAPER_TINT = (0.96, 1.0)  # each of R, G, B of the paper's tone times this (white to slightly cream)
# -- Squared paper ------------------------------------------------------------------------------------------------
GRID_CELL = (0.5, 1.0)  # the grid's cell side, in the glyph's ink sizes (long side of its ink box)
GRID_DARKNESS = (0.12, 0.30)  # the grid lines are this much darker than the paper
# -- Chalk on a board ---------------------------------------------------------------------------------------------
BOARD = (0.12, 0.35)  # the board's grey tone (a dark green or grey board)
CHALK = (0.70, 0.95)  # the chalk's grey tone
CHALK_GRAIN = (0.35, 0.70)  # share of a stroke's chalk a grain can lack: chalk strokes are broken, not solid
SMUDGE = (0.02, 0.08)  # the board's wiped-chalk blotches, lighter than the board by up to this
# -- A shadow across the page --------------------------------------------------------------------------------------
SHADOW_DEPTH = (0.30, 0.60)  # the paper in the shadow is this much darker
SHADOW_EDGE = (0.02, 0.10)  # the soft edge's width, as a share of the image's diagonal
# -- Tilted photo, small writing in a photo, tiny glyphs in a bad JPEG ---------------------------------------------
TILT = (5.0, 10.0)  # degrees, either way
PHOTO = (640, 480)  # width, height of the photo holding small writing
SMALL_SIDE = (24, 41)  # the small glyph's frame, pixels
TINY_SIDE = (14, 21)  # the tiny glyph's frame, pixels
TINY_MARGIN = (3, 16)  # paper around a tiny glyph, pixels
TINY_BLUR = (0.0, 0.6)  # less blur: at 14 pixels a blur of 1.2 leaves nothing to read
TINY_JPEG = 30  # the JPEG quality of tiny glyphs
# -- A coloured sticky note -------------------------------------------------------------------------------------
# Sticky notes: yellow, pink, green, blue, orange (RGB); inks: blue, black, red, green, purple.
NOTE_RGB = ((1.0, 0.93, 0.45), (1.0, 0.70, 0.80), (0.75, 0.95, 0.60), (0.65, 0.85, 0.98), (1.0, 0.75, 0.45))
INK_RGB = ((0.10, 0.20, 0.65), (0.08, 0.08, 0.10), (0.75, 0.10, 0.12), (0.05, 0.45, 0.15), (0.40, 0.10, 0.55))
NOTE_LIGHT = (0.85, 1.0)  # the note's colour times this (the light on it)
# -- Lines and pages ----------------------------------------------------------------------------------------------
LINE_SIDE = (40, 121)  # a line's glyph frames, pixels
LINE_MARGIN = (10, 61)  # paper around a line, pixels
LINE_GAP = (0.2, 0.8)  # render_line's default gaps between letters, in glyph widths (see line_positions)
JITTER = 0.05  # each glyph of a line moves up or down by up to this share of its frame
PAGE_SIDE = (40, 101)  # a page's glyph frames, pixels (one hand: one size per page)
PAGE_PITCH = (1.3, 2.0)  # lines of writing apart, in glyph heights (median ink height)
PAGE_WAVE = (0.0, 0.06)  # a line's waviness: amplitude of a sine on its baseline, in glyph heights
PAGE_WAVE_PERIOD = (4.0, 12.0)  # the wave's period, in glyph frames
PAGE_SLOPE = 0.01  # every line of a page slopes alike by up to this (the page photographed a little rotated)
PAGE_INDENT = (0.0, 1.0)  # each line starts this many glyph frames right of the page's left edge of writing
PAGE_MARGIN = (20, 121)  # paper around the writing, pixels (and one frame more on the left, for the margin line)
PAGE_PAPERS = ("plain", "ruled", "squared")
DESK = (0.25, 0.6)  # a page photographed lying on a desk: the desk's grey tone ...
DESK_RGB = (1.0, 0.85, 0.7)  # ... times this in a colour photo (wood)
DESK_MARGIN = (0.05, 0.2)  # ... showing on each side of the sheet, as a share of the sheet's long side
DESK_TURN = 4.0  # ... the sheet lying turned up to this many degrees either way on it
LARGE_PAGE = (4000, 3000)  # a 12-megapixel phone photo of a page, width x height
LARGE_SIDE = (90, 161)  # its glyph frames: capitals about 5-8 mm on an A4 page filling the photo
# -- Blank pages --------------------------------------------------------------------------------------------------
BLANK_KINDS = ("plain", "ruled", "squared", "textured", "shadowed", "desk")
BLANK_WIDTH = (600, 1201)  # a blank page's width, pixels
BLANK_ASPECT = (0.7, 1.4)  # its height over its width
BLANK_PITCH = (25, 61)  # a blank page's ruled lines apart, and its grid's cell, pixels
FIBRE_TONE = (0.03, 0.10)  # textured paper: fibres this much darker than the paper
FIBRES = (20, 200)  # textured paper: how many fibres
SPECK_TONE = (0.15, 0.45)  # textured paper: specks this much darker than the paper
SPECKS = (5, 40)  # textured paper: how many specks, 1-3 pixels across


def _tones(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink (float [H, W], 1 = full ink) as dark pen on light paper, grey tones."""
    paper, pen = rng.uniform(*PAPER), rng.uniform(*PEN)
    return paper - (paper - pen) * ink


def photograph(
    page: np.ndarray, rng: np.random.Generator, blur: tuple[float, float] = BLUR, quality: tuple[int, int] = JPEG
) -> Image.Image:
    """A page of tones (float [H, W] grey or [H, W, 3] RGB, 1 = white) as a photo or scan: a light gradient,
    noise, a blur and JPEG compression (the image returned is the decoded JPEG)."""
    h, w = page.shape[:2]
    ramp = np.linspace(rng.uniform(0.85, 1.0), 1.0, w)[None, :] * np.linspace(rng.uniform(0.9, 1.0), 1.0, h)[:, None]
    page = page * (ramp[..., None] if page.ndim == 3 else ramp) + rng.normal(0, rng.uniform(0.01, 0.03), page.shape)
    image = Image.fromarray(np.clip(page * 255, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*blur)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(*quality)))
    return Image.open(io.BytesIO(buffer.getvalue()))


def degrade(ink: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Ink (float [H, W], 1 = full ink) as a scan: paper and ink tones, a light gradient, noise, blur, JPEG."""
    return photograph(_tones(ink, rng), rng)


def scaled(glyph: np.ndarray, side: int) -> np.ndarray:
    """A uint8 glyph resized to side x side (bicubic), as ink in [0, 1]."""
    return np.asarray(Image.fromarray(glyph).resize((side, side), Image.BICUBIC), dtype=np.float32) / 255


def ink_box(ink: np.ndarray, level: float = INK_LEVEL) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom and right exclusive, of the pixels of at least `level` of the ink's
    brightest: where the strokes are, without the frame's empty margins. The whole array when it holds no ink."""
    mask = ink >= level * ink.max() if ink.max() > 0 else np.ones(ink.shape, bool)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _paste(canvas: np.ndarray, ink: np.ndarray, y: int, x: int) -> None:
    """Draw `ink` on `canvas` with its top left corner at (y, x) (strokes that cross keep the darker ink)."""
    h, w = ink.shape
    canvas[y : y + h, x : x + w] = np.maximum(canvas[y : y + h, x : x + w], ink)


def _placed(glyph: np.ndarray, rng: np.random.Generator, side_range=SCAN_SIDE, margin_range=SCAN_MARGIN):
    """The glyph at a random size with random margins, as render_scan draws it: (ink canvas, side, top, left)."""
    side = int(rng.integers(*side_range))
    top, bottom, left, right = rng.integers(*margin_range, size=4)
    ink = np.zeros((side + top + bottom, side + left + right), np.float32)
    ink[top : top + side, left : left + side] = scaled(glyph, side)
    return ink, side, int(top), int(left)


def render_scan(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One glyph at 40-200 px with random margins of 10-150 px, as a scan (plain paper)."""
    return degrade(_placed(glyph, rng)[0], rng)


# -- Paper ---------------------------------------------------------------------------------------------------------


def _rgb(rng: np.random.Generator, ranges) -> np.ndarray:
    return np.array([rng.uniform(*r) for r in ranges], np.float32)


def _pen_rgb(rng: np.random.Generator) -> np.ndarray:
    dark = rng.uniform(*PEN_DARK)
    return np.array([dark, dark, dark + rng.uniform(*PEN_BLUE)], np.float32)


def _thickness(side: int, rng: np.random.Generator) -> int:
    return max(1, round(side * rng.uniform(*RULE_WIDTH)))


def ruled_paper(
    shape: tuple[int, int], rng: np.random.Generator, pitch: float, baseline: float, margin_x: int, thickness: int
) -> np.ndarray:
    """Notebook paper, float RGB [H, W, 3]: light blue horizontal rules `pitch` pixels apart, one of them at row
    `baseline`, and a red vertical margin line at column `margin_x` (none when it is outside the page)."""
    h, w = shape
    page = np.empty((h, w, 3), np.float32)
    page[:] = rng.uniform(*PAPER) * _rgb(rng, [PAPER_TINT] * 3)
    blue, red = _rgb(rng, RULE_BLUE), _rgb(rng, MARGIN_RED)
    for y in np.arange(baseline % pitch, h, pitch).round().astype(int):
        page[max(0, y - thickness // 2) : y - thickness // 2 + thickness] = blue
    if 0 <= margin_x < w:
        page[:, max(0, margin_x - thickness // 2) : margin_x - thickness // 2 + thickness] = red
    return page


def squared_paper(shape: tuple[int, int], rng: np.random.Generator, cell: float, thickness: int) -> np.ndarray:
    """Squared paper, float grey [H, W]: a light grid of `cell`-pixel squares at a random offset."""
    h, w = shape
    paper = rng.uniform(*PAPER)
    lines = np.zeros(shape, bool)
    for axis, length in ((0, h), (1, w)):
        for at in np.arange(rng.uniform(0, cell), length, cell).round().astype(int):
            index = slice(max(0, at - thickness // 2), at - thickness // 2 + thickness)
            lines[(index, slice(None)) if axis == 0 else (slice(None), index)] = True
    return np.where(lines, paper - rng.uniform(*GRID_DARKNESS), paper).astype(np.float32)


def _ink_on(page: np.ndarray, ink: np.ndarray, pen) -> np.ndarray:
    """Pen of tone (or RGB colour) `pen` on the page where `ink` says (1 = full ink)."""
    ink = ink[..., None] if page.ndim == 3 else ink
    return page * (1 - ink) + np.asarray(pen, np.float32) * ink


def _shadow(shape: tuple[int, int], rng: np.random.Generator, through: tuple[float, float]) -> np.ndarray:
    """Float [H, W] factor of the light: 1 in the light, 1 - depth in a shadow whose soft straight edge passes
    through the point (y, x) `through` at a random angle."""
    h, w = shape
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w]
    distance = (ys - through[0]) * np.sin(angle) + (xs - through[1]) * np.cos(angle)
    edge = max(1.0, rng.uniform(*SHADOW_EDGE) * np.hypot(h, w))
    inside = 1 / (1 + np.exp(-np.clip(distance / (edge / 4), -50, 50)))  # a logistic ramp about `edge` wide
    return (1 - rng.uniform(*SHADOW_DEPTH) * inside).astype(np.float32)


# -- Single glyphs under the conditions of a real note ---------------------------------------------------------------


def render_ruled(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """RGB: the glyph in a dark pen on ruled notebook paper, sitting on a blue rule (the rules 0.8-1.2 glyph
    heights apart, so they touch or cross its strokes), a red margin line to its left."""
    ink, side, top, left = _placed(glyph, rng, margin_range=(20, SCAN_MARGIN[1]))
    y0, _, y1, _ = ink_box(ink)
    thickness = _thickness(side, rng)
    baseline = y1 + rng.integers(-thickness, thickness + 1)
    margin_x = int(rng.uniform(0.2, 0.8) * left)
    page = ruled_paper(ink.shape, rng, rng.uniform(*RULE_PITCH) * (y1 - y0), baseline, margin_x, thickness)
    return photograph(_ink_on(page, ink, _pen_rgb(rng)), rng)


def render_squared(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The glyph on squared paper: a light grid whose cells are 0.5-1 of the glyph's size."""
    ink, side, _, _ = _placed(glyph, rng)
    y0, x0, y1, x1 = ink_box(ink)
    page = squared_paper(ink.shape, rng, rng.uniform(*GRID_CELL) * max(y1 - y0, x1 - x0), _thickness(side, rng))
    return photograph(_ink_on(page, ink, rng.uniform(*PEN)), rng)


def render_chalk(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Light chalk strokes, broken by the chalk's grain, on a dark board with wiped-chalk blotches."""
    ink, _, _, _ = _placed(glyph, rng)
    h, w = ink.shape
    field = gaussian(rng.normal(size=(h, w)), sigma=0.8)  # grains a pixel or two across
    grain = np.clip(1 - rng.uniform(*CHALK_GRAIN) * (0.5 + field / field.std() / 2), 0, 1)
    blotches = rng.uniform(0, 1, (max(2, h // 32), max(2, w // 32)))
    smudge = resize(blotches, (h, w), order=3) * rng.uniform(*SMUDGE)
    board, chalk = rng.uniform(*BOARD), rng.uniform(*CHALK)
    return photograph(board + smudge + (chalk - board) * ink * grain, rng)


def render_shadow(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The glyph on paper with a soft-edged shadow across it: the paper 30-60% darker on one side of an edge that
    passes through the glyph."""
    ink, _, _, _ = _placed(glyph, rng)
    y0, x0, y1, x1 = ink_box(ink)
    through = (rng.uniform(y0, y1), rng.uniform(x0, x1))
    return photograph(_tones(ink, rng) * _shadow(ink.shape, rng, through), rng)


def render_tilted(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The glyph as render_scan draws it, photographed 5-10 degrees off the vertical (either way)."""
    ink = _placed(glyph, rng)[0]
    angle = rng.uniform(*TILT) * rng.choice([-1, 1])
    return degrade(rotate(ink, angle, resize=True, order=3).clip(0, 1), rng)


def render_small(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Small writing: a glyph 24-40 pixels high somewhere in a 640x480 photo."""
    side = int(rng.integers(*SMALL_SIDE))
    width, height = PHOTO
    ink = np.zeros((height, width), np.float32)
    _paste(
        ink, scaled(glyph, side), int(rng.integers(10, height - side - 10)), int(rng.integers(10, width - side - 10))
    )
    return degrade(ink, rng)


def render_tiny_jpeg(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A glyph 14-20 pixels high with a few pixels of paper around it, saved as JPEG quality 30."""
    ink, _, _, _ = _placed(glyph, rng, TINY_SIDE, TINY_MARGIN)
    return photograph(_tones(ink, rng), rng, blur=TINY_BLUR, quality=(TINY_JPEG, TINY_JPEG + 1))


def render_sticky(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """RGB: the glyph in coloured ink on a coloured sticky note filling the photo."""
    ink, _, _, _ = _placed(glyph, rng)
    note = NOTE_RGB[rng.integers(len(NOTE_RGB))]
    pen = INK_RGB[rng.integers(len(INK_RGB))]
    page = np.empty((*ink.shape, 3), np.float32)
    page[:] = np.array(note, np.float32) * rng.uniform(*NOTE_LIGHT)
    return photograph(_ink_on(page, ink, pen), rng)


def render_cropped(glyph: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The glyph as render_scan draws it, cropped to its ink (a glyph folder cut out of a scanned form): its strokes
    reach the image's edges."""
    ink = _placed(glyph, rng)[0]
    top, left, bottom, right = ink_box(ink)
    return degrade(ink[top:bottom, left:right], rng)


RENDERS = {
    "plain": render_scan,
    "ruled": render_ruled,
    "squared": render_squared,
    "chalk": render_chalk,
    "shadow": render_shadow,
    "tilted": render_tilted,
    "small": render_small,
    "jpeg": render_tiny_jpeg,
    "sticky": render_sticky,
    "cropped": render_cropped,
}
CONDITIONS = tuple(RENDERS)
# What each condition is, for tables.
CONDITION_NAMES = {
    "plain": "plain paper",
    "ruled": "ruled notebook paper (blue lines, red margin)",
    "squared": "squared paper",
    "chalk": "chalk on a board",
    "shadow": "a shadow across the page",
    "tilted": "photo tilted 5-10 degrees",
    "small": "small writing (24-40 px) in a 640x480 photo",
    "jpeg": "14-20 px glyphs, JPEG quality 30",
    "sticky": "coloured sticky note, coloured ink",
    "cropped": "a scan cropped to the glyph's ink",
}


def render_condition(glyph: np.ndarray, condition: str, rng: np.random.Generator) -> Image.Image:
    """One glyph drawn under one of CONDITIONS (grey, or RGB where colour matters: ruled paper, sticky notes)."""
    if condition not in RENDERS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    return RENDERS[condition](glyph, rng)


# -- Lines and pages -----------------------------------------------------------------------------------------------


def line_positions(
    inks: list[np.ndarray], rng: np.random.Generator, gap: tuple[float, float] = LINE_GAP
) -> tuple[np.ndarray, np.ndarray]:
    """Where each glyph frame of a line goes: (x, y) of its top left corner, the first glyph's ink starting at
    x = 0 and the ink's bottoms on the baseline y = 0, each glyph moved up or down by up to JITTER of its frame.

    Between neighbours, the gap from one's ink box to the next's is drawn from `gap`, in glyph widths: the mean
    width of the two ink boxes (the strokes, not the frames with their empty margins). A negative gap is an
    overlap (touching letters); a positive one is at least a pixel, so gapped letters never touch in their boxes."""
    boxes = [ink_box(ink) for ink in inks]
    widths = [right - left for _, left, _, right in boxes]
    xs, ys, ink_x = [], [], 0
    for n, (ink, (_, left, bottom, _)) in enumerate(zip(inks, boxes)):
        xs.append(ink_x - left)
        move = round(JITTER * ink.shape[0])
        ys.append(-bottom + int(rng.integers(-move, move + 1)))
        if n + 1 < len(inks):
            drawn = rng.uniform(*gap)
            pixels = round(drawn * (widths[n] + widths[n + 1]) / 2)
            ink_x += widths[n] + (max(1, pixels) if drawn > 0 else pixels)
    return np.array(xs), np.array(ys)


def _compose(inks: list[np.ndarray], xs, ys, margins: tuple[int, int, int, int]) -> tuple[np.ndarray, int, int]:
    """The glyphs on one canvas, the writing's extent plus (top, right, bottom, left) margins; returns the canvas
    and the (dy, dx) added to every position."""
    top, right, bottom, left = margins
    dy, dx = top - min(ys), left - min(xs)
    height = max(y + ink.shape[0] for ink, y in zip(inks, ys)) + dy + bottom
    width = max(x + ink.shape[1] for ink, x in zip(inks, xs)) + dx + right
    canvas = np.zeros((height, width), np.float32)
    for ink, y, x in zip(inks, ys, xs):
        _paste(canvas, ink, y + dy, x + dx)
    return canvas, dy, dx


def render_line(glyphs: np.ndarray, rng: np.random.Generator, gap: tuple[float, float] = LINE_GAP) -> Image.Image:
    """Glyphs side by side at 40-120 px, on a common baseline with a little vertical jitter, as a scan. `gap`: the
    range of the gaps between neighbours' ink, in glyph widths (line_positions); (-0.08, 0) makes touching letters
    that overlap by up to 0.08 widths."""
    return degrade(line_ink(glyphs, rng, gap)[0], rng)


def line_ink(
    glyphs: np.ndarray, rng: np.random.Generator, gap: tuple[float, float] = LINE_GAP
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """render_line's ink before it is photographed (float [H, W], 1 = full ink), and where each glyph's strokes
    are along it: (left, right) columns, right exclusive. The truth the piece model learns from (glyphkit.pieces)."""
    side = int(rng.integers(*LINE_SIDE))
    inks = [scaled(glyph, side) for glyph in glyphs]
    xs, ys = line_positions(inks, rng, gap)
    canvas, _, dx = _compose(inks, xs, ys, tuple(int(m) for m in rng.integers(*LINE_MARGIN, size=4)))
    boxes = [ink_box(ink) for ink in inks]
    return canvas, [(int(x + dx + left), int(x + dx + right)) for x, (_, left, _, right) in zip(xs, boxes)]


def _page_layout(lines: list[list[np.ndarray]], rng: np.random.Generator, gap, side: int):
    """The glyphs of a page's lines, one under the other: (inks, xs, ys, pitch), line k's baseline at y = k *
    pitch before its waves, every line sloping alike."""
    height = float(np.median([ink_box(i)[2] - ink_box(i)[0] for line in lines for i in line]))
    pitch = rng.uniform(*PAGE_PITCH) * height
    slope = rng.uniform(-PAGE_SLOPE, PAGE_SLOPE)
    inks, xs, ys = [], [], []
    for k, line in enumerate(lines):
        x, y = line_positions(line, rng, gap)
        x = x + round(rng.uniform(*PAGE_INDENT) * side)
        amplitude, period = rng.uniform(*PAGE_WAVE) * height, rng.uniform(*PAGE_WAVE_PERIOD) * side
        centre = x + side / 2
        y = y + np.round(
            k * pitch + amplitude * np.sin(2 * np.pi * centre / period + rng.uniform(0, 6.3)) + slope * centre
        )
        inks += line
        xs += x.astype(int).tolist()
        ys += y.astype(int).tolist()
    return inks, xs, ys, pitch, height


def render_page(
    lines_of_glyphs: list[np.ndarray],
    rng: np.random.Generator,
    paper: str = "plain",
    *,
    size: tuple[int, int] | None = None,
    side: tuple[int, int] = PAGE_SIDE,
    gap: tuple[float, float] = LINE_GAP,
    turn: float = 0.0,
    desk: bool = False,
) -> Image.Image:
    """A page with several lines of writing (each an array of glyphs), top to bottom: lines 1.3-2 glyph heights
    apart, each a little wavy, indented a little, all sloping alike. `paper`: "plain", "ruled" (RGB, the writing
    on the rules, a red margin line to its left) or "squared". `size`: (width, height) of the photo, the writing
    at a random place in it (default: the writing plus margins of 20-120 px). `turn`: degrees the page is turned
    in the photo, counter-clockwise (a phone held askew); the paper and its printed lines fill the photo to its
    edges, and the photo grows to hold the turned writing and its margins. A turn uses no random numbers: the same
    `rng` draws the same page, turned or not. `desk`: the sheet photographed lying on a darker desk, which shows all
    round it (DESK, DESK_MARGIN), the sheet turned a little on it (DESK_TURN)."""
    if paper not in PAGE_PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAGE_PAPERS)}, got {paper!r}")
    if (turn or desk) and size is not None:
        raise ValueError("a page drawn to a photo's `size` cannot also be turned or lie on a desk")
    frame = int(rng.integers(*side))
    inks, xs, ys, pitch, height = _page_layout(
        [[scaled(g, frame) for g in line] for line in lines_of_glyphs], rng, gap, frame
    )
    top, right, bottom, left = (int(m) for m in rng.integers(*PAGE_MARGIN, size=4))
    left += frame  # room for the margin line
    if size is not None:
        width = max(x + frame for x in xs) - min(xs)
        tall = max(y + frame for y in ys) - min(ys)
        if width > size[0] or tall > size[1]:
            raise ValueError(f"the writing ({width}x{tall} px) does not fit a {size[0]}x{size[1]} page")
        left, top = int(rng.integers(0, size[0] - width + 1)), int(rng.integers(0, size[1] - tall + 1))
        right, bottom = size[0] - width - left, size[1] - tall - top
    margins = (top, right, bottom, left)
    pad = _turn_pad(inks, xs, ys, margins, turn)
    canvas, dy, dx = _compose(inks, xs, ys, tuple(m + pad for m in margins))
    thickness = _thickness(frame, rng)
    if paper == "ruled":
        margin_x = dx + min(xs) - round(rng.uniform(0.3, 1.0) * frame)
        page = ruled_paper(canvas.shape, rng, pitch, dy, margin_x, thickness)
        tones = _ink_on(page, canvas, _pen_rgb(rng))
    elif paper == "squared":
        page = squared_paper(canvas.shape, rng, rng.uniform(*GRID_CELL) * height, thickness)
        tones = _ink_on(page, canvas, rng.uniform(*PEN))
    else:
        tones = _tones(canvas, rng)
    tones = _turned(tones, canvas, turn, margins) if turn else tones
    return photograph(_on_desk(tones, rng) if desk else tones, rng)


def _turn_pad(inks: list[np.ndarray], xs, ys, margins: tuple[int, int, int, int], turn: float) -> int:
    """Paper to draw beyond the margins so that a page turned by `turn` degrees still fills the photo: the turn
    moves a corner of the writing and its margins by at most their width plus height times sin(turn)."""
    if not turn:
        return 0
    top, right, bottom, left = margins
    width = max(x + ink.shape[1] for ink, x in zip(inks, xs)) - min(xs) + left + right
    tall = max(y + ink.shape[0] for ink, y in zip(inks, ys)) - min(ys) + top + bottom
    return int(np.ceil((width + tall) * abs(np.sin(np.radians(turn))))) + 1


def _on_desk(sheet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A page of tones (grey [H, W] or RGB [H, W, 3]) as a sheet lying on a desk: turned by up to DESK_TURN degrees,
    with the desk's tone (DESK; times DESK_RGB in colour) round it, DESK_MARGIN of the sheet's long side each way."""
    tone = rng.uniform(*DESK)
    colour = tone * np.asarray(DESK_RGB, np.float32) if sheet.ndim == 3 else np.float32(tone)
    sheet = _rotated(sheet, rng.uniform(-DESK_TURN, DESK_TURN), colour, resize=True)
    top, right, bottom, left = (round(m * max(sheet.shape[:2])) for m in rng.uniform(*DESK_MARGIN, size=4))
    h, w = sheet.shape[:2]
    desk = np.empty((top + h + bottom, left + w + right, *sheet.shape[2:]), np.float32)
    desk[:] = colour
    desk[top : top + h, left : left + w] = sheet
    return desk


def _rotated(tones: np.ndarray, degrees: float, fill, resize: bool = False) -> np.ndarray:
    """Tones (grey [H, W] or RGB [H, W, 3]) turned `degrees` counter-clockwise about their centre (bilinear), the
    corners that come into view `fill` (a tone, or an RGB colour: skimage fills with one number, so the fill is
    taken off before the turn and put back after)."""
    return rotate(tones - fill, degrees, resize=resize, order=1, mode="constant", cval=0.0) + fill


def _turned(tones: np.ndarray, ink: np.ndarray, turn: float, margins: tuple[int, int, int, int]) -> np.ndarray:
    """A page of tones (drawn with _turn_pad's paper beyond its margins) turned `turn` degrees counter-clockwise
    about its centre and cut to the turned writing (where `ink`, turned alike, is at least half) plus `margins`."""
    paper = np.median(tones.reshape(-1, tones.shape[-1]) if tones.ndim == 3 else tones.ravel(), axis=0)
    turned = _rotated(tones, turn, paper)  # no corner shows: see the pad
    top, right, bottom, left = margins
    y0, x0, y1, x1 = ink_box(rotate(ink, turn, order=1))
    return turned[max(0, y0 - top) : y1 + bottom, max(0, x0 - left) : x1 + right]


def render_large_page(
    lines_of_glyphs: list[np.ndarray], rng: np.random.Generator, size: tuple[int, int] = LARGE_PAGE
) -> Image.Image:
    """A 12-megapixel (4000x3000) phone photo of a plain page with a few lines of writing, glyphs 90-160 px:
    what `glyphkit predict --segment` must read in seconds."""
    return render_page(lines_of_glyphs, rng, "plain", size=size, side=LARGE_SIDE)


# -- Blank pages ---------------------------------------------------------------------------------------------------


def _textured(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Grey paper with fibres (short thin strokes a little darker) and specks (dots 1-3 px, darker still)."""
    h, w = shape
    page = np.full(shape, rng.uniform(*PAPER), np.float32)
    for _ in range(int(rng.integers(*FIBRES))):
        length, angle = rng.uniform(5, 40), rng.uniform(0, np.pi)
        t = np.linspace(0, length, int(length) + 1)
        y = (rng.uniform(0, h) + t * np.sin(angle)).astype(int).clip(0, h - 1)
        x = (rng.uniform(0, w) + t * np.cos(angle)).astype(int).clip(0, w - 1)
        page[y, x] -= rng.uniform(*FIBRE_TONE)
    for _ in range(int(rng.integers(*SPECKS))):
        y, x, r = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3)), int(rng.integers(1, 4))
        page[y : y + r, x : x + r] -= rng.uniform(*SPECK_TONE)
    return page


def render_blank(kind: str, rng: np.random.Generator) -> Image.Image:
    """A photo of paper with no writing on it, 600-1200 px wide: one of BLANK_KINDS, "plain", "ruled" (RGB, blue
    rules and a red margin), "squared", "textured" (fibres and specks), "shadowed" (a soft shadow across it) or
    "desk" (a plain, ruled or squared sheet that wide, lying on a desk as render_page(..., desk=True) lays it, the
    desk showing round it)."""
    if kind not in BLANK_KINDS:
        raise ValueError(f"kind must be one of {', '.join(BLANK_KINDS)}, got {kind!r}")
    width = int(rng.integers(*BLANK_WIDTH))
    shape = (round(width * rng.uniform(*BLANK_ASPECT)), width)
    pitch, thickness = rng.integers(*BLANK_PITCH), int(rng.integers(1, 4))
    paper = PAGE_PAPERS[int(rng.integers(len(PAGE_PAPERS)))] if kind == "desk" else kind
    if paper == "plain":
        page = np.full(shape, rng.uniform(*PAPER), np.float32)
    elif paper == "ruled":
        page = ruled_paper(shape, rng, pitch, rng.uniform(0, pitch), int(rng.uniform(0.05, 0.2) * width), thickness)
    elif paper == "squared":
        page = squared_paper(shape, rng, pitch, thickness)
    elif paper == "textured":
        page = _textured(shape, rng)
    else:  # shadowed
        through = (rng.uniform(0.25, 0.75) * shape[0], rng.uniform(0.25, 0.75) * shape[1])
        page = rng.uniform(*PAPER) * _shadow(shape, rng, through)
    return photograph(_on_desk(page, rng) if kind == "desk" else page, rng)


def ink_extents(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(heights, widths) in pixels of the box around each glyph's ink (`ink`: bool [N, H, W]); 0 for a glyph with
    none."""

    def extent(inked: np.ndarray) -> np.ndarray:  # [N, L]: which rows (or columns) hold ink
        first, last = inked.argmax(1), inked.shape[1] - 1 - inked[:, ::-1].argmax(1)
        return np.where(inked.any(1), last - first + 1, 0)

    return extent(ink.any(2)), extent(ink.any(1))


def half_intensity_span(glyphs: np.ndarray) -> float:
    """Median long side, in pixels, of the box around each glyph's pixels of at least half its brightest: how
    large the strokes are drawn in the 28x28 frame (glyphkit.preprocess.GLYPH_SPAN aims at EMNIST's)."""
    heights, widths = ink_extents(glyphs >= glyphs.max(axis=(1, 2), keepdims=True) / 2)
    return float(np.median(np.maximum(heights, widths)))
