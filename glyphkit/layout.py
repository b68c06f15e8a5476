"""The layout of a page of handwriting: its ink split into parts, lines of writing, and characters.

`preprocess.ink_map` says how much ink each pixel holds; this module finds what the ink is:
- `paper_lines`: the printed lines of ruled and squared paper (and a margin line), straight and as long as the page,
  so they are taken out before the writing is read;
- `skew_angle`: how far a photo of a page is turned, from the angle at which its rows of ink line up best;
- `ink_components`: the connected strokes, specks left out;
- `find_lines`: the rows of writing, top to bottom;
- `segment_line`: the characters of one row, left to right.

scikit-image labels the components and scipy's 1-d filters do the morphology: their running minimum and maximum
cost the same for any length, so a 12-megapixel page costs about what its pixels do (a 2-d footprint a page long
would cost its length again per pixel).
"""

from __future__ import annotations

import bisect

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops

SPECK = 0.02  # ink components smaller than this share of the largest one are noise
MIN_SIDE, MIN_SIDE_SHARE = 5, 0.008  # nor is a mark less than this many pixels (or this share of the page) long
FRAGMENT = 0.4  # in a line, components less tall than this share of the typical height belong to a neighbour
PAPER_LINE = 0.6  # a straight run of ink at least this share of the page's width (or height) is printed paper
EDGE = 0.15  # ... and runs from this close to one edge of the page to as close to the other (a turned page's corners)
RUN = 0.125  # ... found from straight runs this share of the page long, which a tilt of under a degree keeps
LINE_BREAK = 0.1  # ... and joined across breaks this share of the page long (a faint line breaks up in the noise)
MIN_PAPER_SPAN = 200  # pixels: an image less wide (or high) than this holds a character or two, not a ruled page,
# and a straight stroke across it (an l, a 1) is writing; unless printed lines run the other way, the long way
LINE_GAP = 0.6  # rows of writing: centres further apart than this share of the typical height start a new row
SKEW_RANGE, SKEW_STEP = 12.0, 0.25  # degrees searched either way for a page's tilt, and how finely
MIN_SKEW = 0.75  # a page turned less than this many degrees is read as it is (no resampling)
SKEW_GAIN = 1.1  # ... and so is one whose rows line up less than this much sharper turned back than level
SKEW_SPAN = 0.1  # ... and measured on ink at least this share of the page wide
SKEW_POINTS = 40_000  # ink pixels the tilt is estimated from (a sample: the answer does not need more)
SKEW_BINS = 400  # ... counted along the page's height in about this many bins


