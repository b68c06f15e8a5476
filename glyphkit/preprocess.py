"""Any image of handwriting -> EMNIST-like 28x28 glyphs, made the way EMNIST itself was made.

EMNIST's conversion of NIST's 128x128 forms (Cohen et al. 2017, "EMNIST: an extension of MNIST to handwritten
letters", section II-A): Gaussian blur (sigma 1), the region of interest cropped, centred in a square frame
keeping the aspect ratio, padded by 2 pixels, downsampled to 28x28 with bicubic interpolation, intensities
scaled to 0..255. (Not MNIST's recipe: no 20x20 box, no centre of mass.) The strokes of an EMNIST glyph span 22 of
the 28 pixels at half their intensity (24 with their soft edges); a user's glyph is brought to NIST's scale first so
the blur means the same at any resolution.

A user's image is a phone photo, a scan or a drawing, so before that: the EXIF orientation is applied, colour
becomes grey, an alpha channel (a drawing on a transparent canvas) is the ink itself, the polarity (dark ink on
light paper, or the reverse) is read from the paper's tone, the paper's light is divided out (a shadow is no ink),
printed paper lines and specks are taken out, and blank paper is refused. With `segment`, glyphkit.layout finds the
rows of writing of a page and the characters of each, and `split_touching` cuts touching letters where the model
reads the pieces best (or a run's line model reads the rows whose letters touch whole: glyphkit.lines). The image
processing is scikit-image's and scipy's.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy.ndimage import binary_fill_holes, distance_transform_edt, find_objects, maximum_filter, minimum_filter
from skimage.filters import gaussian, threshold_multiotsu, threshold_otsu
from skimage.measure import label, regionprops
from skimage.morphology import dilation, footprint_rectangle
from skimage.transform import resize, rotate
from skimage.util import view_as_blocks

from glyphkit.layout import (
    MIN_PAPER_SPAN,
    find_lines,
    ink_components,
    paper_lines,
    runs_along_rows,
    segment_line,
    skew_angle,
    typical_height,
    without_paper_lines,
)

MAX_PIXELS = 50_000_000  # larger images are refused before they are decoded (a 12 MP phone photo is 12M)
POLARITIES = ("auto", "dark-on-light", "light-on-dark")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
OS_METADATA = (".ds_store", "thumbs.db", "desktop.ini")  # and macOS's "._NAME" files: see is_os_metadata
NIST_SIDE = 96  # the long side a glyph is brought to before the blur: NIST's glyphs on their 128x128 forms
# Pixels of the 28 that a glyph's strokes span on their long side, measured where the preprocessing crops them (at
# half intensity): the median over proxy47's test glyphs is 22 (benchmarks/experiments/glyph_span.py prints it and
# compares).
GLYPH_SPAN = 22
NOISE_SIGMA, NOISE_SIDE = 1.5, 800  # pixels: the blur that takes sensor noise and paper grain out before the ink is
# measured, 1 pixel per NOISE_SIDE pixels of the image's long side (a page photo), at most NOISE_SIGMA
MIN_CONTRAST = 0.2  # ink takes at least this share of its paper's light (pen, pencil, chalk); texture and JPEG less
# ... and stands out from the paper's own noise: at least INK_PIXELS pixels lie INK_Z robust standard deviations
# (1.4826 MAD) above the paper's median contrast (a blank photo on the paper test has at most 4 such pixels, its
# least legible glyph 8), and a stroke's pixels lie at least STROKE_Z above it.
INK_Z, INK_PIXELS, STROKE_Z = 8.0, 6, 4.0
INK_FLOOR = MIN_CONTRAST / 2  # contrast under this is the paper's texture, not even a stroke's soft edge: no ink
FAINT_LINES = 0.05  # printed lines are looked for again at this contrast, to take out what is left of faint ones
NOISE_TILES = 16  # the paper's noise is measured in tiles of 1/16 of the image's short side (at least 16 pixels),
NOISE_SAMPLE = 250_000  # on every n-th pixel of each n-th row, n chosen so that about this many pixels are left
MIXED_BAND, BETWEEN = 0.2, 0.08  # the outer band's tones span more than this (10th to 90th percentile), and under
# BETWEEN of them lie in the middle third of that span: a shadow's edge crosses the band (a shadow on the paper test
# leaves 2-10% there, a gradient of the light more than 10%)
TIGHT_EDGE = 0.2  # ... unless the dark tone meets the image's edge only in pieces, two or more, none longer than
# this share of the way round: the strokes of a glyph cropped tight to its ink (a shadow meets it in one long stretch)
DEPARTS = 0.1  # ink departs from its paper's tone by more than this (darker, or lighter as chalk on a board)
SHEET, SHEET_MARKS = 0.2, 5  # a lighter area, in one piece, holes and all at least this share of the image, with at
# least this many darker marks inside it is a sheet of paper with writing, lying on something darker (a desk): a
# character has at most two holes (B, 8, g) and light strokes on a board cover far less of it in one piece ...
SHEET_CONVEX, SHEET_BLANK = 0.95, 0.99  # ... and so is one with no marks, when it fills this share of its convex hull
# (four straight edges) and its light this share of it (nothing on it): a blank sheet
SHEET_SAMPLE = 100_000  # the sheet is looked for on every n-th pixel of each n-th row, about this many pixels
STROKE_PIXELS = 3.0  # the paper's light is estimated on the image shrunk until strokes are about this wide ...
MAX_STROKE = 0.25  # (a stroke is never wider than this share of the image: a longer dark run is a shadow)
PAPER_WINDOW = 15  # ... with a window this many (shrunk) pixels wide: several strokes, so none survives it
# Where a shadow's edge turns sharply (a wedge of shade into a corner) that window cannot follow it, and the shade
# is left as ink. Such a part reaches the image's edge (the shadow comes from outside the picture), is solid (its
# convex hull SHADE_SOLIDITY full or more) and thicker than a stroke (a disc of more than SHADE_RADIUS stroke widths
# fits in it); it is dropped, unless it is all the ink there is (a glyph cropped tight to its ink touches the edges
# too). On the paper test's shadow condition 0.6 read best of 0.6, 1.0 and 1.5 (a stroke's own is 0.5).
SHADE_SOLIDITY, SHADE_RADIUS = 0.85, 0.6
EDGE_REMNANT = 0.5  # in an image of one character, parts on its edge with under this share of the largest part clear
# of the edge are remnants of the paper's edge or a shadow's, not strokes (_without_edge_remnants)
# Touching letters (split_touching), as a run without a piece model reads them (with one, glyphkit.pieces sets
# the width, the cost and the piece model's weight): ink wider than WIDE letter heights may hold several letters.
# It is cut at its thinnest columns (CUTS_PER_LETTER per height of width, MIN_CHARACTER of a height from each
# other and the ends) into pieces of at most MAX_CHARACTER heights (the whole ink is always a candidate too). A
# piece scores the model's log-probability plus a log-normal prior on a character's width, less CUT_COST:
# - the prior: CHARACTER_WIDTH of the line's letter height, give or take WIDTH_SPREAD in log, what EMNIST's own
#   training glyphs show (proxy47: the width of a glyph's ink is 0.77 of its long side as a geometric mean, with a
#   standard deviation of 0.33 in log; benchmarks/experiments/glyph_width.py measures them). Without it the model
#   reads two touching letters as one wide one (a W, an M, a B) about as confidently as it reads either alone.
# - CUT_COST: each character must earn its place, or a wide single letter (an e 1.3 heights wide) is read as two
#   narrower ones (C3). Chosen on the paper test's pages and lines: without it some pages had a row with a letter
#   too many; 0.75 (a piece must read about twice as likely) left none, at some cost to touching lines.
WIDE, MIN_CHARACTER, MAX_CHARACTER, CUTS_PER_LETTER = 1.2, 0.15, 1.4, 3
CHARACTER_WIDTH, WIDTH_SPREAD, CUT_COST = 0.77, 0.33, 0.75
# A glyph magnified more than SOFT_UPSCALE times to NIST's scale (a small glyph in a photo) brings its blurred edge
# along, magnified too: its strokes come out thicker than EMNIST's (the paper test's 14-20 px glyphs held 15% more
# ink than the same glyphs drawn large, its small writing 9%). Its strokes also peak in a ridge where EMNIST's are
# flat-topped (many of an EMNIST glyph's pixels are at full ink, few of a magnified one's). So there ink under
# SOFT_EDGE of a stroke is dropped, ink at SOFT_CORE or more is full stroke, and the ink between is stretched over
# that span. Alone, SOFT_EDGE 0.2 read best of 0.1-0.5 on those two conditions; with the ridge flattened, (0.3, 0.8)
# read their validation glyphs best of the pairs tried that keep a small letter about as bold as the same letter
# drawn large (0.2 with 0.8 makes it bolder: tests/test_layout.py; benchmarks/experiments/magnified_strokes.py).
# SOFT_UPSCALE 2.5: toned from 2 times, a plain scan's smallest glyphs read worse, and toned only from 3 or 4 times,
# the tiny JPEG glyphs did; 2.5 read the plain scans and all conditions pooled better than 2 on validation glyphs
# drawn afresh, the tiny ones no worse (benchmarks/experiments/scan_steps.py).
SOFT_UPSCALE, SOFT_EDGE, SOFT_CORE = 2.5, 0.3, 0.8
WORK_PIXELS = 4_000_000  # larger photos are read shrunk to this size: their writing keeps plenty of pixels
# A tiny image (a glyph 14-20 px high) is read enlarged, bicubic, to TINY_IMAGE pixels on its long side: its ink's
# threshold and crop then fall between its pixels, and a JPEG's 8x8 blocks are smoothed. Read at its own pixels, the
# crop is a pixel off either way, a sixth of such a glyph's width (most of what the paper test's jpeg condition reads
# wrong and plain paper right is a 0 read as O, a 1 as I, a 5 as S). 64 read that condition, drawn from validation
# glyphs, best of never, 64 and 128 (benchmarks/experiments/tiny_images.py).
TINY_IMAGE = 64
# A row reader (a run's line model) reads whole only the rows holding a piece of ink wider than READ_WHOLE letter
# heights (letters that touch); the other rows are cut (split_touching) and read by the classifier, which reads
# letters standing apart better than the line model does (0.0 reads every row whole). On pages and lines of
# validation glyphs this found the lines of more pages right than reading every row whole, at a lower CER, and
# counted as many touching lines right (benchmarks/experiments/rows_whole.py).
READ_WHOLE = WIDE


Scorer = Callable[[list["Glyph"]], np.ndarray]  # candidate pieces -> each one's log-score [N] (see Splitter)
# A page's ink, its rows of writing (each row's ink components) and each row's pieces of ink (layout.segment_line's
# characters, each the list of its components) -> each row's characters (glyphkit.lines)
RowReader = Callable[["Ink", list[list], list[list[list]]], list[list["Glyph"]]]


class ImageError(ValueError):
    """An input that cannot be read as handwriting, with a message that names the file and says why."""


@dataclass
class Glyph:
    """One character found in an image: the 28x28 glyph the model sees, and where it was (x, y, w, h)."""

    image: np.ndarray  # uint8 [28, 28], upright, ink bright on black (as glyphkit holds EMNIST)
    box: tuple[int, int, int, int]
    line: int = 0  # the row of writing it is on, 0 for the top one (with segment; else 0)
    probabilities: np.ndarray | None = None  # its classes' probabilities when a line model read it (glyphkit.lines)


def stacked(glyphs: list[Glyph]) -> np.ndarray:
    """The glyphs' 28x28 images as one uint8 array [N, 28, 28], what a model reads in one batch."""
    return np.stack([g.image for g in glyphs]) if glyphs else np.zeros((0, 28, 28), np.uint8)


