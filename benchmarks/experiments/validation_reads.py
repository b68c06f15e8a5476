"""Validation glyphs drawn under the paper test's conditions and read as `glyphkit predict` reads them: what the
experiments that choose a constant of glyphkit.preprocess share (tiny_images.py, magnified_strokes.py).

They draw the run's **validation** glyphs: the paper test reads the test glyphs, and a setting must not be chosen on
them. The renderings are held in memory: they are derived from EMNIST and never committed.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from glyphkit import preprocess
from glyphkit.data import load_config_split
from glyphkit.inference import Predictor, load_predictor
from glyphkit.rundir import BEST, checkpoint_config, load_checkpoint
from glyphkit.scans import render_condition


@dataclass
class ValidationDrawings:
    """A sample of a run's validation glyphs, each drawn under every condition, and the run's model to read them."""

    split: str
    glyphs: np.ndarray  # uint8 [N, 28, 28], as the arrays hold them
    labels: np.ndarray  # int [N]
    drawn: dict[str, list[Image.Image]]  # condition -> the N glyphs drawn under it
    predictor: Predictor

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The model's top-1 class (int [N]) for each of the 28x28 glyphs [N, 28, 28]."""
        return self.predictor.probabilities(torch.from_numpy(images)).argmax(1).numpy()

    def accuracy(self, images: np.ndarray) -> float:
        """The model's top-1 accuracy on 28x28 glyphs [N, 28, 28], in the sample's order."""
        return float((self.predict(images) == self.labels).mean())

    def read(self, condition: str, workers: int = 1) -> np.ndarray:
        """The condition's images as predict reads them, with glyphkit.preprocess's settings as they are now; a
        refused image (no handwriting found) is a blank glyph, read wrong as the paper test counts it. With
        `workers` > 1, read by that many forked processes: each starts with this process's settings."""
        images = self.drawn[condition]
        if workers <= 1:
            return np.stack([_glyph(image) for image in tqdm(images, desc=condition, leave=False)])
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            read = pool.map(_glyph, images, chunksize=32)
            return np.stack(list(tqdm(read, total=len(images), desc=condition, leave=False)))


def _glyph(image: Image.Image) -> np.ndarray:
    try:
        return preprocess.glyphs_from_image(image)[0].image
    except preprocess.ImageError:
        return np.zeros((28, 28), np.uint8)


def draw_validation(run: Path, data_dir: str, conditions: tuple[str, ...], count: int, seed: int) -> ValidationDrawings:
    """`count` of the run's validation glyphs, chosen and drawn under each of `conditions` from one seeded stream."""
    config = checkpoint_config(load_checkpoint(run / BEST))
    data = load_config_split(config.replace(data_dir=data_dir))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(data.val_labels), size=min(count, len(data.val_labels)), replace=False)
    glyphs, labels = data.val_images.numpy()[chosen], data.val_labels.numpy()[chosen]
    drawn = {c: [render_condition(g, c, rng) for g in tqdm(glyphs, desc=c, leave=False)] for c in conditions}
    return ValidationDrawings(config.split, glyphs, labels, drawn, load_predictor(run))