def _opening(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The pixels of `mask` on a straight run at least `length` long along `axis` (a binary opening)."""
    eroded = minimum_filter1d(mask.view(np.uint8), length, axis=axis)
    return maximum_filter1d(eroded, length, axis=axis).astype(bool)


def _closing(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """`mask` with gaps shorter than `length` along `axis` filled (a binary closing)."""
    dilated = maximum_filter1d(mask.view(np.uint8), length, axis=axis)
    return minimum_filter1d(dilated, length, axis=axis).astype(bool)


def paper_lines(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(the pixels of `mask` (ink, bool [H, W]) that are printed lines of the paper, not writing; how many pixels
    thick the thickest of them is).

    A ruled or squared page's lines (and a margin line) are straight and cross the page: runs of ink at least RUN
    of the page long, joined (across breaks of up to LINE_BREAK of it) into lines that reach PAPER_LINE of it from
    edge to edge and are no thicker than a printed line. Handwriting has no such runs: even a character drawn edge
    to edge in its own image (the bar of a T) is thicker than 2% of the image and rarely reaches both edges.

    A line's thickness is the lowest quarter of its thickness along its length, so writing that lies along it (up
    to three quarters of it) does not make it too thick to be a line; and where the ink across it is thicker than
    the line (a stroke drawn along it), that ink stays writing. (A stroke across a line is cut by it and joined
    again by without_paper_lines.) An image under MIN_PAPER_SPAN pixels across (one character, as in a glyph
    folder) has no lines that way, unless lines were found the other way: then it is a piece of ruled or squared
    paper."""
    found, thickest = np.zeros_like(mask), 0
    axes = sorted((1, 0), key=lambda axis: -mask.shape[axis])  # the long way first: it decides a short way's search
    for axis in axes:  # 1: horizontal lines (along the rows); 0: vertical ones
        span = mask.shape[axis]
        if span < MIN_PAPER_SPAN and not found.any():
            continue
        # A printed line broken by noise or faint spots is still one line: gaps of up to 1% of the page are closed
        # along it first, and only its own ink pixels are kept.
        closed = _closing(mask, max(3, int(0.01 * span)), axis)
        runs = _opening(closed, max(15, int(RUN * span)), axis) & mask
        if not runs.any():
            continue
        # Runs in line with each other, LINE_BREAK of the page apart or less, are pieces of one line.
        labels = label(_closing(runs, max(3, int(LINE_BREAK * span)), axis), connectivity=2)
        for region in regionprops(labels):
            rows, cols = region.slice
            line = (labels[rows, cols] == region.label) & runs[rows, cols]  # its ink, not the breaks
            extent = region.bbox[2 + axis] - region.bbox[axis]  # along the line's own direction
            counts = np.count_nonzero(line, axis=1 - axis)  # the line's thickness at each point along it
            thickness = float(np.percentile(counts[counts > 0], 25)) if counts.any() else 0.0
            start, end = region.bbox[axis], region.bbox[2 + axis]
            crosses = start <= EDGE * span and end >= (1 - EDGE) * span  # from near one edge to near the other
            if extent >= PAPER_LINE * span and crosses and thickness <= 0.02 * span + 2:
                # How thick the ink is across the line at each pixel (a run across it is connected, so it lies
                # within the line's box).
                across = _run_lengths(runs[rows, cols], 1 - axis)
                found[rows, cols] |= line & (across <= thickness + 2)
                thickest = max(thickest, int(np.ceil(thickness)))
    return found, thickest


def runs_along_rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, start, length) of each run of True along the rows of a 2-d bool array, in reading order. Written out
    with numpy: no library gives the runs of a mask, and it is a few lines, linear in the pixels."""
    steps = np.diff(np.pad(mask, ((0, 0), (1, 1))).view(np.int8), axis=1)  # 1 where a run starts, -1 past its end
    rows, starts = np.nonzero(steps == 1)
    ends = np.nonzero(steps == -1)[1]
    return rows, starts, ends - starts


def _run_lengths(mask: np.ndarray, axis: int) -> np.ndarray:
    """int [H, W]: for each pixel of `mask`, the length of the run of `mask` it lies in along `axis` (0 off it)."""
    lines = np.moveaxis(mask, axis, -1)
    lengths = np.zeros(lines.shape, np.int64)
    runs = runs_along_rows(lines)[2]
    lengths[lines] = np.repeat(runs, runs)  # the runs' pixels, in reading order, are the mask's pixels in order
    return np.moveaxis(lengths, -1, axis)


def without_paper_lines(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the writing, the paper lines' pixels): `mask` with its paper lines taken out, and the strokes that
    crossed a line joined again across it (a closing across the line, kept only where the line was)."""
    lines, thickness = paper_lines(mask)
    if not lines.any():
        return mask, lines
    writing = mask & ~lines
    # A stroke crossing a horizontal line is cut by the line's thickness: close gaps that short vertically (and
    # across vertical lines horizontally), and keep the closing only where the line was.
    across = thickness + 3
    bridged = _closing(writing, across, axis=0) | _closing(writing, across, axis=1)
    writing |= bridged & lines
    return writing, lines & ~writing


