"""Draw the figures of the README and the docs that need no trained model and no EMNIST data.

`python docs/make_figures.py` writes docs/images/pipeline.png: a made-up "photo" of a word (a font drawn with a
slight tilt, uneven light, paper noise: not handwriting, and no EMNIST glyph), the characters glyphkit finds in it,
and the 28x28 glyphs it would hand to the network. It runs the same `glyphkit.preprocess` as `glyphkit predict`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402

from glyphkit.preprocess import glyphs_from_image  # noqa: E402

OUT = Path(__file__).resolve().parent / "images" / "pipeline.png"
WORD = "Glyph 42"


def photo_of_word(word: str = WORD, seed: int = 0) -> Image.Image:
    """A grey 'photo' of dark ink on light paper: uneven light, noise, a small tilt and blur."""
    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=90)
    page = Image.new("L", (640, 200), 255)
    ImageDraw.Draw(page).text((40, 40), word, fill=40, font=font)
    page = page.rotate(-3, resample=Image.BICUBIC, fillcolor=255).filter(ImageFilter.GaussianBlur(1.2))
    light = np.linspace(0.75, 1.0, page.width)[None, :] * np.linspace(0.9, 1.0, page.height)[:, None]
    pixels = np.asarray(page, dtype=np.float64) * light + rng.normal(0, 6, (page.height, page.width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def main() -> None:
    photo = photo_of_word()
    glyphs = glyphs_from_image(photo, segment=True)
    fig = plt.figure(figsize=(9, 3.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.6, 1])
    ax = top.subplots()
    ax.imshow(photo, cmap="gray", vmin=0, vmax=255)
    for glyph in glyphs:
        x, y, w, h = glyph.box
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="tab:orange", linewidth=2))
    ax.set_title("a photo (a font, not handwriting): the characters glyphkit finds", fontsize=10)
    ax.axis("off")
    axes = bottom.subplots(1, len(glyphs))
    for axis, glyph in zip(np.atleast_1d(axes), glyphs):
        axis.imshow(glyph.image, cmap="gray", vmin=0, vmax=255)
        axis.axis("off")
    bottom.suptitle("the 28x28 glyphs the network reads, drawn the way EMNIST drew its own", fontsize=10)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
