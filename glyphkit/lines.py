"""The line model: reads a row of writing whole, so letters that touch need no cut.

`predict --segment` reads with it the rows holding ink wider than a letter (preprocess.READ_WHOLE), where letters
touch; the classifier reads the letters of the other rows one by one, which it does better.

`predict --segment` without it cuts each piece of ink into characters and reads them one by one (preprocess.
split_touching, with the piece model judging the cuts: glyphkit.pieces). Letters that overlap leave no column where
a cut parts them, and some overlapping pairs make a shape that is itself a character (a 1 over an 8 reads as B). The
line model does not cut: it reads the whole row as a sequence and is trained with CTC (connectionist temporal
classification, Graves et al. 2006), which never needs to be told where one letter ends.

- The row as the network sees it (glyphkit.strips, which has no torch, so runtime_onnx shares it): its ink, scaled
  so that a typical letter is GLYPH_SPAN pixels high (EMNIST's strokes span 22 of a glyph's 28 pixels), in a strip
  STRIP_HEIGHT pixels high.
- The network (`LineReader`): the run's classifier's convolutions (GlyphNet's stem and stages, trained weights to
  start from) slide along the strip; a convolution collapses its height, another reads a few letters of context,
  and each column (STRIDE pixels of the strip, a fifth of a letter) gives the log-probabilities of the classes and
  CTC's blank. A row's characters are CTC's best path: each column's likeliest class, repeats merged, blanks dropped.
- The gaps between letters count them too (glyphkit.strips.row_characters): each character read belongs to the
  nearest piece of ink; a piece read as one is that character, a piece read as several is cut between them at the
  thinnest columns unless the run's piece model is sure it is one letter. Each character's 28x28 glyph (what
  `--save-crops` writes) is made from its ink; its answer is the line model's, not the classifier's.
- Training lines: lines of 4-9 of the run's training glyphs drawn as scans (glyphkit.scans.line_ink, degrade),
  touching, gapped and spaced in turn. benchmarks/experiments/line_ctc.py measured it against the cuts.

    glyphkit train-lines outputs      # -> outputs/line_model.pth; predict --segment reads rows with it from then on
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from glyphkit.config import Config, ConfigError
from glyphkit.data import load_run_split
from glyphkit.models import GlyphNet, build_model
from glyphkit.preprocess import Glyph, ImageError, Ink
from glyphkit.rundir import (
    BEST,
    CheckpointError,
    atomic_write,
    check_weights,
    checkpoint_config,
    eval_state_dict,
    load_checkpoint,
    safe_load,
)
from glyphkit.runtime import autocast_dtype, resolve_device, seed_everything
from glyphkit.scans import degrade, line_ink
from glyphkit.strips import (
    STRIDE,
    STRIP_HEIGHT,
    OneCharacter,
    image_strip,
    row_characters,
    row_strip,
    stacked_strips,
)

LINE_MODEL = "line_model.pth"  # in the run folder, beside best_model.pth

# The network (the strip's geometry, STRIP_HEIGHT and STRIDE, is glyphkit.strips').
HIDDEN = 256  # channels of a column once the strip's height is collapsed
DROPOUT = 0.2

# Training: 36,000 lines drawn in about 11 minutes, 12 epochs in about 31 on 2 CPU cores with bf16. Against 24,000
# lines and 8 epochs (half the time), it counted more lines of validation glyphs right, gapped and touching
# (benchmarks/results/line_ctc-longer-fast47.json beside line_ctc-read-whole-fast47.json's "every row").
LINE_LINES = 36000  # lines of training glyphs drawn
LINE_GAPS = ((-0.08, 0.0), (0.02, 0.15), (0.2, 0.8))  # in turn: touching, gapped, spaced (in glyph widths)
LINE_EPOCHS = 12
LINE_BATCH = 32  # lines per step, of similar widths
LINE_LR = 1e-3  # OneCycle's peak for the new layers ...
TRUNK_LR = 3e-4  # ... and for the classifier's convolutions, which already read glyphs
LINE_WEIGHT_DECAY = 1e-4


class LineReader(nn.Module):
    """Strips [B, 1, STRIP_HEIGHT, W] -> log-probabilities [B, classes + 1, W // STRIDE] (index 0: CTC's blank)."""

    def __init__(self, trunk: GlyphNet, classes: int):
        super().__init__()
        self.stem, self.stages = trunk.stem, trunk.stages  # the classifier's convolutions
        channels = trunk.classifier[-1].in_features
        self.collapse = nn.Sequential(  # the strip's height (8 rows after the poolings) into one column
            nn.Conv2d(channels, HIDDEN, (STRIP_HEIGHT // STRIDE, 1), bias=False), nn.BatchNorm2d(HIDDEN), nn.ReLU()
        )
        self.context = nn.Sequential(  # each column sees its neighbours: about three letters in all
            nn.Conv1d(HIDDEN, HIDDEN, 5, padding=2, bias=False),
            nn.BatchNorm1d(HIDDEN),
            nn.ReLU(),
            nn.Dropout(DROPOUT),
            nn.Conv1d(HIDDEN, classes + 1, 1),
        )

    def forward(self, strips: torch.Tensor) -> torch.Tensor:
        columns = self.collapse(self.stages(self.stem(strips))).squeeze(2)
        return F.log_softmax(self.context(columns).float(), dim=1)


def padded(strips: list[np.ndarray], mean: float, std: float) -> tuple[torch.Tensor, list[int]]:
    """Strips of different widths as one normalised batch (paper added on the right), and each one's columns."""
    return (torch.from_numpy(stacked_strips(strips)) - mean) / std, [s.shape[1] // STRIDE for s in strips]


class LineModel:
    """A trained line model: `read_rows(found, rows, row_pieces)` reads rows of writing of a page whole."""

    def __init__(
        self,
        network: LineReader,
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
        self.trained = trained or {}  # how it was trained (train_line_model), as its file records it

    def log_probs(self, strips: list[np.ndarray]) -> torch.Tensor:
        x, _ = padded(strips, self.mean, self.std)
        with torch.autocast(self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None):
            return self.network(x.to(self.device)).float()

    @torch.no_grad()
    def read_rows(
        self, found: Ink, rows: list[list], row_pieces: list[list[list]], one_character: OneCharacter | None = None
    ) -> list[list[Glyph]]:
        """Each row's characters (rows: the ink components of each row of writing, top to bottom; row_pieces: each
        row's pieces of ink, layout.segment_line's), left to right, each a Glyph whose `probabilities` are the line
        model's answer; `one_character`: the run's piece model, which keeps a letter read as two whole
        (strips.row_characters). All rows in one network call."""
        strips = [row_strip(found.ink, found.labels, row) for row in rows]
        log_probs = self.log_probs([s.image for s in strips]).cpu().numpy()
        return [
            row_characters(
                found, row, strip, log_probs[k][:, : strip.columns], row_pieces[k], one_character=one_character
            )
            for k, (row, strip) in enumerate(zip(rows, strips))
        ]

    def state(self, width: int, residual: bool, classes: int, **trained: Any) -> dict[str, Any]:
        """The checkpoint dict: weights, the network's sizes, the input normalisation, and how it was trained."""
        return {
            "line_model": {
                "width": width,
                "residual": residual,
                "classes": classes,
                "mean": self.mean,
                "std": self.std,
            },
            "model": {k: v.cpu() for k, v in self.network.state_dict().items()},
            "trained": trained,
        }

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "auto") -> LineModel:
        """A line model file (loaded safely: weights_only), run with autocast as `precision` says (its run's)."""
        state = safe_load(path)
        spec = state.get("line_model") if isinstance(state, dict) else None
        if not isinstance(spec, dict) or "model" not in state:
            raise CheckpointError(f"{path} is not a line model; write one with `glyphkit train-lines RUN`")
        check_weights(state["model"], "model", Path(path))
        trunk = GlyphNet(spec["classes"], 0.0, spec["residual"], spec["width"])
        network = LineReader(trunk, spec["classes"])
        try:
            network.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: the weights do not fit a line model; the file is damaged") from exc
        return cls(network, float(spec["mean"]), float(spec["std"]), device, state.get("trained"), precision)

    @classmethod
    def of_run(
        cls, run_dir: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "auto"
    ) -> LineModel | None:
        """The run's line model, or None when it has none."""
        path = Path(run_dir) / LINE_MODEL
        return cls.load(path, device, precision) if path.exists() else None


def render_lines(
    images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator, progress: bool = True
) -> tuple[list[np.ndarray], list[list[int]]]:
    """`count` lines of 4-9 of `images` drawn as scans, spaced as LINE_GAPS in turn: their uint8 strips and labels."""
    strips, texts = [], []
    for n in tqdm(range(count), desc="draw lines", disable=not progress, leave=False):
        chosen = rng.choice(len(images), size=int(rng.integers(4, 10)), replace=False)
        ink, _ = line_ink(images[chosen], rng, LINE_GAPS[n % len(LINE_GAPS)])
        try:
            strip = image_strip(degrade(ink, rng))
        except ImageError:  # a line too faint to find: nothing to learn from it
            continue
        strips.append(np.round(strip.image * 255).astype(np.uint8))
        texts.append(labels[chosen].tolist())
    return strips, texts


def fit(
    model: LineModel, strips: list[np.ndarray], texts: list[list[int]], epochs: int, seed: int, progress: bool = True
) -> list[float]:
    """CTC training, lines of similar widths batched together (less paper to pad): AdamW with a one-cycle learning
    rate, bf16 autocast where the hardware has it. Returns each epoch's mean loss."""
    rng = np.random.default_rng(seed)
    order = np.argsort([s.shape[1] for s in strips], kind="stable")
    batches = [order[k : k + LINE_BATCH] for k in range(0, len(order), LINE_BATCH)]
    net = model.network
    trunk = [*net.stem.parameters(), *net.stages.parameters()]
    head = [*net.collapse.parameters(), *net.context.parameters()]
    optimizer = torch.optim.AdamW(
        [{"params": trunk, "lr": TRUNK_LR}, {"params": head, "lr": LINE_LR}], weight_decay=LINE_WEIGHT_DECAY
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[TRUNK_LR, LINE_LR], total_steps=max(1, epochs * len(batches)), pct_start=0.15
    )
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    losses = []
    net.train()
    for epoch in range(epochs):
        total = 0.0
        for b in tqdm(rng.permutation(len(batches)), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress):
            chosen = batches[b]
            log_probs = model.log_probs([strips[i].astype(np.float32) / 255 for i in chosen])
            targets = [torch.tensor(texts[i]) + 1 for i in chosen]
            loss = ctc(
                log_probs.permute(2, 0, 1).cpu(),
                torch.cat(targets),
                torch.tensor([strips[i].shape[1] // STRIDE for i in chosen]),
                torch.tensor([len(t) for t in targets]),
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        losses.append(total / max(1, len(batches)))
    net.eval()
    return losses


def train_line_model(
    run_dir: str | os.PathLike,
    *,
    lines: int = LINE_LINES,
    epochs: int = LINE_EPOCHS,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train a run's line model on lines of its training glyphs, starting from its classifier's convolutions, and
    write RUN_DIR/line_model.pth (atomically). Returns its path."""
    state = load_checkpoint(Path(run_dir) / BEST)
    config: Config = checkpoint_config(state)
    trunk = build_model(config)
    if not isinstance(trunk, GlyphNet):
        raise ConfigError(
            f"{run_dir} trained the {config.model} network; the line model is built on glyphnet's convolutions "
            "(train with --preset fast or best)"
        )
    trunk.load_state_dict(eval_state_dict(state))
    data = load_run_split(config, data_dir)
    seed_everything(seed)
    started = time.perf_counter()
    strips, texts = render_lines(
        data.train_images.numpy(), data.train_labels.numpy(), lines, np.random.default_rng(seed), progress
    )
    drawn = time.perf_counter()
    log(f"{len(strips):,} lines of training glyphs drawn; training the line model for {epochs} epoch(s)")
    model = LineModel(
        LineReader(trunk, config.num_classes),
        float(config.norm_mean),
        float(config.norm_std),
        device or config.device,
        precision=config.precision,
    )
    losses = fit(model, strips, texts, epochs, seed, progress)
    trained = {
        "lines": len(strips),
        "epochs": epochs,
        "seed": seed,
        "draw_seconds": drawn - started,
        "train_seconds": time.perf_counter() - drawn,
        "last_loss": losses[-1] if losses else None,
    }
    path = Path(run_dir) / LINE_MODEL
    width = trunk.classifier[-1].in_features // 4  # GlyphNet's last stage has 4 x width channels
    atomic_write(
        path, lambda tmp: torch.save(model.state(width, config.use_residual, config.num_classes, **trained), tmp)
    )
    log(f"wrote {path}: `glyphkit predict {run_dir} IMAGE --segment` now reads each row of writing with it")
    return path
