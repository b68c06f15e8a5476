"""Any image of handwriting -> EMNIST-like 28x28 glyphs, made the way EMNIST itself was made.

EMNIST's conversion of NIST's 128x128 forms (Cohen et al. 2017, "EMNIST: an extension of MNIST to handwritten
letters", section II-A): Gaussian blur (sigma 1), the region of interest cropped, centred in a square frame
keeping the aspect ratio, padded by 2 pixels, downsampled to 28x28 with bicubic interpolation, intensities
scaled to 0..255. (Not MNIST's recipe: no 20x20 box, no centre of mass.) The strokes of an EMNIST glyph span 22 of
the 28 pixels at half their intensity (24 with their soft edges); a user's glyph is brought to NIST's scale first so
the blur means the same at any resolution.

A user's image is a phone photo, a scan or a drawing, so before that: the EXIF orientation is applied, colour
becomes grey, an alpha channel (a drawing on a transparent canvas) is the ink itself, the polarity (dark ink on
light paper, or the reverse) is read from the image's border, uneven light is flattened, and specks are ignored.
`segment_line` splits a line of handwriting into characters. All image processing is scikit-image's.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from skimage.filters import gaussian, threshold_otsu
from skimage.measure import label, regionprops
from skimage.morphology import dilation, footprint_rectangle, opening
from skimage.transform import resize

MAX_PIXELS = 50_000_000  # larger images are refused before they are decoded (a 12 MP phone photo is 12M)
POLARITIES = ("auto", "dark-on-light", "light-on-dark")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
NIST_SIDE = 96  # the long side a glyph is brought to before the blur: NIST's glyphs on their 128x128 forms
# Pixels of the 28 that a glyph's strokes span on their long side, measured where the preprocessing crops them (at
# half intensity): the median over proxy47's test glyphs is 22 (benchmarks/experiments/glyph_span.py prints it and
# compares).
GLYPH_SPAN = 22
SPECK = 0.02  # ink components smaller than this share of the largest one are noise
FRAGMENT = 0.4  # in a line, components less tall than this share of the median height belong to a neighbour
BACKGROUND_SIDE = 128  # the background is estimated on the image shrunk to this side (fast at any size)


class ImageError(ValueError):
    """An input that cannot be read as handwriting, with a message that names the file and says why."""


@dataclass
class Glyph:
    """One character found in an image: the 28x28 glyph the model sees, and where it was (x, y, w, h)."""

    image: np.ndarray  # uint8 [28, 28], upright, ink bright on black (as glyphkit holds EMNIST)
    box: tuple[int, int, int, int]


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image at `path`, upright (EXIF orientation applied), refusing non-images and huge images."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            width, height = image.size  # read from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise ImageError(f"{path}: {width}x{height} pixels is more than the {max_pixels:,} glyphkit reads; "
                                 "scale the image down or crop it to the handwriting")
            image = ImageOps.exif_transpose(image)
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: not an image glyphkit can read ({type(exc).__name__}); use PNG, JPEG, BMP, "
                         "GIF, TIFF or WebP") from exc
    except OSError as exc:  # truncated or damaged files, unreadable paths
        raise ImageError(f"{path}: cannot read the image ({exc.strerror or exc})") from exc
    return image


def ink_map(image: Image.Image, polarity: str = "auto", source: str = "image") -> np.ndarray:
    """float32 [H, W] in [0, 1]: how much ink each pixel holds (0 = paper), on a flattened background."""
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"), dtype=np.float32)[..., 3] / 255
        if alpha.min() < 0.5 < alpha.max():  # strokes on a transparent canvas: the opaque part is the ink
            return _flatten(alpha, source)
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255
    if grey.max() - grey.min() < 0.05:
        raise ImageError(f"{source}: the image is blank (one flat tone); nothing to read")
    if polarity == "auto":
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        polarity = "dark-on-light" if np.median(border) > threshold_otsu(grey) else "light-on-dark"
    return _flatten(1 - grey if polarity == "dark-on-light" else grey, source)


def _flatten(ink: np.ndarray, source: str) -> np.ndarray:
    """Subtract the background (uneven light, tinted paper) and scale the ink to reach 1."""
    scale = min(1.0, BACKGROUND_SIDE / max(ink.shape))
    small = resize(ink, (max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))),
                   anti_aliasing=scale < 1)
    # An opening with a square wider than any stroke removes the strokes and keeps the background's slow changes
    # (a square, applied as two 1-d passes, costs a fraction of a disk: the drawing pad answers on pen-up).
    background = opening(small, _square(2 * max(2, max(small.shape) // 8) + 1))
    ink = np.clip(ink - resize(background, ink.shape, order=1), 0, None)
    if ink.max() <= 0.05:
        raise ImageError(f"{source}: no ink found (the image is blank or its contrast is too low)")
    level = np.percentile(ink[ink > threshold_otsu(ink)], 90)
    return np.clip(ink / max(level, 1e-6), 0, 1).astype(np.float32)


def _square(side: int):
    return footprint_rectangle((side, side), decomposition="separable")


def ink_components(ink: np.ndarray) -> tuple[np.ndarray, list]:
    """(labels, regions) of the connected ink strokes, specks left out; regions sorted left to right."""
    labels = label(ink > threshold_otsu(ink), connectivity=2)
    regions = regionprops(labels)
    if not regions:
        return labels, []
    largest = max(r.area for r in regions)
    kept = [r for r in regions if r.area >= max(4, SPECK * largest)]
    return labels, sorted(kept, key=lambda r: r.bbox[1])


def segment_line(regions: list) -> list[list]:
    """The characters of a line of handwriting (its ink components, from ink_components), left to right, each as
    the list of its components.

    Components at least FRAGMENT of the line's median height are characters, and one joins the character before
    it when their horizontal extents overlap by at least half the narrower one (a stroke broken in two). Smaller
    components (the dot of an i or j, a chipped-off bit of a stroke) join the character nearest to them
    horizontally. Characters must not touch each other."""
    if not regions:
        return []
    line_height = np.median([r.bbox[2] - r.bbox[0] for r in regions])
    parts = [r for r in regions if r.bbox[2] - r.bbox[0] >= FRAGMENT * line_height]
    characters: list[list] = []
    for region in parts:
        if characters and _overlap(region, characters[-1]) >= 0.5 * min(_width([region]), _width(characters[-1])):
            characters[-1].append(region)
        else:
            characters.append([region])
    for fragment in (r for r in regions if r.bbox[2] - r.bbox[0] < FRAGMENT * line_height):
        min(characters, key=lambda c: -_overlap(fragment, c)).append(fragment)
    return [sorted(c, key=lambda r: r.bbox[1]) for c in characters]


def _extent(regions: list) -> tuple[int, int]:
    return min(r.bbox[1] for r in regions), max(r.bbox[3] for r in regions)


def _width(regions: list) -> int:
    x0, x1 = _extent(regions)
    return x1 - x0


def _overlap(region, character: list) -> int:
    """Horizontal overlap of a component and a character in pixels (negative: the gap between them)."""
    x0, x1 = _extent(character)
    return min(region.bbox[3], x1) - max(region.bbox[1], x0)


def emnist_glyph(ink: np.ndarray, regions: list, labels: np.ndarray, span: float = GLYPH_SPAN) -> Glyph:
    """The EMNIST-like 28x28 glyph of the ink components `regions` (one character), its strokes `span` pixels
    long on their long side (benchmarks/experiments/glyph_span.py measures other spans)."""
    y0, x0 = min(r.bbox[0] for r in regions), min(r.bbox[1] for r in regions)
    y1, x1 = max(r.bbox[2] for r in regions), max(r.bbox[3] for r in regions)
    h, w = y1 - y0, x1 - x0
    # This character's strokes with their soft edges; other characters' strokes and specks in its box are dropped.
    mine = np.isin(labels[y0:y1, x0:x1], [r.label for r in regions])
    mine = dilation(mine, _square(2 * max(1, round(max(h, w) / 24)) + 1))
    crop = ink[y0:y1, x0:x1] * mine
    scale = NIST_SIDE / max(h, w)
    crop = np.clip(resize(crop, (max(1, round(h * scale)), max(1, round(w * scale))), order=3,
                          anti_aliasing=scale < 1), 0, None)
    crop = gaussian(crop, sigma=1)
    side = round(NIST_SIDE * 28 / span)  # the square frame: the strokes span `span` of its 28 pixels
    frame = np.zeros((side, side), np.float32)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    frame[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    small = np.clip(resize(frame, (28, 28), order=3, anti_aliasing=True), 0, None)
    glyph = np.round(255 * small / max(small.max(), 1e-6)).astype(np.uint8)
    return Glyph(glyph, (int(x0), int(y0), int(w), int(h)))


def glyphs_from_image(image: Image.Image, *, segment: bool = False, polarity: str = "auto",
                      source: str = "image") -> list[Glyph]:
    """One glyph for the whole image, or (segment=True) one per character of a line, left to right."""
    ink = ink_map(image, polarity, source)
    labels, regions = ink_components(ink)
    if not regions:
        raise ImageError(f"{source}: no ink found (the image is blank or its contrast is too low)")
    groups = segment_line(regions) if segment else [regions]
    return [emnist_glyph(ink, group, labels) for group in groups]


def glyphs_from_file(path: str | os.PathLike, *, segment: bool = False, polarity: str = "auto") -> list[Glyph]:
    return glyphs_from_image(read_image(path), segment=segment, polarity=polarity, source=str(path))


def glyphs_of_files(files: list[Path], *, segment: bool = False, polarity: str = "auto"
                    ) -> Iterator[tuple[Path, list[Glyph], str | None]]:
    """(file, its glyphs, None), or (file, [], why it cannot be read) for a bad file: one bad file never stops the
    others. What `glyphkit predict` and the ONNX runtime read a batch of files with."""
    for file in files:
        try:
            yield file, glyphs_from_file(file, segment=segment, polarity=polarity), None
        except ImageError as exc:
            yield file, [], str(exc)


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Files as given, and the images inside folders (recursively, sorted); a missing path is an ImageError."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise ImageError(f"{path}: no such file or folder")
    return files