def skew_angle(mask: np.ndarray) -> float:
    """Degrees the page's rows of ink are turned (counter-clockwise positive, as skimage.transform.rotate turns):
    the angle at which the ink's row profile is sharpest (the sum of its squared counts is largest), a standard way
    to deskew text. 0.0 when the best angle is under MIN_SKEW or not SKEW_GAIN times sharper than level, or when
    the ink spans less than SKEW_SPAN of the page's width: it has no rows to line up (a margin line's specks on
    blank ruled paper were read as a turned page, and turned, the margin line was no longer found as a printed
    line)."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 50 or np.ptp(xs) < SKEW_SPAN * mask.shape[1]:
        return 0.0
    if len(ys) > SKEW_POINTS:  # a fixed sample: the same page gives the same angle
        keep = np.random.default_rng(0).choice(len(ys), SKEW_POINTS, replace=False)
        ys, xs = ys[keep], xs[keep]
    ys, xs = ys - mask.shape[0] / 2, xs - mask.shape[1] / 2
    # A whole number of pixel rows per bin: level, the ink lies on whole rows, and with 1.6 rows to a bin the bins
    # alternate between one row and two; that unevenness alone made level look sharper than a page's real tilt.
    bin_size = max(1, round(mask.shape[0] / SKEW_BINS))
    angles = np.arange(-SKEW_RANGE, SKEW_RANGE + SKEW_STEP / 2, SKEW_STEP)
    scores = []
    for angle in np.radians(angles):
        # Where each ink pixel lands when the page is turned back by `angle`.
        turned = ys * np.cos(angle) + xs * np.sin(angle)
        counts = np.bincount(((turned - turned.min()) / bin_size).astype(np.int64))
        scores.append(float(np.sum(counts.astype(np.float64) ** 2)))
    best = int(np.argmax(scores))
    level = scores[int(np.argmin(np.abs(angles)))]
    if abs(angles[best]) < MIN_SKEW or scores[best] < SKEW_GAIN * level:
        return 0.0
    return float(angles[best])


def ink_components(ink: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, list]:
    """(labels, regions) of the connected ink strokes (pixels above `threshold`, by default Otsu's), specks and
    marks too small to be writing left out; regions sorted left to right."""
    labels = label(ink > (threshold_otsu(ink) if threshold is None else threshold), connectivity=2)
    min_side = max(MIN_SIDE, MIN_SIDE_SHARE * max(ink.shape))
    regions = regionprops(labels)
    if not regions:
        return labels, []
    largest = max(r.area for r in regions)
    kept = [
        r
        for r in regions
        if r.area >= max(4, SPECK * largest) and max(r.bbox[2] - r.bbox[0], r.bbox[3] - r.bbox[1]) >= min_side
    ]
    return labels, sorted(kept, key=lambda r: r.bbox[1])


def _height(region) -> int:
    return region.bbox[2] - region.bbox[0]


def typical_height(regions: list) -> float:
    """The height of a typical character: the median of the components' heights weighted by their boxes' areas, so
    that a crowd of small specks or dots does not decide it."""
    heights = np.array([_height(r) for r in regions], dtype=np.float64)
    areas = np.array([_height(r) * (r.bbox[3] - r.bbox[1]) for r in regions], dtype=np.float64)
    order = np.argsort(heights)
    cumulative = np.cumsum(areas[order])
    return float(heights[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def find_lines(regions: list) -> list[list]:
    """The rows of writing on a page, top to bottom, each the list of its ink components (left to right).

    Components at least FRAGMENT of the typical height are sorted by their vertical centre; a gap between two
    consecutive centres of more than LINE_GAP of the typical height starts a new row (rows of writing stand about
    a letter's height apart or more; letters of one row differ in centre by much less). Smaller components (dots,
    accents, broken-off bits) join the row whose centre band holds their centre, else the nearest row. The page
    should be level (see skew_angle)."""
    if not regions:
        return []
    median = typical_height(regions)
    centre = lambda r: (r.bbox[0] + r.bbox[2]) / 2  # noqa: E731
    parts = sorted((r for r in regions if _height(r) >= FRAGMENT * median), key=centre)
    rows: list[list] = []
    for region in parts:
        if rows and centre(region) - centre(rows[-1][-1]) <= LINE_GAP * median:
            rows[-1].append(region)
        else:
            rows.append([region])
    # A row's vertical band: from its parts' top to their bottom; a fragment goes to the row it falls in, or the
    # nearest one (bisect over the rows' centres: linear in the components, however many specks a page has).
    centres = [float(np.median([centre(r) for r in row])) for row in rows]
    for fragment in (r for r in regions if _height(r) < FRAGMENT * median):
        at = bisect.bisect(centres, centre(fragment))
        nearest = min((i for i in (at - 1, at) if 0 <= i < len(rows)), key=lambda i: abs(centres[i] - centre(fragment)))
        rows[nearest].append(fragment)
    return [sorted(row, key=lambda r: r.bbox[1]) for row in rows]


def segment_line(regions: list) -> list[list]:
    """The characters of a line of handwriting (its ink components), left to right, each as the list of its
    components.

    Components at least FRAGMENT of the line's typical height are characters, and one joins the character before
    it when their horizontal extents overlap by at least half the narrower one (a stroke broken in two, or an
    accent above). Smaller components (the dot of an i or j, a chipped-off bit of a stroke) join the character
    nearest to them horizontally. Characters that touch are one component here: predict cuts them apart (see
    glyphkit.predict)."""
    if not regions:
        return []
    line_height = typical_height(regions)
    parts = sorted((r for r in regions if _height(r) >= FRAGMENT * line_height), key=lambda r: r.bbox[1])
    characters: list[list] = []
    extents: list[list[int]] = []  # [x0, x1] of each character, kept up to date (no rescans: linear time)
    for region in parts:
        x0, x1 = region.bbox[1], region.bbox[3]
        if characters:
            c0, c1 = extents[-1]
            if min(x1, c1) - max(x0, c0) >= 0.5 * min(x1 - x0, c1 - c0):
                characters[-1].append(region)
                extents[-1] = [min(c0, x0), max(c1, x1)]
                continue
        characters.append([region])
        extents.append([x0, x1])
    if not characters:  # only fragments: each is its own character
        return [[r] for r in sorted(regions, key=lambda r: r.bbox[1])]
    centres = [(e[0] + e[1]) / 2 for e in extents]
    for fragment in (r for r in regions if _height(r) < FRAGMENT * line_height):
        middle = (fragment.bbox[1] + fragment.bbox[3]) / 2
        at = bisect.bisect(centres, middle)
        near = [i for i in (at - 1, at) if 0 <= i < len(characters)]
        best = max(near, key=lambda i: _overlap(fragment, extents[i]))
        characters[best].append(fragment)
    return [sorted(c, key=lambda r: r.bbox[1]) for c in characters]


def _overlap(region, extent: list[int]) -> int:
    """Horizontal overlap of a component and a character's extent in pixels (negative: the gap between them)."""
    return min(region.bbox[3], extent[1]) - max(region.bbox[1], extent[0])


def text_of(characters: list[tuple[int, str]]) -> str:
    """(line, character) pairs in reading order as text: a newline between rows of writing."""
    rows: dict[int, str] = {}
    for line, character in characters:
        rows[line] = rows.get(line, "") + character
    return "\n".join(rows[line] for line in sorted(rows))
