"""A row of writing as the line model reads it (a strip), and its characters back from the model's columns.

The geometry of glyphkit.lines without its network: no torch here, so `predict --segment` with a run's line model
and `glyphkit.runtime_onnx` with its export (glyphkit.export) cut strips and decode them the same way.

- `row_strip`: a row's ink, scaled so that a typical letter is GLYPH_SPAN pixels high (EMNIST's strokes span 22 of
  a glyph's 28 pixels), centred in a strip STRIP_HEIGHT pixels high, with STRIP_PAD pixels of paper at either end.
- The network gives one column of log-probabilities per STRIDE strip pixels (classes + CTC's blank, index 0).
- `best_path`: CTC's best-path decoding, each column's likeliest class, repeats merged, blanks dropped.
- `row_characters`: each character read given to the nearest piece of ink of the row; a piece read as one is that
  character, one read as several is cut between them at its thinnest columns (unless the piece model is sure it is
  one letter): each a Glyph with its 28x28 image and its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from glyphkit.layout import typical_height
from glyphkit.preprocess import (
    GLYPH_SPAN,
    MAX_CHARACTER,
    Glyph,
    Ink,
    emnist_glyph,
    find_ink,
    glyph_of,
    regions_crop,
    stacked,
)

STRIP_HEIGHT = 32  # pixels: a glyph's 28-pixel frame, and room for letters taller than typical
STRIP_PAD = 8  # paper added at each end of a strip, pixels: the first and last letters get columns of context
STRIDE = 4  # strip pixels per output column (GlyphNet's two 2x2 poolings)
# A piece of ink the line model reads as several characters stays one when the piece model is surer than this that
# it is one. Chosen on lines and pages of validation glyphs (benchmarks/experiments/letters_apart.py, 0.5-1 tried):
# lower values counted a few more gapped lines right but fewer touching ones (on 360 lines of each kind), and at 0.99
# letters read as two came back on pages.
SURELY_ONE = 0.95

OneCharacter = Callable[[np.ndarray], np.ndarray]  # uint8 glyphs [N, 28, 28] -> log P(one character) [N]


@dataclass
class Strip:
    """A row's ink as the network reads it, and how to find its columns again in the page's ink."""

    image: np.ndarray  # float32 [STRIP_HEIGHT, W] in [0, 1]
    left: int  # the page's ink column of the strip's first ink column (after STRIP_PAD)
    scale: float  # strip pixels per page pixel

    @property
    def columns(self) -> int:
        """How many of the network's output columns belong to this strip (the rest of a batch's is padding)."""
        return self.image.shape[1] // STRIDE


def row_strip(ink: np.ndarray, labels: np.ndarray, regions: list) -> Strip:
    """The strip of a row of writing (its ink components `regions`): a typical letter GLYPH_SPAN pixels high, the
    row's ink centred in height, STRIP_PAD pixels of paper at either end, scaled to full intensity as EMNIST's
    glyphs are."""
    local, mine, (x0, _) = regions_crop(ink, labels, regions)
    height, width = local.shape
    scale = min(GLYPH_SPAN / typical_height(regions), STRIP_HEIGHT / height)  # a tall stroke still fits
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = np.clip(resize(local * mine, shape, order=1, anti_aliasing=scale < 1), 0, None)
    strip = np.zeros((STRIP_HEIGHT, shape[1] + 2 * STRIP_PAD), np.float32)
    top = (STRIP_HEIGHT - shape[0]) // 2
    strip[top : top + shape[0], STRIP_PAD : STRIP_PAD + shape[1]] = small
    return Strip(strip / max(float(strip.max()), 1e-6), int(x0), float(scale))


def image_strip(image, source: str = "image") -> Strip:
    """The strip of an image of one line of writing (all its ink, levelled)."""
    found = find_ink(image, level=True, source=source)
    return row_strip(found.ink, found.labels, found.regions)


def stacked_strips(strips: list[np.ndarray]) -> np.ndarray:
    """Strips of different widths as one float32 batch [B, 1, STRIP_HEIGHT, W] (paper added on the right)."""
    width = max(s.shape[1] for s in strips)
    x = np.zeros((len(strips), 1, STRIP_HEIGHT, width), np.float32)
    for k, s in enumerate(strips):
        x[k, 0, :, : s.shape[1]] = s
    return x


def best_path(log_probs: np.ndarray) -> list[tuple[int, int]]:
    """CTC's best-path decoding of one row's log-probabilities [classes + 1, T] (index 0 the blank): (class, the
    column where it starts) of each character, left to right. Repeats of a class with no blank between are one
    character."""
    best = np.asarray(log_probs).argmax(0).tolist()
    return [(c - 1, k) for k, c in enumerate(best) if c != 0 and (k == 0 or c != best[k - 1])]


def column_probabilities(log_probs: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """Each column's probabilities of the character classes [classes, T], CTC's blank left out, from its
    log-probabilities [classes + 1, T]; `shift` [classes] is added to the log-probabilities first (a class prior's
    adjustment: inference.prior_shift)."""
    log_p = np.asarray(log_probs, np.float64)[1:]
    if shift is not None:
        log_p = log_p + np.asarray(shift, np.float64)[:, None]
    p = np.exp(log_p - log_p.max(0))
    return (p / p.sum(0)).astype(np.float32)


def row_characters(
    found: Ink,
    row: list,
    strip: Strip,
    log_probs: np.ndarray,
    pieces: list[list],
    probabilities: np.ndarray | None = None,
    one_character: OneCharacter | None = None,
) -> list[Glyph]:
    """A row's characters from its columns' log-probabilities [classes + 1, T] and its pieces of ink (`pieces`, each
    one's ink components as layout.segment_line groups them), left to right.

    Each character CTC's best path reads belongs to the piece of ink nearest it. A piece read as one character is
    that character, its answer (in `probabilities` [classes, T], default column_probabilities of `log_probs`) the
    columns over it, each weighed by how surely it holds a character (1 - CTC's blank); a piece read as none is
    left out. A piece read as several is cut between them at its thinnest columns, unless it is no wider than one
    character can be (preprocess.MAX_CHARACTER letter heights) and the run's piece model (`one_character`:
    glyphkit.pieces' log-probability that a glyph is one character) is surer than SURELY_ONE that it is one: decoded
    freely, the model now and then reads a letter as two (an L as JL), where the gaps around it say one."""
    if not pieces:
        return []
    probabilities = column_probabilities(log_probs) if probabilities is None else probabilities
    xs = ((np.arange(log_probs.shape[1]) + 0.5) * STRIDE - STRIP_PAD) / strip.scale + strip.left  # columns' page x
    read = [k for _, k in best_path(log_probs)]
    extents = np.array([(min(r.bbox[1] for r in piece), max(r.bbox[3] for r in piece)) for piece in pieces])
    distance = np.maximum(np.maximum(extents[:, :1] - xs[read], xs[read] - extents[:, 1:]), 0)  # [pieces, read]
    owner = distance.argmin(0) if read else np.zeros(0, int)
    columns_of = [[k for k, o in zip(read, owner) if o == n] for n in range(len(pieces))]  # what each piece read
    whole, sure = {}, set()
    if one_character is not None:
        # Pieces read as several characters that one character could fill (the piece model sees a 28x28 glyph,
        # blind to its width: an rn squeezed to 28x28 looks like an m).
        widest = MAX_CHARACTER * typical_height(row)
        several = [n for n, cs in enumerate(columns_of) if len(cs) > 1 and extents[n, 1] - extents[n, 0] <= widest]
        whole = {n: emnist_glyph(found.ink, pieces[n], found.labels) for n in several}
        if several:
            log_one = one_character(stacked([whole[n] for n in several]))
            sure = {n for n, log_p in zip(several, log_one) if log_p > np.log(SURELY_ONE)}
    glyphs = []
    for n, (piece, columns) in enumerate(zip(pieces, columns_of)):
        if not columns:
            continue
        if len(columns) > 1 and n not in sure:
            glyphs += cut_characters(found, piece, [(xs[k], k) for k in columns], probabilities)
            continue
        glyph = whole.get(n) or emnist_glyph(found.ink, piece, found.labels)
        x0, x1 = min(extents[n][0], xs[columns[0]]), max(extents[n][1], xs[columns[-1]])  # its ink, what it read
        over = (xs >= x0) & (xs <= x1)
        weight = 1.0 - np.exp(np.asarray(log_probs, np.float64)[0, over]) + 1e-9
        glyph.probabilities = (probabilities[:, over] @ (weight / weight.sum())).astype(np.float32)
        glyphs.append(glyph)
    return glyphs


def cut_characters(found: Ink, regions: list, read: list[tuple[float, int]], probabilities: np.ndarray) -> list[Glyph]:
    """The characters the model read over the ink components `regions`, `read` as (the page x of the column where
    each starts, that column), left to right: each one's ink between the thinnest columns that separate it from its
    neighbours, its answer that column's."""
    if not read:
        return []
    local, mine, (x0, y0) = regions_crop(found.ink, found.labels, regions)
    profile = (local * mine).sum(0)
    centres = [x - x0 for x, _ in read]  # each character's centre in the ink's columns: its first strip column's
    cuts = [0]
    for a, b in zip(centres, centres[1:]):  # the thinnest column in the middle of the way to the next character
        lo = max(int(a + 0.2 * (b - a)), cuts[-1] + 1)
        hi = min(max(int(np.ceil(a + 0.8 * (b - a))), lo + 1), len(profile))
        cuts.append(lo + int(np.argmin(profile[lo:hi])) if lo < len(profile) else len(profile))
    cuts.append(len(profile))
    glyphs = []
    for (_, k), left, right in zip(read, cuts, cuts[1:]):
        part = np.zeros_like(mine)
        part[:, left:right] = mine[:, left:right]
        if not part.any():  # read where its span holds no ink (a stray column): no box to give it
            continue
        glyph = glyph_of(local, part, (x0, y0))
        glyph.probabilities = np.asarray(probabilities[:, k], np.float32)
        glyphs.append(glyph)
    return glyphs
