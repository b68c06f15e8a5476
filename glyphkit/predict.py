"""Reading the user's own handwriting with a trained run: image files in, characters with probabilities out.

    from glyphkit.predict import predict
    results = predict("outputs", ["my_glyphs/", "note.jpg"], segment=True)
    results[0].text, results[0].glyphs[0].top      # 'Hello', [('H', 0.97), ('N', 0.01), ...]

Every image goes through glyphkit.preprocess (EMNIST's own conversion), all glyphs of all files are read in
batches by the run's Predictor (its classes, normalisation and evaluation weights come from the checkpoint,
loaded with weights_only=True). A file that cannot be read gets its error in its result; the others are read.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from glyphkit.config import ConfigError
from glyphkit.inference import Predictor, load_predictor, prior_shift
from glyphkit.layout import text_of
from glyphkit.lines import LineModel
from glyphkit.pieces import PieceModel
from glyphkit.preprocess import ImageError, Splitter, glyphs_of_files, image_files, stacked
from glyphkit.rundir import BEST, atomic_write, atomic_write_text, why_not_writable

TOP_K = 5  # characters listed per glyph
UNSURE = "unsure"  # the answer below --min-confidence (the best guess stays in top1)


@dataclass
class GlyphPrediction:
    """One character read: where it was, the 28x28 glyph the model saw, its best guesses (most likely first)."""

    index: int  # 0, 1, ... in reading order within its file (rows top to bottom, each left to right)
    box: tuple[int, int, int, int]  # x, y, w, h in the file's image
    glyph: np.ndarray
    line: int = 0  # the row of writing, 0 for the top one (with segment)
    top: list[tuple[str, float]] = field(default_factory=list)  # calibrated probabilities, most likely first
    unsure: bool = False  # the best guess's probability is below the min_confidence asked for
    read: np.ndarray | None = None  # the line model's probabilities, when it read this character (glyphkit.lines)

    @property
    def prediction(self) -> str:
        return UNSURE if self.unsure else self.top[0][0]

    @property
    def confidence(self) -> float:
        return self.top[0][1]


@dataclass
class FileResult:
    """What one file said: its glyphs, or the reason it could not be read."""

    file: str
    glyphs: list[GlyphPrediction] = field(default_factory=list)
    error: str | None = None

    @property
    def text(self) -> str:
        """The characters read, one row of writing per line of text (rows top to bottom, each left to right); '?'
        where the model was unsure."""
        return text_of([(g.line, "?" if g.unsure else g.prediction) for g in self.glyphs])


def predict(
    run_dir: str | os.PathLike,
    inputs: list[str | os.PathLike],
    *,
    top_k: int = TOP_K,
    segment: bool = False,
    polarity: str = "auto",
    min_confidence: float = 0.0,
    checkpoint: str | os.PathLike = BEST,
    device: str | None = None,
    progress: bool = True,
    class_prior: str = "train",
    piece_model: bool = True,
    line_model: bool = True,
) -> list[FileResult]:
    """Read every image in `inputs` (files, and folders recursively) with the run's model.

    segment=False: each image is one glyph. segment=True: each image is a page of handwriting of one or more
    lines, read row by row, each row's characters left to right (blank paper is an error, not a character). A run's
    line model, when it has one, reads whole the rows whose letters touch (glyphkit.lines); the other rows, and
    every row without one, are cut into characters, with the run's piece model when it has one (glyphkit.pieces).
    A glyph whose best probability (calibrated, when the run is) is below `min_confidence` is answered "unsure".
    class_prior "uniform" takes the training class prior out of the answers (for class-balanced use;
    inference.ClassPrior), "train" answers as the training images were mixed. line_model=False and
    piece_model=False read as if the run had no line model, or no piece model."""
    predictor = load_predictor(run_dir, checkpoint, device=device, class_prior=class_prior)
    pieces = None
    if segment and piece_model:  # read as the run reads: its device and precision
        pieces = PieceModel.of_run(run_dir, predictor.device, predictor.config.precision)
    split = splitter(predictor, pieces)
    rows = None
    if segment and line_model:
        found_model = LineModel.of_run(run_dir, predictor.device, predictor.config.precision)
        if found_model is not None:
            rows = partial(found_model.read_rows, one_character=pieces.log_one_character if pieces else None)
    files = image_files(list(inputs))
    results, glyphs = [], []
    for file, found, error in tqdm(
        glyphs_of_files(files, segment=segment, polarity=polarity, split=split, rows=rows),
        total=len(files),
        desc="read images",
        disable=not progress or len(files) < 2,
        leave=False,
    ):
        results.append(
            FileResult(
                str(file),
                [GlyphPrediction(i, g.box, g.image, g.line, read=g.probabilities) for i, g in enumerate(found)],
                error,
            )
        )
        glyphs += results[-1].glyphs
    if glyphs:
        _read(predictor, glyphs, top_k, min_confidence)
    return results


def splitter(predictor: Predictor, pieces: PieceModel | None = None) -> Splitter:
    """How touching letters are cut (preprocess.split_touching): by each piece's best log-probability under the
    classifier, and with the run's piece model also by its log-probability of being one character
    (glyphkit.pieces)."""

    def best(glyphs: np.ndarray) -> np.ndarray:
        return predictor.probabilities(torch.from_numpy(glyphs)).max(1).values.clamp_min(1e-12).log().numpy()

    return pieces.splitter(best) if pieces is not None else Splitter(lambda found: best(stacked(found)))


def _read(predictor: Predictor, glyphs: list[GlyphPrediction], top_k: int, min_confidence: float) -> None:
    """Fill in each glyph's top-k characters and probabilities: the classifier's (one batched pass over all the
    glyphs it reads), or the line model's, its training prior taken out as the classifier's is under
    `--class-prior uniform`."""
    by_classifier = [g for g in glyphs if g.read is None]
    probabilities = torch.zeros(len(glyphs), len(predictor.config.classes))
    if by_classifier:
        found = predictor.probabilities(torch.from_numpy(np.stack([g.glyph for g in by_classifier])))
        probabilities[[k for k, g in enumerate(glyphs) if g.read is None]] = found.float().cpu()
    # The line model learnt from lines of training glyphs as they come: its answers carry the training prior.
    shift = None
    if predictor.prior is not None:
        shift = prior_shift(predictor.prior.log_prior(), "train", predictor.class_prior).double()
    for k, g in enumerate(glyphs):
        if g.read is not None:
            log_p = torch.from_numpy(g.read).double().clamp_min(1e-12).log()
            probabilities[k] = (log_p if shift is None else log_p + shift).softmax(0).float()
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    classes = predictor.config.classes
    for g, p, i in zip(glyphs, values.tolist(), indices.tolist()):
        g.top = [(classes[c], prob) for c, prob in zip(i, p)]
        g.unsure = p[0] < min_confidence


# ---------------------------------------------------------------------------------------------------------------
# Writing the answers
# ---------------------------------------------------------------------------------------------------------------

OUTPUT_SUFFIXES = (".csv", ".json")


def check_outputs(output: str | os.PathLike | None = None, crops_folder: str | os.PathLike | None = None) -> None:
    """Refuse (ConfigError) an `--output` file or `--save-crops` folder that cannot be written, before any image
    is read: found afterwards, it would cost the whole read and lose the answers."""
    if output is not None:
        output = Path(output)
        if output.suffix.lower() not in OUTPUT_SUFFIXES:
            raise ConfigError(f"--output {output}: must end in .csv or .json")
        if why := why_not_writable(output):
            raise ConfigError(f"--output {output} cannot be written: {why}; choose another --output")
    if crops_folder is not None:
        folder = Path(crops_folder)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--save-crops {folder} is a file, not a folder; give a folder for the glyphs")
        if why := why_not_writable(folder / "glyph.png"):
            raise ConfigError(f"--save-crops {folder} cannot be written: {why}; choose another folder")


def prediction_rows(results: list[FileResult], segment: bool) -> list[dict]:
    """One row per image (or per character with `segment`): file, [line, index, x, y, w, h,] prediction,
    confidence, then top1, p1, top2, p2, ..."""
    rows = []
    for result in results:
        for g in result.glyphs:
            row: dict = {"file": result.file}
            if segment:
                row.update(line=g.line, index=g.index, x=g.box[0], y=g.box[1], w=g.box[2], h=g.box[3])
            row.update(prediction=g.prediction, confidence=round(g.confidence, 6))
            for rank, (char, prob) in enumerate(g.top, 1):
                row[f"top{rank}"], row[f"p{rank}"] = char, round(prob, 6)
            rows.append(row)
    return rows


def write_predictions(results: list[FileResult], path: str | os.PathLike, segment: bool) -> Path:
    """`path` as .csv (one row per image or character) or .json (the same rows, plus each file's text and
    error), written atomically."""
    path = Path(path)
    rows = prediction_rows(results, segment)
    if path.suffix.lower() == ".json":
        files = [{"file": r.file, "text": r.text, "error": r.error} for r in results]
        atomic_write_text(path, json.dumps({"files": files, "predictions": rows}, indent=1, ensure_ascii=False))
    elif path.suffix.lower() == ".csv":
        buffer = io.StringIO()
        fields = list(dict.fromkeys(k for row in rows for k in row)) or ["file", "prediction", "confidence"]
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buffer.getvalue())
    else:
        raise ImageError(f"{path}: --output must end in .csv or .json")
    return path


def save_crops(results: list[FileResult], folder: str | os.PathLike) -> int:
    """The 28x28 glyphs the model saw, as PNGs named after their file (and index), to check the preprocessing.
    A file already in `folder` is never replaced: a crop whose name is taken gets `~1`, `~2`, ... Returns how many
    were written."""
    folder = Path(folder)
    taken = {p.stem for p in folder.iterdir()} if folder.is_dir() else set()
    used: set[str] = set()
    for result in results:
        stem = Path(result.file).stem
        for g in result.glyphs:
            name = f"{stem}_{g.index}" if len(result.glyphs) > 1 else stem
            unique, n = name, 1
            while unique in used or unique in taken:  # two files of one name in two folders, or a file there
                unique, n = f"{name}~{n}", n + 1
            used.add(unique)
            atomic_write(folder / f"{unique}.png", lambda tmp, image=g.glyph: Image.fromarray(image).save(tmp, "PNG"))
    return len(used)