@dataclass(frozen=True)
class Splitter:
    """How split_touching reads touching letters: `score` gives each candidate piece its log-score (the classifier's
    best log-probability, and with a piece model the log-probability that the piece is one character:
    glyphkit.pieces); ink wider than `wide` letter heights is cut, and each character costs `cut_cost`."""

    score: Scorer
    wide: float = WIDE
    cut_cost: float = CUT_COST


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image at `path`, upright (EXIF orientation applied) and decoded, as 8-bit grey ("L") or "RGBA"
    (see eight_bit). Anything that goes wrong while reading and decoding this one file is an ImageError that
    names it: the one place every reader (predict, the ONNX runtime, glyph-set folders) opens images."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns of damaged metadata it skips ("Corrupt EXIF data"): the image still reads, and a damaged
            # image gets its error below. Its DecompressionBombWarning: glyphkit's own limit, below Pillow's, is
            # checked just after, with the image's size in the message.
            warnings.simplefilter("ignore")
            with Image.open(path) as opened:
                _check_size(path, opened.size, max_pixels)  # read from the header: nothing is decoded yet
                image = ImageOps.exif_transpose(opened)
                image.load()
                return eight_bit(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # more than twice Pillow's limit: refused inside Image.open
        _check_size(path, _declared_size(path) or (0, 0), max_pixels)
        raise ImageError(
            f"{path}: more pixels than Pillow decodes ({exc}); scale the image down or crop it to the handwriting"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: not an image glyphkit can read; use PNG, JPEG, BMP, GIF, TIFF or WebP") from exc
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file or folder") from exc
    except OSError as exc:  # unreadable paths (permissions, symlink loops, folders), truncated or damaged files
        raise ImageError(f"{path}: cannot read the image ({exc.strerror or exc})") from exc
    except Exception as exc:  # noqa: BLE001 - see below
        # A damaged file makes Pillow's decoders raise whatever their parsing hits first (ValueError "Truncated
        # IHDR chunk", SyntaxError "broken PNG file", IndexError, struct.error, MemoryError, ...); no list of
        # types is complete, and every one of them means that this file cannot be decoded.
        why = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ImageError(
            f"{path}: the image is damaged and cannot be decoded ({type(exc).__name__}"
            f"{': ' + why if why else ''}); open and save it again in an image editor, or remove it"
        ) from exc


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{path}: {width}x{height} pixels is more than the {max_pixels:,} glyphkit reads; "
            "scale the image down or crop it to the handwriting"
        )


def _declared_size(path: Path) -> tuple[int, int] | None:
    """The width and height in an image's header, read past Pillow's pixel limit (Image.open raises
    DecompressionBombError without telling them). Tries Pillow's registered formats (Image.ID, Image.OPEN) as
    Image.open does, minus its limit check; None when none reads the header."""
    try:
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for name in Image.ID:
                factory, accept = Image.OPEN[name]
                if accept is not None and accept(prefix) is not True:
                    continue
                try:
                    fp.seek(0)
                    return factory(fp, str(path)).size
                except Exception:  # noqa: BLE001 - not this format; the next one is tried, as Image.open does
                    continue
    except OSError:
        return None
    return None


def eight_bit(image: Image.Image) -> Image.Image:
    """The image as 8-bit grey ("L"), or "RGBA" when it has transparency: the two modes ink_map reads.

    16-bit and 32-bit integer or float greyscale (PNG and TIFF modes I;16, I, F) are scaled by their own range
    (darkest -> 0, lightest -> 255): Pillow's conversion clips at 255, which makes a 16-bit scan (ink at 8,000,
    paper at 60,000) one flat white. A flat image stays flat, and is then refused as blank."""
    if image.mode.startswith(("I", "F")):
        values = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            return Image.new("L", image.size, 0)
        low, high = values[finite].min(), values[finite].max()
        scaled = (np.where(finite, values, low) - low) / max(high - low, 1e-12) * 255
        return Image.fromarray(np.round(scaled).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("L")


def ink_map(image: Image.Image, polarity: str = "auto", source: str = "image") -> np.ndarray:
    """float32 [H, W] in [0, 1]: how much ink each pixel holds (0 = paper, 1 = a full stroke), the paper's light,
    texture and printed lines taken out."""
    return _ink(*paper_contrast(image, polarity, source), source)[0]


def paper_contrast(image: Image.Image, polarity: str = "auto", source: str = "image") -> tuple[np.ndarray, bool]:
    """(contrast, drawn): float32 [H, W], the share of its paper's light each pixel's ink takes (0 = paper), and
    whether the image is a drawing on a transparent canvas (its alpha is the ink: no paper, no printed lines)."""
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    image = eight_bit(image)
    if image.mode == "RGBA":
        alpha = np.asarray(image, dtype=np.float32)[..., 3] / 255
        if alpha.min() < 0.5 < alpha.max():  # strokes on a transparent canvas: the opaque part is the ink
            return alpha, True
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255
    if grey.max() - grey.min() < 0.05:
        raise ImageError(f"{source}: the image is blank (one flat tone); nothing to read")
    if polarity == "auto":
        polarity = _polarity(grey)
    tone = grey if polarity == "dark-on-light" else 1 - grey  # paper light, ink dark
    # Sensor noise and paper grain, a pixel wide, are smoothed out first: the paper's tone is then not the brightest
    # noise, and grain is not ink. Not in small images, whose strokes may be a pixel or two wide themselves.
    sigma = min(NOISE_SIGMA, max(tone.shape) / NOISE_SIDE)
    if sigma >= 0.3:
        tone = gaussian(tone, sigma=sigma)
    return np.clip(1 - tone / _paper_tone(tone), 0, 1), False


def _polarity(grey: np.ndarray) -> str:
    """Dark ink on light paper, or light on dark (chalk on a board): the ink is whatever departs most from the
    paper's tone, darker or lighter; a blank page is dark-on-light. The paper's tone is the median of the image's
    outer band (3% wide, so a printed line along an edge does not decide), unless a shadow's edge crosses that band
    (its tones spread over more than MIXED_BAND, under BETWEEN of them in the middle third): then the paper has two
    tones, the band's 10th and 90th percentiles, and ink is darker than the darker one or lighter than the lighter
    one. The shadow's soft edge lies between the two and counts as neither (compared with one tone, or with the
    median of its own part of the image, it looked like ink of either kind, and most blank pages with a shadow were
    read as light on dark). A glyph cropped tight to its ink has two tones in that band too, but its dark tone
    meets the edge in short pieces (TIGHT_EDGE): that is ink, dark on light paper. And a band all of one darker tone
    may be a desk around a sheet of paper (_sheet_on_desk): its writing is dark, and the desk, darker
    paper with nothing on it, is then taken out as a shadow is."""
    band = max(1, round(0.03 * min(grey.shape)))
    outer = np.concatenate([a.ravel() for a in (grey[:band], grey[-band:], grey[:, :band], grey[:, -band:])])
    low, high = np.percentile(outer, [10, 90])
    darkest = lightest = float(np.median(outer))  # the paper's tone, or its darker and lighter tones
    # A shadow's edge: two tones far apart with few between (a gradient of the light has as many between).
    between = np.mean((outer > low + (high - low) / 3) & (outer < high - (high - low) / 3))
    if high - low > MIXED_BAND and between < BETWEEN:
        if _strokes_at_edge(grey, (low + high) / 2):
            return "dark-on-light"
        darkest, lightest = float(low), float(high)
    darker = np.clip(darkest - grey - DEPARTS, 0, None).mean()
    lighter = np.clip(grey - lightest - DEPARTS, 0, None).mean()
    if lighter > darker and not _sheet_on_desk(grey, lightest + DEPARTS):
        return "light-on-dark"
    return "dark-on-light"


def _sheet_on_desk(grey: np.ndarray, lighter: float) -> bool:
    """Whether the image is a photo of a sheet of paper lying on a darker surface (a desk fills the outer band):
    its largest piece lighter than `lighter`, holes filled, covers SHEET of the image and holds SHEET_MARKS darker
    marks or more (holes of at least 0.03% of the image: a speck of chalk dust's gap is smaller), or none at all in
    a convex outline (SHEET_CONVEX, SHEET_BLANK). Only in an image at least MIN_PAPER_SPAN both ways: a smaller one
    holds a character or two, and a light letter on black (EMNIST's own way) can be that wide and solid. Compared
    with the desk's tone the sheet looked like light ink, and a whole note was read as a character or two."""
    if min(grey.shape) < MIN_PAPER_SPAN:
        return False
    step = max(1, int(np.ceil(np.sqrt(grey.size / SHEET_SAMPLE))))
    light = grey[::step, ::step] > lighter
    pieces = label(light)
    if pieces.max() == 0:
        return False
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    largest = pieces == sizes.argmax()
    sheet = binary_fill_holes(largest)
    if sheet.sum() < SHEET * light.size:
        return False
    marks = np.bincount(label(sheet & ~largest).ravel())[1:]
    if np.count_nonzero(marks >= max(4, 3e-4 * light.size)) >= SHEET_MARKS:
        return True
    convex = regionprops(sheet.astype(np.uint8))[0].solidity >= SHEET_CONVEX
    return convex and largest.sum() >= SHEET_BLANK * sheet.sum()


def _strokes_at_edge(grey: np.ndarray, middle: float) -> bool:
    """Whether the tone darker than `middle` meets the image's edge only in pieces, two or more and none longer than
    TIGHT_EDGE of the way round: the strokes of a glyph cropped tight to its ink, not a shadow."""
    edge = np.concatenate([grey[0, :], grey[1:, -1], grey[-1, -2::-1], grey[-2:0:-1, 0]])  # once round, clockwise
    dark = edge < middle
    if dark.all():
        return False
    dark = np.roll(dark, -int(np.argmin(dark)))  # start on a light pixel: no dark piece is split at the ends
    lengths = runs_along_rows(dark[None])[2]
    return len(lengths) >= 2 and lengths.max() < TIGHT_EDGE * dark.size


def _tiles(image: np.ndarray, side: int) -> np.ndarray:
    """The image as [rows, columns, side, side] square tiles (a view); a remainder at the bottom or right is left
    out."""
    return view_as_blocks(image[: image.shape[0] // side * side, : image.shape[1] // side * side], (side, side))


def _paper_tone(tone: np.ndarray) -> np.ndarray:
    """The paper's own tone under each pixel, writing taken out: a closing (a running maximum, then minimum) wider
    than the strokes. It keeps the light's slow changes and a shadow's edge (a closing keeps a step), so dividing
    by it leaves a shadow, a gradient or tinted paper no ink at all. It is computed where strokes are
    STROKE_PIXELS wide (the image shrunk by its own stroke width) and scaled back: fast at any size."""
    scale = min(1.0, STROKE_PIXELS / _stroke_width(tone))
    small = tone
    if scale < 1:
        shape = (max(8, round(tone.shape[0] * scale)), max(8, round(tone.shape[1] * scale)))
        small = resize(tone, shape, anti_aliasing=True)
    size = min(PAPER_WINDOW, *small.shape)
    paper = minimum_filter(maximum_filter(small, size=size), size=size)
    if scale < 1:
        paper = resize(paper, tone.shape, order=1)
    return np.maximum(paper, 1e-3)


def _stroke_width(tone: np.ndarray) -> float:
    """About how many pixels wide the strokes are: the median length of the darkest runs along the rows (each a
    stroke crossed), leaving out runs longer than MAX_STROKE of the image and runs cut by its left or right edge (a
    stroke crossed has paper on both sides; a shadow reaching the edge does not, and on blank pages with a shadow
    its runs, the darkest there, made the width a hundred pixels or more). An image under MIN_PAPER_SPAN wide with
    no other runs is a glyph cropped to its ink (an H's strokes are all at its edges): its runs are strokes.
    The darkest: below the lowest of three Otsu classes (ink, shade, paper), so that a shadow, darker than paper
    but lighter than ink, is no stroke."""
    try:
        dark = tone < threshold_multiotsu(tone, classes=3)[0]
    except ValueError:  # too few distinct tones for three classes
        dark = tone < threshold_otsu(tone)
    _, starts, runs = runs_along_rows(dark)
    crossed = (starts > 0) & (starts + runs < tone.shape[1])
    if crossed.any() or tone.shape[1] >= MIN_PAPER_SPAN:
        runs = runs[crossed]
    runs = runs[runs <= MAX_STROKE * max(tone.shape)]
    return max(1.0, float(np.median(runs))) if runs.size else 1.0


def _paper_noise(contrast: np.ndarray) -> tuple[float, float]:
    """(the paper's median contrast, the spread of its noise): the median of the pixels under MIN_CONTRAST, and
    the median over the image's tiles of paper (a median contrast under MIN_CONTRAST) of the robust standard
    deviation of each tile's paper pixels (under MIN_CONTRAST). Measured tile by tile, a shadow's or a gradient's
    slow change is no noise; and the strokes in a tile are not either (a glyph cropped to its ink is a tile or two,
    half of each one strokes: counted as noise, they made the ink look no darker than the paper)."""
    step = int(np.ceil(np.sqrt(contrast.size / NOISE_SAMPLE)))
    contrast = contrast[::step, ::step]  # a sample of a large image: its noise is the same, its median faster
    paper = contrast[contrast < MIN_CONTRAST]
    if paper.size == 0:
        return 0.0, 0.0
    side = max(16, min(contrast.shape) // NOISE_TILES)
    if min(contrast.shape) < side:
        return float(np.median(paper)), 0.0
    tiles = _tiles(contrast, side).reshape(-1, side * side)
    tiles = tiles[np.median(tiles, axis=1) < MIN_CONTRAST]  # tiles of paper: at least half of each is paper
    if tiles.size == 0:
        return float(np.median(paper)), 0.0
    own = tiles < MIN_CONTRAST  # each tile's paper pixels
    spread = 1.4826 * row_medians(np.abs(tiles - row_medians(tiles, own)[:, None]), own)
    return float(np.median(paper)), float(np.median(spread))


def row_medians(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The median of each row's `keep` values (each row keeps one or more), from one sort: what np.nanmedian gives
    with the others NaN, which costs several times more on many short rows (the drawing pad reads every stroke)."""
    ordered = np.sort(np.where(keep, values, np.inf), axis=1)
    count = np.count_nonzero(keep, axis=1)[:, None]
    low = np.take_along_axis(ordered, (count - 1) // 2, axis=1)
    high = np.take_along_axis(ordered, count // 2, axis=1)
    return ((low + high) / 2)[:, 0]


def _ink(contrast: np.ndarray, drawn: bool, source: str) -> tuple[np.ndarray, float]:
    """(ink, threshold): the contrast with paper texture dropped, printed paper lines taken out (not from a
    drawing), scaled so a stroke reaches 1; and the ink level above which a pixel is part of a stroke."""
    paper, noise = _paper_noise(contrast)
    # (an image of under 600 pixels needs fewer: 1 per 100 of them, and at least 1)
    least = max(1, min(INK_PIXELS, contrast.size // 100))
    if np.count_nonzero(contrast >= max(MIN_CONTRAST, paper + INK_Z * noise)) < least:
        raise ImageError(f"{source}: no handwriting found (blank paper, or the ink is too faint to read)")
    threshold = max(float(threshold_otsu(contrast)), MIN_CONTRAST / 2, paper + STROKE_Z * noise)
    ink = np.where(contrast >= INK_FLOOR, contrast, 0)
    if not drawn:
        writing, lines = without_paper_lines(contrast >= threshold)
        if lines.any():  # a line's soft edges go with it, but not the writing that crosses it
            near = dilation(lines, _square(5))
            ink[near & ~writing] = 0
            _clear_line_remnants(ink, writing, near)
        # A faint printed line is broken up by the noise at the ink's level: at a fainter level it is whole again,
        # and what is left of it (dashes along it, crosses where a grid's lines meet, no more than a pixel thicker
        # than the line is at that level; a pen's stroke along a line is thicker) is taken out. Only taken out,
        # never cut: writing crossing it, seen at this level, might be cut where no line is.
        faint, thickness = paper_lines(contrast >= max(FAINT_LINES, paper + STROKE_Z * noise))
        if faint.any():
            _clear_line_remnants(ink, ink >= threshold, dilation(faint, _square(5)), thickness + 1)
    strokes = ink[ink >= threshold]
    if strokes.size == 0:
        raise ImageError(f"{source}: no handwriting found (blank paper, or the ink is too faint to read)")
    level = float(np.percentile(strokes, 90))
    return np.clip(ink / level, 0, 1).astype(np.float32), threshold / level


def _clear_line_remnants(ink: np.ndarray, writing: np.ndarray, near: np.ndarray, thickness: int | None = None):
    """Zero in `ink` the parts of `writing` (bool) that lie on printed lines (`near`: the pixels within 2 of them):
    what is left of a line (its rough edge, a speck on it) is not writing, since writing reaches off the line. A
    part is on the lines when 90% of it lies near them; with `thickness`, it must also be no thicker than that (its
    area at most `thickness` times its box's height plus width: a dash, or a cross of two lines), so a stroke drawn
    along a line stays."""
    parts = label(writing, connectivity=2)
    areas = np.bincount(parts.ravel())
    on_line = np.bincount(parts[near], minlength=len(areas)) >= 0.9 * areas
    if thickness is not None:
        for index, box in enumerate(find_objects(parts), start=1):
            if on_line[index] and box is not None:
                rows, cols = box
                on_line[index] = areas[index] <= thickness * (rows.stop - rows.start + cols.stop - cols.start)
    on_line[0] = False
    ink[on_line[parts]] = 0


def _without_shade(ink: np.ndarray, regions: list) -> list:
    """`regions` without the parts of a shadow left as ink: parts that reach the image's edge, are solid and
    thicker than a stroke (SHADE_SOLIDITY, SHADE_RADIUS); all of them when nothing else is left."""
    solid = [r for r in regions if _at_edge(r, ink.shape) and r.solidity >= SHADE_SOLIDITY]
    if not solid:
        return regions
    # Measured on the ink, not taken from the paper's tone (_paper_tone): there, before the light is divided out,
    # the shade's own dark runs sway the width, and fewer of the shadow condition's glyphs were read.
    stroke = _stroke_width(1 - ink)
    shade = {r.label for r in solid if _inscribed_radius(r, ink.shape) > SHADE_RADIUS * stroke}
    kept = [r for r in regions if r.label not in shade]
    return kept or regions


def _without_edge_remnants(regions: list, shape: tuple[int, int]) -> list:
    """One character's parts, without the small ones on the image's edge: where some part lies clear of the edge,
    parts that touch it with under EDGE_REMNANT of the largest clear part's area are dropped. The character is in
    the picture; what is left of a shadow's edge where it meets the image's clings to the edge, and taken into the
    character's box it shrank the glyph. (A glyph cropped to its ink touches the edge with all its parts: kept. A
    drawing has no paper and no shade: not called for it.)"""
    clear = [r.area for r in regions if not _at_edge(r, shape)]
    if not clear:
        return regions
    return [r for r in regions if not _at_edge(r, shape) or r.area >= EDGE_REMNANT * max(clear)]


def _at_edge(region, shape: tuple[int, int]) -> bool:
    """Whether a part of the ink reaches the edge of an image of `shape`."""
    y0, x0, y1, x1 = region.bbox
    return y0 == 0 or x0 == 0 or y1 == shape[0] or x1 == shape[1]


def _inscribed_radius(region, shape: tuple[int, int]) -> float:
    """The radius of the largest disc inside a part of the ink. Beyond the image's edge the part is taken to go on
    (a shadow does), so only its other sides are bounded by paper."""
    (y0, x0, y1, x1), (height, width) = region.bbox, shape
    pad = ((int(y0 > 0), int(y1 < height)), (int(x0 > 0), int(x1 < width)))
    return float(distance_transform_edt(np.pad(region.image, pad)).max())


def _square(side: int):
    return footprint_rectangle((side, side), decomposition="separable")


def regions_crop(ink: np.ndarray, labels: np.ndarray, regions: list) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The box around the ink components `regions`: its ink, which of its pixels are theirs (other components'
    strokes and specks in the box are not), and its top-left pixel (x, y) in `ink`."""
    y0, x0 = min(r.bbox[0] for r in regions), min(r.bbox[1] for r in regions)
    y1, x1 = max(r.bbox[2] for r in regions), max(r.bbox[3] for r in regions)
    return ink[y0:y1, x0:x1], np.isin(labels[y0:y1, x0:x1], [r.label for r in regions]), (int(x0), int(y0))


def emnist_glyph(ink: np.ndarray, regions: list, labels: np.ndarray, span: float = GLYPH_SPAN) -> Glyph:
    """The EMNIST-like 28x28 glyph of the ink components `regions` (one character), its strokes `span` pixels
    long on their long side (benchmarks/experiments/glyph_span.py measures other spans)."""
    local, mine, origin = regions_crop(ink, labels, regions)
    return glyph_of(local, mine, origin, span)


def glyph_of(ink: np.ndarray, mine: np.ndarray, origin: tuple[int, int], span: float = GLYPH_SPAN) -> Glyph:
    """EMNIST's conversion of the strokes `mine` (bool, over `ink`, whose top-left pixel is at `origin` in the
    image): cropped to them, brought to NIST's scale, blurred, framed, downsampled to 28x28."""
    rows, cols = np.nonzero(mine.any(1))[0], np.nonzero(mine.any(0))[0]
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    h, w = y1 - y0, x1 - x0
    mine = dilation(mine[y0:y1, x0:x1], _square(2 * max(1, round(max(h, w) / 24)) + 1))  # with their soft edges
    crop = ink[y0:y1, x0:x1] * mine
    scale = NIST_SIDE / max(h, w)
    if scale > SOFT_UPSCALE:  # a small glyph: its magnified soft edge is not stroke, its ridge is a flat stroke
        crop = np.clip((crop - SOFT_EDGE) / (SOFT_CORE - SOFT_EDGE), 0, 1)
    crop = np.clip(
        resize(crop, (max(1, round(h * scale)), max(1, round(w * scale))), order=3, anti_aliasing=scale < 1), 0, None
    )
    crop = gaussian(crop, sigma=1)
    side = round(NIST_SIDE * 28 / span)  # the square frame: the strokes span `span` of its 28 pixels
    frame = np.zeros((side, side), np.float32)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    frame[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    small = np.clip(resize(frame, (28, 28), order=3, anti_aliasing=True), 0, None)
    glyph = np.round(255 * small / max(small.max(), 1e-6)).astype(np.uint8)
    return Glyph(glyph, (int(origin[0] + x0), int(origin[1] + y0), int(w), int(h)))


def split_touching(
    ink: np.ndarray, lines: list[list[list]], labels: np.ndarray, split: Splitter
) -> dict[tuple[int, int], list[Glyph]]:
    """The characters in each piece of ink of a page that may hold several touching letters, found by reading them:
    {(line, character's index in it): its characters}, for the characters of `lines` (layout.segment_line's, row
    by row) wider than `split.wide` of their line's letter height.

    Recognition-driven segmentation (as in Casey and Lecolinet's survey of character segmentation): the candidate
    cuts are the columns where the ink is thinnest (local minima of its column sums), every piece between two cuts
    is made a glyph and scored by `split.score` (the classifier's log-probability of its best class, and the piece
    model's of its being one character) plus the width prior (`width_prior`) less `split.cut_cost`, and dynamic
    programming picks the cuts whose pieces score best together (the largest sum). The whole ink is one candidate:
    a wide letter read with confidence (a W, an m) stays whole, while three letters read as one W pay for a width no
    letter has. The pieces of the whole page are scored in one batch: a network called once per piece of ink would
    spend more on each call than on its glyphs."""
    candidates: dict[tuple[int, int], Candidates] = {}
    for number, characters in enumerate(lines):
        wide = wide_ink(characters, split.wide)
        height = row_height(characters) if wide else 0.0
        for k in wide:
            candidates[(number, k)] = candidate_pieces(ink, characters[k], labels, height)
    if not candidates:
        return {}
    scores = split.score([glyph for c in candidates.values() for glyph in c.glyphs])
    ends = np.cumsum([len(c.glyphs) for c in candidates.values()])[:-1]
    return {
        key: best_reading(c, read, split.cut_cost)
        for (key, c), read in zip(candidates.items(), np.split(np.asarray(scores), ends))
    }


def row_height(characters: list[list]) -> float:
    """A row's letter height (layout.typical_height of all its ink components)."""
    return typical_height([region for group in characters for region in group])


def wide_ink(characters: list[list], wide: float) -> list[int]:
    """Which of a row's pieces of ink (`characters`, each the list of its components) are wider than `wide` of the
    row's letter height: those that may hold several touching letters. Empty for an empty row."""
    if not characters:
        return []
    height = row_height(characters)
    widths = [max(r.bbox[3] for r in group) - min(r.bbox[1] for r in group) for group in characters]
    return [k for k, width in enumerate(widths) if width > wide * height]


@dataclass
class Candidates:
    """The pieces one piece of ink may be cut into: each span (i, j) is the piece from cut i to cut j (cut 0 is the
    ink's left end, cut `last` its right end)."""

    spans: list[tuple[int, int]]
    glyphs: list[Glyph]
    widths: np.ndarray  # each piece's ink width, in letter heights
    last: int


def candidate_pieces(ink: np.ndarray, regions: list, labels: np.ndarray, height: float) -> Candidates:
    """Every piece between two of the ink's thinnest columns (_thin_columns), at most MAX_CHARACTER letter heights
    wide, and the whole ink, each as a glyph."""
    local, mine, origin = regions_crop(ink, labels, regions)
    positions = [0, *_thin_columns((local * mine).sum(0), height), local.shape[1]]
    last = len(positions) - 1
    spans = [
        (i, j)
        for i in range(last)
        for j in range(i + 1, last + 1)
        if positions[j] - positions[i] <= MAX_CHARACTER * height or (i, j) == (0, last)
    ]
    kept, glyphs, widths = [], [], []
    for i, j in spans:
        part = np.zeros_like(mine)
        part[:, positions[i] : positions[j]] = mine[:, positions[i] : positions[j]]
        columns = np.flatnonzero(part.any(0))
        if len(columns):  # a piece between two cuts may hold no ink of its own (the cut columns' pixel rounding)
            kept.append((i, j))
            glyphs.append(glyph_of(local, part, origin))
            widths.append((columns[-1] - columns[0] + 1) / height)
    return Candidates(kept, glyphs, np.array(widths), last)


def best_reading(candidates: Candidates, scores: np.ndarray, cut_cost: float) -> list[Glyph]:
    """The pieces whose scores (plus the width prior, less `cut_cost` each) add up to the most, left to right:
    dynamic programming over the cuts."""
    read = dict(zip(candidates.spans, scores + width_prior(candidates.widths) - cut_cost))
    found = dict(zip(candidates.spans, candidates.glyphs))
    last = candidates.last
    # best[j]: the best total score of reading the ink left of cut j; came[j]: the cut its last piece starts at.
    best, came = [0.0] + [-np.inf] * last, [0] * (last + 1)
    for j in range(1, last + 1):
        for i in range(j):
            if (i, j) in read and best[i] + read[(i, j)] > best[j]:
                best[j], came[j] = best[i] + read[(i, j)], i
    path, j = [], last
    while j > 0:
        path.append(found[(came[j], j)])
        j = came[j]
    return path[::-1]


def width_prior(widths: np.ndarray) -> np.ndarray:
    """The log-prior of a character being this wide (in letter heights), up to a constant: log-normal about
    CHARACTER_WIDTH with spread WIDTH_SPREAD (0 at the most likely width)."""
    return -0.5 * (np.log(np.maximum(widths, 1e-6) / CHARACTER_WIDTH) / WIDTH_SPREAD) ** 2


def _thin_columns(profile: np.ndarray, height: float) -> list[int]:
    """The columns where a piece of ink is thinnest (a local minimum of its column sums over a window a tenth of a
    letter wide), at least MIN_CHARACTER of a letter's height from either end and from each other, thinnest first,
    CUTS_PER_LETTER per letter's height of width at most."""
    reach, margin = max(1, round(height / 10)), round(MIN_CHARACTER * height)
    padded = np.pad(profile, reach, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1)
    minima = [c for c in range(margin, len(profile) - margin) if profile[c] <= windows[c].min()]
    chosen: list[int] = []
    for c in sorted(minima, key=lambda c: profile[c]):
        if len(chosen) < CUTS_PER_LETTER * len(profile) / height and all(abs(c - other) >= margin for other in chosen):
            chosen.append(c)
    return sorted(chosen)


def glyphs_from_image(
    image: Image.Image,
    *,
    segment: bool = False,
    polarity: str = "auto",
    source: str = "image",
    split: Splitter | None = None,
    rows: RowReader | None = None,
) -> list[Glyph]:
    """One glyph for the whole image, or (segment=True) one per character of a page of handwriting: its rows of
    writing top to bottom (each Glyph's `line`, 0 for the top one), the characters of each left to right.

    A photo larger than WORK_PIXELS is read shrunk to that size, a tiny image enlarged (TINY_IMAGE); a page turned
    by a few degrees is levelled before its rows are found. With a `split` (a classifier's scores), ink too wide for
    one letter is cut where its pieces read best (split_touching); without, touching letters stay one glyph. With a
    `rows` reader (a run's line model: glyphkit.lines), each row holding ink wider than READ_WHOLE letter heights
    is read whole instead, and each of its Glyphs carries the reader's `probabilities`. Boxes are in the image's
    own pixels."""
    found = find_ink(image, level=segment, polarity=polarity, source=source)
    ink, labels, regions = found.ink, found.labels, found.regions
    if not segment:
        lines = [[regions if found.drawn else _without_edge_remnants(regions, ink.shape)]]
    else:
        page = find_lines(regions)
        lines = [segment_line(row) for row in page]
    whole = [n for n, row in enumerate(lines) if wide_ink(row, READ_WHOLE)] if segment and rows is not None else []
    # the rows read whole: the reader finds their characters, the gaps count them
    read_whole = dict(zip(whole, rows(found, [page[n] for n in whole], [lines[n] for n in whole]))) if whole else {}
    to_cut = [[] if n in read_whole else characters for n, characters in enumerate(lines)]
    cut = split_touching(ink, to_cut, labels, split) if segment and split is not None else {}
    rows_read = [
        read_whole[n]
        if n in read_whole
        else [
            glyph
            for k, group in enumerate(characters)
            for glyph in cut.get((n, k)) or [emnist_glyph(ink, group, labels)]
        ]
        for n, characters in enumerate(lines)
    ]
    glyphs = []
    for number, characters in enumerate(rows_read):
        for glyph in characters:
            glyph.line = number
            glyph.box = _original_box(glyph.box, found.angle, ink.shape, found.size, found.scale)
            glyphs.append(glyph)
    return glyphs


@dataclass
class Ink:
    """An image's handwriting, before it is cut into characters (find_ink)."""

    ink: np.ndarray  # float32 [H, W]: how much ink each pixel of the working image holds, levelled (see `angle`)
    labels: np.ndarray  # int [H, W]: each pixel's ink component (0: none)
    regions: list  # the components that are writing (skimage regionprops), shadows and specks left out
    drawn: bool  # a drawing on a transparent canvas: its alpha is the ink
    angle: float  # degrees the working image was turned to level its rows (0: not turned)
    size: tuple[int, int]  # the working image's (width, height) before it was turned
    scale: float  # the working image's size over the user's


def find_ink(image: Image.Image, *, level: bool = True, polarity: str = "auto", source: str = "image") -> Ink:
    """The writing of an image at the size it is read at (_working_size): its paper's light and printed lines taken
    out, turned level when `level` (a page of rows), its ink components found. Blank paper is an ImageError."""
    image, scale = _working_size(image)
    contrast, drawn = paper_contrast(image, polarity, source)
    angle = skew_angle(contrast >= max(float(threshold_otsu(contrast)), MIN_CONTRAST)) if level and not drawn else 0.0
    if angle:
        contrast = rotate(contrast, -angle, resize=True, order=1, cval=0.0).astype(np.float32)  # levelled
    ink, threshold = _ink(contrast, drawn, source)
    labels, regions = ink_components(ink, threshold)
    regions = _without_shade(ink, regions)
    if not regions:
        raise ImageError(f"{source}: no handwriting found (blank paper, or the ink is too faint to read)")
    return Ink(ink, labels, regions, drawn, angle, image.size, scale)


def _working_size(image: Image.Image) -> tuple[Image.Image, float]:
    """The image at the size it is read at, and the scale from the user's image to it: shrunk to WORK_PIXELS when
    larger (Pillow's box filter: fast, and a fair average), enlarged to TINY_IMAGE on its long side when smaller
    (bicubic), else as it is."""
    pixels, longest = image.width * image.height, max(image.size)
    if pixels <= WORK_PIXELS and longest >= TINY_IMAGE:
        return image, 1.0
    scale = (WORK_PIXELS / pixels) ** 0.5 if pixels > WORK_PIXELS else TINY_IMAGE / longest
    if image.mode not in ("L", "RGB", "RGBA"):
        image = eight_bit(image)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    return image.resize(size, resample), scale


def _original_box(
    box: tuple[int, int, int, int], angle: float, turned_shape: tuple[int, int], size: tuple[int, int], scale: float
) -> tuple[int, int, int, int]:
    """A box found on the levelled, shrunk image, as x, y, w, h in the user's image: its corners turned back about
    the centre (skimage.transform.rotate turns about the centre, counter-clockwise) and scaled up."""
    x, y, w, h = box
    if angle:
        corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], dtype=np.float64)
        centre_turned = np.array([turned_shape[1], turned_shape[0]]) / 2
        centre = np.array(size, dtype=np.float64) / 2
        a = np.radians(-angle)
        # The page was levelled by turning it clockwise by `angle` on screen (y down); this turns the corners back.
        turn_back = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        back = (corners - centre_turned) @ turn_back.T + centre
        (x0, y0), (x1, y1) = back.min(0), back.max(0)
        x, y, w, h = x0, y0, x1 - x0, y1 - y0
    return tuple(int(round(v / scale)) for v in (x, y, w, h))


def glyphs_from_file(
    path: str | os.PathLike,
    *,
    segment: bool = False,
    polarity: str = "auto",
    split: Splitter | None = None,
    rows: RowReader | None = None,
) -> list[Glyph]:
    return glyphs_from_image(
        read_image(path), segment=segment, polarity=polarity, source=str(path), split=split, rows=rows
    )


def glyphs_of_files(
    files: list[Path],
    *,
    segment: bool = False,
    polarity: str = "auto",
    split: Splitter | None = None,
    rows: RowReader | None = None,
) -> Iterator[tuple[Path, list[Glyph], str | None]]:
    """(file, its glyphs, None), or (file, [], why it cannot be read) for a bad file: one bad file never stops the
    others. What `glyphkit predict` and the ONNX runtime read a batch of files with (`split`, `rows`: see
    glyphs_from_image)."""
    for file in files:
        try:
            yield file, glyphs_from_file(file, segment=segment, polarity=polarity, split=split, rows=rows), None
        except ImageError as exc:
            yield file, [], str(exc)


def is_os_metadata(path: str | os.PathLike) -> bool:
    """A file an operating system leaves in folders (Finder's .DS_Store and ._ files, Windows' Thumbs.db and
    desktop.ini): no one's glyph, so folder readers skip it."""
    name = Path(path).name
    return name.lower() in OS_METADATA or name.startswith("._")


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Files as given, and the images inside folders (recursively, sorted, OS metadata files left out). A path
    that is neither a file nor a folder (missing, a symlink loop) stays in the list: reading it is that item's
    own error, and the other items are still read."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and not is_os_metadata(p) and p.is_file()
            )
        else:
            files.append(path)
    return files
