"""Small EMNIST-format data sets drawn from a font, for tests and for trying glyphkit with no download.

The files follow EMNIST exactly (IDX, gzip, images stored transposed, `label ascii_code` mapping), so they go
through the same loading code as the real thing. They are NOT handwriting: they are labelled as synthetic
wherever they are used, and accuracy on them means nothing about EMNIST.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def render_glyphs(chars: str, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Upright uint8 images [N, 28, 28] of each character in PIL's default font, randomly shifted and scaled."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, ch in enumerate(chars):
        for _ in range(per_class):
            size = int(rng.integers(14, 22))
            try:
                font = ImageFont.load_default(size=size)
            except TypeError:  # Pillow < 10.1 has one bitmap size
                font = ImageFont.load_default()
            img = Image.new("L", (28, 28), 0)
            draw = ImageDraw.Draw(img)
            x0, y0, x1, y1 = draw.textbbox((0, 0), ch, font=font)
            x = (28 - (x1 - x0)) // 2 - x0 + int(rng.integers(-2, 3))
            y = (28 - (y1 - y0)) // 2 - y0 + int(rng.integers(-2, 3))
            draw.text((x, y), ch, fill=255, font=font)
            images.append(np.asarray(img))
            labels.append(label)
    return np.stack(images).astype(np.uint8), np.asarray(labels, dtype=np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array (magic 0x0000080N, big-endian sizes, then the bytes)."""
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_emnist_split(
    folder: str | Path,
    split: str,
    chars: str,
    train_per_class: int = 30,
    test_per_class: int = 10,
    compress: bool = True,
    seed: int = 0,
) -> Path:
    """Write `emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]` and the mapping into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for part, n, s in (("train", train_per_class, seed), ("test", test_per_class, seed + 1)):
        images, labels = render_glyphs(chars, n, s)
        images = images.transpose(0, 2, 1)  # EMNIST stores images transposed
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(array)
            path = folder / f"emnist-{split}-{part}-{kind}-ubyte{suffix}"
            path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)
    (folder / f"emnist-{split}-mapping.txt").write_text("".join(f"{i} {ord(c)}\r\n" for i, c in enumerate(chars)))
    return folder
