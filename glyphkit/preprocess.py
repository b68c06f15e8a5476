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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from skimage.filters import gaussian, threshold_otsu
from skimage.measure import label, regionprops
from skimage.morphology import dilation, footprint_rectangle, opening
from skimage.transform import resize

MAX_PIXELS = 50_000_000  # larger images are refused before they are decoded (a 12 MP phone photo is 12M)
POLARITIES = ("auto", "dark-on-light", "light-on-dark")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
OS_METADATA = (".ds_store", "thumbs.db", "desktop.ini")  # and macOS's "._NAME" files: see is_os_metadata
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
    """float32 [H, W] in [0, 1]: how much ink each pixel holds (0 = paper), on a flattened background."""
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    image = eight_bit(image)
    if image.mode == "RGBA":
        alpha = np.asarray(image, dtype=np.float32)[..., 3] / 255
        if alpha.min() < 0.5 < alpha.max():  # strokes on a transparent canvas: the opaque part is the ink
            return _flatten(alpha, source)
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
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
    small = resize(
        ink, (max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))), anti_aliasing=scale < 1
    )
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
    return Glyph(glyph, (int(x0), int(y0), int(w), int(h)))


def glyphs_from_image(
    image: Image.Image, *, segment: bool = False, polarity: str = "auto", source: str = "image"
) -> list[Glyph]:
    """One glyph for the whole image, or (segment=True) one per character of a line, left to right."""
    ink = ink_map(image, polarity, source)
    labels, regions = ink_components(ink)
    if not regions:
        raise ImageError(f"{source}: no ink found (the image is blank or its contrast is too low)")
    groups = segment_line(regions) if segment else [regions]
    return [emnist_glyph(ink, group, labels) for group in groups]


def glyphs_from_file(path: str | os.PathLike, *, segment: bool = False, polarity: str = "auto") -> list[Glyph]:
    return glyphs_from_image(read_image(path), segment=segment, polarity=polarity, source=str(path))


def glyphs_of_files(
    files: list[Path], *, segment: bool = False, polarity: str = "auto"
) -> Iterator[tuple[Path, list[Glyph], str | None]]:
    """(file, its glyphs, None), or (file, [], why it cannot be read) for a bad file: one bad file never stops the
    others. What `glyphkit predict` and the ONNX runtime read a batch of files with."""
    for file in files:
        try:
            yield file, glyphs_from_file(file, segment=segment, polarity=polarity), None
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
