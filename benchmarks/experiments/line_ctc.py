"""Read a line whole with a CTC line model, instead of cutting it into characters: does it read touching letters?

`predict --segment` cuts ink into characters and reads each (recognition-driven segmentation, with the piece model
judging the cuts: glyphkit.pieces). Issue 30's other way is a line model: a network that reads the whole line's
image as a sequence, trained with CTC (connectionist temporal classification, Graves et al. 2006) so that it never
needs to be told where one letter ends, on lines composed from EMNIST training glyphs (as the Full Stack Deep
Learning text recognizer does). This experiment builds one from the run's own classifier and measures it on the
paper test's lines beside the piece model, on the same images.

- The line as the network sees it (`line_strip`): glyphkit's ink of the line (glyphkit.preprocess.find_ink: the
  paper's light and printed lines out, levelled), scaled so that a typical letter is GLYPH_SPAN pixels high, as an
  EMNIST glyph's strokes span 22 of its 28 pixels, in a strip STRIP_HEIGHT pixels high.
- The network (`LineReader`): the run's classifier's convolutions (GlyphNet's stem and stages, their trained
  weights to start from) slide along the strip; a convolution collapses the strip's height, two more read a few
  letters of context, and each of their columns (4 pixels of the strip, a fifth of a letter) gives the
  log-probabilities of the 47 characters and CTC's blank. Decoding is CTC's best path: the likeliest class of each
  column, repeats merged, blanks dropped.
- Training lines: lines of 4-9 of the split's **training** glyphs, drawn as scans by the code the piece model learns
  from (glyphkit.scans.line_ink, degrade), touching (overlap 0-0.08 glyph widths), gapped (0.02-0.15) and spaced
  (0.2-0.8) in turn.
- Measured: lines of **validation** glyphs (settings may be chosen there) and the paper test's own lines of **test**
  glyphs (benchmarks/paper_test.py draw_lines: the images of its lines record), gapped and touching, each read by
  `glyphkit predict --segment` with the run's piece model and by the line model: lines whose character count is
  right, and the character error rate.

    python benchmarks/experiments/line_ctc.py RUN --data-dir ../shared/emnist [--split proxy47] [--lines 120]
        [--train-lines 24000] [--epochs 8] [--out runs/line_ctc] [--results PATH]

Writes benchmarks/results/line_ctc-RUN.json (`--results` to choose) and OUT/line_reader.pth. The renders and the
model go under --out (git-ignored `runs/` by default): they are derived from EMNIST and are never committed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.transform import resize
from torch import nn
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the paper test draws and reads the lines
import paper_test  # noqa: E402

from glyphkit.config import Config  # noqa: E402
from glyphkit.data import load_config_split  # noqa: E402
from glyphkit.layout import typical_height  # noqa: E402
from glyphkit.models import GlyphNet, build_model  # noqa: E402
from glyphkit.preprocess import GLYPH_SPAN, ImageError, find_ink, read_image  # noqa: E402
from glyphkit.results import command_line, default_result_path, write_result  # noqa: E402
from glyphkit.rundir import BEST, atomic_write, checkpoint_config, eval_state_dict, load_checkpoint  # noqa: E402
from glyphkit.runtime import autocast_dtype, seed_everything  # noqa: E402
from glyphkit.scans import degrade, line_ink  # noqa: E402

STRIP_HEIGHT = 32  # the strip's height, pixels: a glyph's 28-pixel frame, and room for letters taller than typical
STRIP_PAD = 8  # paper added at each end of the strip, pixels: the first and last letters get columns of context
STRIDE = 4  # strip pixels per output column (GlyphNet's two 2x2 poolings)
HIDDEN = 256  # channels of the columns after the strip's height is collapsed
DROPOUT = 0.2
BATCH = 32  # lines per step
LR = 1e-3  # OneCycle's peak for the new layers ...
TRUNK_LR = 3e-4  # ... and for the classifier's convolutions, which already read glyphs
WEIGHT_DECAY = 1e-4
LINE_GAPS = ((-0.08, 0.0), (0.02, 0.15), (0.2, 0.8))  # training lines in turn: touching, gapped, spaced (glyph widths)


def line_strip(image: Image.Image, source: str = "line") -> np.ndarray:
    """float32 [STRIP_HEIGHT, W] in [0, 1]: the ink of an image of one line of writing, a typical letter GLYPH_SPAN
    pixels high and the line's ink centred in height, STRIP_PAD pixels of paper at either end."""
    found = find_ink(image, level=True, source=source)
    regions = found.regions
    y0, x0 = min(r.bbox[0] for r in regions), min(r.bbox[1] for r in regions)
    y1, x1 = max(r.bbox[2] for r in regions), max(r.bbox[3] for r in regions)
    mine = np.isin(found.labels[y0:y1, x0:x1], [r.label for r in regions])
    ink = found.ink[y0:y1, x0:x1] * mine
    scale = min(GLYPH_SPAN / typical_height(regions), STRIP_HEIGHT / (y1 - y0))  # a tall stroke still fits
    shape = (max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale)))
    small = np.clip(resize(ink, shape, order=1, anti_aliasing=scale < 1), 0, None)
    strip = np.zeros((STRIP_HEIGHT, shape[1] + 2 * STRIP_PAD), np.float32)
    top = (STRIP_HEIGHT - shape[0]) // 2
    strip[top : top + shape[0], STRIP_PAD : STRIP_PAD + shape[1]] = small
    return strip / max(float(strip.max()), 1e-6)  # EMNIST's glyphs are scaled to full intensity, each on its own


