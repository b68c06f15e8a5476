"""The piece model: does a piece of ink hold exactly one character?

`predict --segment` cuts ink that may hold several touching letters where its pieces read best
(preprocess.split_touching). The glyph classifier alone judges that badly: it was only ever shown single characters,
so it reads two touching letters as one wide letter (11 as n, 79 as A) about as confidently as either alone. The
piece model is a second, small network, trained to answer the question the classifier cannot: is this piece one
character, or part of one, or parts of two?

It learns from the pieces split_touching itself considers, on lines of the run's own training glyphs drawn as scans
(glyphkit.scans.line_ink) with gaps and with touching letters; each piece is labelled from where the rendering put
each glyph's strokes. With it, split_touching adds PIECE_WEIGHT times its log-probability of "one character" to each
piece's score.

    glyphkit train-pieces outputs      # -> outputs/piece_model.pth; predict --segment uses it from then on
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from glyphkit.config import Config
from glyphkit.data import load_run_split
from glyphkit.models import GlyphNet
from glyphkit.preprocess import Glyph, ImageError, Splitter, glyphs_from_image, stacked
from glyphkit.rundir import (
    BEST,
    CheckpointError,
    atomic_write,
    check_weights,
    checkpoint_config,
    load_checkpoint,
    safe_load,
)
from glyphkit.runtime import autocast_dtype, resolve_device, seed_everything
from glyphkit.scans import degrade, line_ink

PIECE_MODEL = "piece_model.pth"  # in the run folder, beside best_model.pth

# How the pieces are read (preprocess.Splitter) when a run has a piece model. Chosen on the paper test's gapped and
# touching lines (benchmarks/paper_test.py --parts lines) with the fast preset's run, weights 1-4, widths 0.4-1.2 and
# costs 0-0.75 tried; checked on lines of validation glyphs by benchmarks/experiments/piece_tuning.py.
PIECE_WEIGHT = 4.0  # its log-probability counts this many times the classifier's: it judges the cuts, not the class
PIECE_WIDE = 0.7  # ink from 0.7 letter heights wide may be two letters (two touching 1s are narrower than 1.2)
PIECE_CUT_COST = 0.0  # the piece model stops a wide letter being read as two, which CUT_COST did without it

# Training. About 50,000 pieces from 2,400 lines; 8 epochs take about 10 minutes on 2 CPU cores with bf16.
PIECE_LINES = 2400  # lines of training glyphs rendered
PIECE_GAPS = ((-0.08, 0.0), (-0.08, 0.0), (0.02, 0.15))  # in turn: two touching lines for each with small gaps
PIECE_EPOCHS = 8
PIECE_BATCH = 256
PIECE_LR = 4e-3  # OneCycle's peak learning rate
PIECE_WEIGHT_DECAY = 5e-4
PIECE_WIDTH = 32  # GlyphNet's width: the fast preset's network with two outputs
PIECE_DROPOUT = 0.2
HELD_OUT_LINES = 300  # lines of the run's validation glyphs the finished model is checked on
READ_BATCH = 4096  # pieces read per network call (a page's candidates are fewer; the held-out pieces many more)

# A piece is one character when it covers at least ONE_CHARACTER of one glyph's width and at most NEIGHBOUR of any
# other's (touching letters overlap, so a right cut still takes a sliver of the neighbour), and is at most
# WIDER_THAN_ITS_GLYPH times as wide as that glyph, give or take PIXEL_SLACK pixels.
ONE_CHARACTER, NEIGHBOUR, WIDER_THAN_ITS_GLYPH, PIXEL_SLACK = 0.85, 0.25, 1.3, 4


@dataclass
class Pieces:
    """Candidate pieces of rendered lines: their 28x28 glyphs, and whether each holds exactly one character."""

    images: np.ndarray  # uint8 [N, 28, 28]
    one_character: np.ndarray  # bool [N]


def is_one_character(box: tuple[int, int, int, int], extents: list[tuple[int, int]]) -> bool:
    """Whether a piece whose box is (x, y, w, h) holds one character of a line whose glyphs' strokes span `extents`
    ((left, right) columns, right exclusive)."""
    left, right = box[0], box[0] + box[2]
    covered = [max(0, min(right, b) - max(left, a)) / max(1, b - a) for a, b in extents]
    best = int(np.argmax(covered))
    others = max((c for i, c in enumerate(covered) if i != best), default=0.0)
    width = extents[best][1] - extents[best][0]
    alone = covered[best] >= ONE_CHARACTER and others <= NEIGHBOUR
    return alone and box[2] <= WIDER_THAN_ITS_GLYPH * width + PIXEL_SLACK


def line_pieces(image, extents: list[tuple[int, int]]) -> tuple[list[Glyph], list[bool]]:
    """Every piece split_touching considers in one line's image (and each character it is read as), labelled."""
    seen: list[Glyph] = []

    def record(glyphs: list[Glyph]) -> np.ndarray:
        seen.extend(glyphs)
        return np.zeros(len(glyphs))  # the candidates do not depend on the scores: none is needed

    try:
        read = glyphs_from_image(image, segment=True, split=Splitter(record, PIECE_WIDE, PIECE_CUT_COST))
    except ImageError:  # a line too faint to find: nothing to learn from it
        return [], []
    scored = {id(g) for g in seen}
    pieces = seen + [g for g in read if id(g) not in scored]  # ink too narrow to cut is one character, read whole
    # The candidates' boxes are on the levelled working image, the extents on the drawing. A line is drawn level and
    # under WORK_PIXELS, so the two agree; a line levelled by a degree or so moves its columns by a pixel or two,
    # within PIXEL_SLACK and the coverage shares' margins.
    return pieces, [is_one_character(g.box, extents) for g in pieces]