class LineReader(nn.Module):
    """Strip [B, 1, STRIP_HEIGHT, W] -> log-probabilities [B, classes + 1, W // STRIDE] (index 0: CTC's blank)."""

    def __init__(self, trunk: GlyphNet, classes: int):
        super().__init__()
        self.stem, self.stages = trunk.stem, trunk.stages  # the classifier's convolutions, its weights to start from
        channels = trunk.classifier[-1].in_features
        self.collapse = nn.Sequential(  # the strip's height (8 rows after the poolings) into one column of features
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


def best_path(log_probs: torch.Tensor, length: int) -> list[int]:
    """CTC's best-path decoding of one line's [classes + 1, T] log-probabilities: class indices (blank excluded)."""
    best = log_probs[:, :length].argmax(0).tolist()
    return [c - 1 for k, c in enumerate(best) if c != 0 and (k == 0 or c != best[k - 1])]


def batch_of(strips: list[np.ndarray], mean: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Strips of different widths as one normalised batch, padded with paper on the right, and each one's columns."""
    width = max(s.shape[1] for s in strips)
    x = np.zeros((len(strips), 1, STRIP_HEIGHT, width), np.float32)
    for k, s in enumerate(strips):
        x[k, 0, :, : s.shape[1]] = s
    lengths = torch.tensor([s.shape[1] // STRIDE for s in strips])
    return (torch.from_numpy(x) - mean) / std, lengths


def render_training_lines(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> tuple[list, list]:
    """`count` lines of 4-9 training glyphs drawn as scans, spaced as LINE_GAPS in turn: (uint8 strips, labels)."""
    rng = np.random.default_rng(seed)
    strips, texts = [], []
    for n in tqdm(range(count), desc="draw training lines", mininterval=10):
        chosen = rng.choice(len(images), size=int(rng.integers(4, 10)), replace=False)
        ink, _ = line_ink(images[chosen], rng, LINE_GAPS[n % len(LINE_GAPS)])
        try:
            strip = line_strip(degrade(ink, rng))
        except ImageError:  # a line too faint to find: nothing to learn from it
            continue
        strips.append(np.round(strip * 255).astype(np.uint8))
        texts.append(labels[chosen].tolist())
    return strips, texts


def train(model: LineReader, strips: list, texts: list, epochs: int, mean: float, std: float, seed: int) -> list:
    """CTC training, lines of similar width batched together; returns each epoch's mean loss."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    order = np.argsort([s.shape[1] for s in strips], kind="stable")
    batches = [order[k : k + BATCH] for k in range(0, len(order), BATCH)]
    trunk = [*model.stem.parameters(), *model.stages.parameters()]
    head = [*model.collapse.parameters(), *model.context.parameters()]
    optimizer = torch.optim.AdamW(
        [{"params": trunk, "lr": TRUNK_LR}, {"params": head, "lr": LR}], weight_decay=WEIGHT_DECAY
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[TRUNK_LR, LR], total_steps=epochs * len(batches), pct_start=0.15
    )
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    dtype = autocast_dtype(torch.device("cpu"))
    losses = []
    model.train()
    for epoch in range(epochs):
        total = 0.0
        for ids in tqdm(rng.permutation(len(batches)), desc=f"epoch {epoch + 1}/{epochs}", mininterval=10):
            chosen = batches[ids]
            x, lengths = batch_of([strips[i].astype(np.float32) / 255 for i in chosen], mean, std)
            targets = [torch.tensor(texts[i]) + 1 for i in chosen]
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                log_probs = model(x)
            loss = ctc(
                log_probs.permute(2, 0, 1),
                torch.cat(targets),
                lengths,
                torch.tensor([len(t) for t in targets]),
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        losses.append(total / len(batches))
        print(f"epoch {epoch + 1}: CTC loss {losses[-1]:.3f}", flush=True)
    return losses


@torch.no_grad()
def read_with_line_model(model: LineReader, files: list[Path], classes: str, mean: float, std: float) -> list[str]:
    """The text of each image of one line, read by the line model ("" where no ink is found)."""
    model.eval()
    dtype = autocast_dtype(torch.device("cpu"))
    texts = []
    for path in files:
        try:
            strip = line_strip(read_image(path), source=str(path))
        except ImageError:
            texts.append("")
            continue
        x, lengths = batch_of([strip], mean, std)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            log_probs = model(x)
        texts.append("".join(classes[c] for c in best_path(log_probs[0], int(lengths[0]))))
    return texts


def measure(bench: paper_test.Bench, lines: paper_test.Lines, model: LineReader, mean: float, std: float) -> dict:
    """The same lines read by `predict --segment` with the piece model, and by the line model."""
    truth = [bench.text(ids) for ids in lines.glyphs]
    start = time.perf_counter()
    cut = paper_test.read_lines(bench, lines, piece_model=True)
    cut_seconds = time.perf_counter() - start
    start = time.perf_counter()
    read = read_with_line_model(model, sorted(lines.folder.iterdir()), bench.classes, mean, std)
    line_seconds = time.perf_counter() - start
    as_28 = ["".join(bench.as_28(ids)) for ids in lines.glyphs]
    return {
        "cut_right": cut["counted_right"],
        "cut_cer": cut["cer"],
        "ctc_right": float(np.mean([len(r) == len(t) for r, t in zip(read, truth)])),
        "ctc_cer": paper_test.cer(read, truth),
        "cer_28x28": paper_test.cer(as_28, truth),
        "cut_ms": 1000 * cut_seconds / len(truth),
        "ctc_ms": 1000 * line_seconds / len(truth),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="proxy47")
    parser.add_argument("--lines", type=int, default=120, help="lines of each kind measured (default: 120)")
    parser.add_argument("--train-lines", type=int, default=24000, help="training lines drawn (default: 24000)")
    parser.add_argument("--epochs", type=int, default=8, help="passes over the training lines (default: 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/line_ctc", help="where the rendered lines and the model go")
    parser.add_argument("--results", default=None, help="the record's path (default: line_ctc-RUN.json)")
    args = parser.parse_args()
    run = Path(args.run_dir)
    state = load_checkpoint(run / BEST)
    config = checkpoint_config(state)
    data = load_config_split(Config(split=args.split, data_dir=args.data_dir, seed=config.seed))
    trunk = build_model(config)
    if not isinstance(trunk, GlyphNet):
        raise SystemExit(f"error: {run} trained {config.model}; the line model is built on a glyphnet run's network")
    trunk.load_state_dict(eval_state_dict(state))  # the classifier's evaluation weights (its EMA average when kept)
    model = LineReader(trunk, config.num_classes)
    mean, std = config.norm_mean, config.norm_std

    start = time.perf_counter()
    strips, texts = render_training_lines(
        data.train_images.numpy(), data.train_labels.numpy(), args.train_lines, args.seed
    )
    draw_minutes = (time.perf_counter() - start) / 60
    start = time.perf_counter()
    losses = train(model, strips, texts, args.epochs, mean, std, args.seed)
    train_minutes = (time.perf_counter() - start) / 60
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out / "line_reader.pth", lambda tmp: torch.save({"model": model.state_dict(), "classes": config.classes}, tmp)
    )

    rows = []
    for glyphs in ("validation", "test"):
        bench = paper_test.load_bench(argparse.Namespace(**{**vars(args), "out": str(out / glyphs)}), glyphs=glyphs)
        rng = bench.rng("lines")
        for kind in paper_test.LINE_KINDS:
            scores = measure(bench, paper_test.draw_lines(bench, rng, kind, args.lines), model, mean, std)
            rows.append({"glyphs": glyphs, "lines": kind, **scores})
            print(rows[-1], flush=True)
    path = args.results or default_result_path("line_ctc", run.name)
    write_result(
        path,
        what="Lines of validation and test glyphs, gapped and touching, read by `predict --segment` (cuts judged by "
        "the classifier and the run's piece model) and by a CTC line model built on the run's classifier: lines "
        "whose character count is right, and the character error rate (CER).",
        command=command_line(),
        columns=[
            {"key": "glyphs", "header": "glyphs"},
            {"key": "lines", "header": "lines"},
            {"key": "cut_right", "header": "cut: count right", "format": "percent1"},
            {"key": "cut_cer", "header": "cut: CER", "format": "percent1"},
            {"key": "ctc_right", "header": "line model: count right", "format": "percent1"},
            {"key": "ctc_cer", "header": "line model: CER", "format": "percent1"},
            {"key": "cer_28x28", "header": "CER as 28x28 arrays", "format": "percent1"},
            {"key": "cut_ms", "header": "cut: ms per line", "format": "ms"},
            {"key": "ctc_ms", "header": "line model: ms per line", "format": "ms"},
        ],
        rows=rows,
        data=f"{args.split}: {len(strips)} training lines of training glyphs; {args.lines} lines of each kind of "
        "validation and of test glyphs (the test lines are the paper test's), 4-9 glyphs each, glyphs 40-120 px",
        summary={
            "train_lines": len(strips),
            "epochs": args.epochs,
            "ctc_loss_by_epoch": ", ".join(f"{v:.3f}" for v in losses),
            "draw_minutes": round(draw_minutes, 1),
            "train_minutes": round(train_minutes, 1),
            "run": str(run),
        },
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