def render_pieces(glyphs: np.ndarray, lines: int, rng: np.random.Generator, progress: bool = True) -> Pieces:
    """The pieces of `lines` lines of 4-9 of `glyphs`, drawn as scans with PIECE_GAPS in turn."""
    images, labels = [], []
    for n in tqdm(range(lines), desc="render lines", disable=not progress, leave=False):
        chosen = glyphs[rng.choice(len(glyphs), size=int(rng.integers(4, 10)), replace=False)]
        ink, extents = line_ink(chosen, rng, PIECE_GAPS[n % len(PIECE_GAPS)])
        pieces, one = line_pieces(degrade(ink, rng), extents)
        images += [g.image for g in pieces]
        labels += one
    return Pieces(np.stack(images) if images else np.zeros((0, 28, 28), np.uint8), np.array(labels, dtype=bool))


class PieceModel:
    """A trained piece model: log_one_character(glyphs) is each 28x28 piece's log-probability of being one
    character."""

    def __init__(
        self,
        network: nn.Module,
        mean: float,
        std: float,
        device: str | torch.device = "cpu",
        trained: dict | None = None,
        precision: str = "auto",
    ):
        self.device = resolve_device(str(device))
        self.network = network.to(self.device).eval()
        self.mean, self.std = mean, std
        self.amp_dtype = autocast_dtype(self.device, precision)
        self.trained = trained or {}  # how it was trained (train_piece_model), as its file records it

    def inputs(self, glyphs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 glyphs [N, 28, 28] as the network's normalised input [N, 1, 28, 28]."""
        glyphs = torch.as_tensor(glyphs)
        return ((glyphs.float() / 255 - self.mean) / self.std).unsqueeze(1).to(self.device)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None):
            return self.network(inputs).float()

    @torch.no_grad()
    def log_one_character(self, glyphs: np.ndarray, batch_size: int = READ_BATCH) -> np.ndarray:
        """Each uint8 glyph's [N, 28, 28] log-probability of being one character, read `batch_size` at a time: a
        page's candidates in one call, thousands of held-out pieces without holding them all on the device."""
        parts = [
            self.logits(self.inputs(glyphs[i : i + batch_size])).log_softmax(1)[:, 1].cpu().numpy()
            for i in range(0, len(glyphs), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def splitter(self, score: Callable[[np.ndarray], np.ndarray]) -> Splitter:
        """How touching letters are cut with this model beside the classifier's `score` (best log-probabilities of
        uint8 glyphs [N, 28, 28])."""

        def both(pieces: list[Glyph]) -> np.ndarray:
            glyphs = stacked(pieces)
            return score(glyphs) + PIECE_WEIGHT * self.log_one_character(glyphs)

        return Splitter(both, PIECE_WIDE, PIECE_CUT_COST)

    def describe(self, output: str) -> dict[str, Any]:
        """An export's description of it (glyphkit.export): its output, and how to cut touching letters with it
        (runtime_onnx reads these, so it needs neither torch nor this module)."""
        return {
            "output": output,
            "meaning": "log-probability that the glyph is exactly one character (not part of one, or parts of two)",
            "weight": PIECE_WEIGHT,
            "wide": PIECE_WIDE,
            "cut_cost": PIECE_CUT_COST,
            "trained": self.trained,
        }

    def state(self, **trained: Any) -> dict[str, Any]:
        """The checkpoint dict: weights, the input normalisation, and how it was trained."""
        return {
            "piece_model": {"width": PIECE_WIDTH, "dropout": PIECE_DROPOUT, "mean": self.mean, "std": self.std},
            "model": {k: v.cpu() for k, v in self.network.state_dict().items()},
            "trained": trained,
        }

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "auto") -> PieceModel:
        """A piece model file (loaded safely: weights_only), run with autocast as `precision` says (the run's own, so
        that it reads as its run does: inference.Predictor)."""
        state = safe_load(path)
        spec = state.get("piece_model") if isinstance(state, dict) else None
        if not isinstance(spec, dict) or "model" not in state:
            raise CheckpointError(f"{path} is not a piece model; write one with `glyphkit train-pieces RUN`")
        check_weights(state["model"], "model", Path(path))
        network = GlyphNet(2, spec["dropout"], True, spec["width"])
        try:
            network.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: the weights do not fit a piece model; the file is damaged") from exc
        return cls(network, float(spec["mean"]), float(spec["std"]), device, state.get("trained"), precision)

    @classmethod
    def of_run(
        cls, run_dir: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "auto"
    ) -> PieceModel | None:
        """The run's piece model, or None when it has none."""
        path = Path(run_dir) / PIECE_MODEL
        return cls.load(path, device, precision) if path.exists() else None


def fit(model: PieceModel, pieces: Pieces, epochs: int, seed: int, progress: bool = True) -> None:
    """Train the network on the pieces: AdamW with a one-cycle learning rate, cross-entropy, bf16 autocast where
    the hardware has it."""
    generator = torch.Generator().manual_seed(seed)
    images, labels = torch.from_numpy(pieces.images), torch.from_numpy(pieces.one_character.astype(np.int64))
    steps = max(1, len(images) // PIECE_BATCH)
    optimizer = torch.optim.AdamW(model.network.parameters(), PIECE_LR / 2, weight_decay=PIECE_WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PIECE_LR, total_steps=epochs * steps)
    model.network.train()
    for _ in tqdm(range(epochs), desc="train piece model", disable=not progress, leave=False):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps):
            batch = order[step * PIECE_BATCH : (step + 1) * PIECE_BATCH]
            loss = F.cross_entropy(model.logits(model.inputs(images[batch])), labels[batch].to(model.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.network.eval()


def held_out_scores(model: PieceModel, pieces: Pieces) -> dict[str, float]:
    """How well the model tells one character from not on pieces it was not trained on: ROC AUC and accuracy."""
    if len(pieces.images) == 0 or pieces.one_character.all() or not pieces.one_character.any():
        return {}
    p = np.exp(model.log_one_character(pieces.images))
    return {
        "held_out_pieces": int(len(p)),
        "held_out_auc": float(roc_auc_score(pieces.one_character, p)),
        "held_out_accuracy": float(((p > 0.5) == pieces.one_character).mean()),
    }


def train_piece_model(
    run_dir: str | os.PathLike,
    *,
    lines: int = PIECE_LINES,
    epochs: int = PIECE_EPOCHS,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train a run's piece model on lines of its training glyphs, check it on lines of its validation glyphs, and
    write RUN_DIR/piece_model.pth (atomically). Returns its path."""
    state = load_checkpoint(Path(run_dir) / BEST)
    config: Config = checkpoint_config(state)
    data = load_run_split(config, data_dir)
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    pieces = render_pieces(data.train_images.numpy(), lines, rng, progress)
    rendered = time.perf_counter()
    log(f"{len(pieces.images):,} pieces from {lines:,} lines, {pieces.one_character.mean():.0%} of them one character")
    network = GlyphNet(2, PIECE_DROPOUT, True, PIECE_WIDTH)
    model = PieceModel(
        network, float(config.norm_mean), float(config.norm_std), device or config.device, precision=config.precision
    )
    fit(model, pieces, epochs, seed, progress)
    seconds = {"render_seconds": rendered - started, "train_seconds": time.perf_counter() - rendered}
    held_out = Pieces(np.zeros((0, 28, 28), np.uint8), np.zeros(0, bool))
    if len(data.val_images) >= 10:
        held_out = render_pieces(data.val_images.numpy(), min(HELD_OUT_LINES, max(1, lines // 8)), rng, progress)
    scores = held_out_scores(model, held_out)
    if scores:
        log(
            f"held out ({scores['held_out_pieces']:,} pieces of validation glyphs): ROC AUC "
            f"{scores['held_out_auc']:.4f}, accuracy {scores['held_out_accuracy']:.1%}"
        )
    path = Path(run_dir) / PIECE_MODEL
    trained = {"lines": lines, "pieces": int(len(pieces.images)), "epochs": epochs, "seed": seed, **seconds, **scores}
    atomic_write(path, lambda tmp: torch.save(model.state(**trained), tmp))
    log(f"wrote {path}: `glyphkit predict {run_dir} IMAGE --segment` now cuts touching letters with it")
    return path
