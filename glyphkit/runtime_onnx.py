"""Read handwriting with an exported ONNX model, without PyTorch: onnxruntime, numpy, Pillow and scikit-image.

    python -m glyphkit.runtime_onnx outputs/model.onnx my_glyphs/ note.png [--segment]

    from glyphkit.runtime_onnx import OnnxGlyphReader
    reader = OnnxGlyphReader("outputs/model.onnx")
    reader.read(["note.png"], segment=True)[0]["text"]

Images go through `glyphkit.preprocess`, the same conversion `glyphkit predict` uses, so the exported model sees
the glyphs the PyTorch one would. Neither this module nor glyphkit.preprocess imports torch: on a machine that
should not carry PyTorch, `pip install --no-deps glyphkit` and then `pip install onnxruntime numpy pillow
scikit-image` is enough.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from glyphkit.layout import text_of
from glyphkit.preprocess import (
    IMAGE_SUFFIXES,
    POLARITIES,
    Glyph,
    ImageError,
    Ink,
    Splitter,
    glyphs_of_files,
    image_files,
    stacked,
)
from glyphkit.strips import row_characters, row_strip, stacked_strips

METADATA_KEY = "glyphkit"  # the metadata entry holding the export's description (glyphkit.export writes it)
BATCH = 256  # glyphs per onnxruntime call


class ModelError(ValueError):
    """A file that is not a glyphkit ONNX export, or that onnxruntime cannot open."""


CLASS_PRIORS = ("train", "uniform")  # glyphkit.inference's (not imported: that module needs torch)


def exported_class_prior(metadata: dict[str, Any]) -> str:
    """The class prior an export's probabilities answer for; files exported before it was recorded: train."""
    return (metadata.get("class_prior") or {}).get("answers_for", "train")


class OnnxGlyphReader:
    """An exported glyphkit model in onnxruntime: glyphs in, calibrated probabilities and characters out.

    The class prior's adjustment is part of the exported graph (glyphkit.export.GlyphClassifier says why), so a
    file answers for the prior it was exported with; `class_prior`, when given, must be that one."""

    def __init__(self, path: str | os.PathLike, class_prior: str | None = None):
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelError("reading an ONNX model needs onnxruntime: pip install onnxruntime") from exc
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"no model at {path}; make one with: glyphkit export RUN_DIR --format onnx")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self.metadata = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except KeyError:
            raise ModelError(
                f"{path} is an ONNX model but not one glyphkit exported (no '{METADATA_KEY}' "
                "metadata): make one with glyphkit export"
            ) from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for damaged files
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{path} cannot be opened as an ONNX model ({first}); export it again") from exc
        self.path = path
        if "classes" not in self.metadata:
            raise ModelError(
                f"{path} is the line model of an export, not the classifier; read with the .onnx file beside it"
            )
        self.lines = self._line_session() if self.metadata.get("lines") else None
        self.class_prior = exported_class_prior(self.metadata)
        if class_prior is not None and class_prior != self.class_prior:
            raise ModelError(
                f"{path} answers for the {self.class_prior} class prior (exported with --class-prior "
                f"{self.class_prior}); for {class_prior}, export it again: glyphkit export RUN_DIR "
                f"--class-prior {class_prior}"
            )
        self.classes: list[str] = self.metadata["classes"]
        self.input_name = self.metadata["input"]["name"]

    def _line_session(self):
        """The session of the line model the export carries (glyphkit.export writes it beside the classifier)."""
        import onnxruntime

        lines = self.metadata["lines"]
        path = self.path.with_name(lines["file"])
        if not path.is_file():
            raise ModelError(
                f"{self.path} reads rows of writing with its line model {lines['file']}, which is not beside it: "
                "copy both files together"
            )
        digest = hashlib.sha256()  # as glyphkit.download.file_sha256, which cannot be imported without torch
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(2**20), b""):
                digest.update(chunk)
        if digest.hexdigest() != lines["sha256"]:
            raise ModelError(
                f"{path} is not the line model {self.path.name} was exported with; copy both files from the same "
                "export, or export again: glyphkit export RUN_DIR"
            )
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def read_rows(self, found: Ink, rows: list[list], row_pieces: list[list[list]]) -> list[list[Glyph]]:
        """Each row of writing read whole by the export's line model, as glyphkit.lines.LineModel.read_rows reads
        it: the rows' strips in one call, each row's characters from its columns and pieces of ink, with the piece
        model the file carries when it has one (glyphkit.strips)."""
        strips = [row_strip(found.ink, found.labels, row) for row in rows]
        columns, characters = self.lines.run(
            None, {self.metadata["lines"]["input"]["name"]: stacked_strips([s.image for s in strips])}
        )
        one_character = (lambda glyphs: self.outputs(glyphs)[1]) if self.metadata.get("pieces") else None
        return [
            row_characters(
                found,
                row,
                strip,
                columns[k][:, : strip.columns],
                row_pieces[k],
                characters[k][:, : strip.columns],
                one_character,
            )
            for k, (row, strip) in enumerate(zip(rows, strips))
        ]

    def probabilities(self, glyphs: np.ndarray) -> np.ndarray:
        """Probabilities [N, classes] for upright uint8 (or 0..255 float) glyphs [N, 28, 28]."""
        return self.outputs(glyphs)[0]

    def outputs(self, glyphs: np.ndarray) -> list[np.ndarray]:
        """Every output of the graph for upright uint8 (or 0..255 float) glyphs [N, 28, 28]: the probabilities
        [N, classes], and with a piece model each glyph's log-probability of being one character [N]."""
        x = np.asarray(glyphs, dtype=np.float32).reshape(-1, 1, 28, 28)
        if not len(x):
            return [np.zeros((0, len(self.classes)), dtype=np.float32), np.zeros(0, dtype=np.float32)]
        batches = [self.session.run(None, {self.input_name: x[i : i + BATCH]}) for i in range(0, len(x), BATCH)]
        return [np.concatenate(parts) for parts in zip(*batches)]

    def splitter(self) -> Splitter:
        """How touching letters are cut: as glyphkit.predict cuts them, with the piece model the file carries
        (its weight, width and cost from the metadata) or with the classifier alone."""
        pieces = self.metadata.get("pieces")

        def score(found: list) -> np.ndarray:
            outputs = self.outputs(stacked(found))
            best = np.log(np.maximum(outputs[0].max(1), 1e-12))
            return best if not pieces else best + pieces["weight"] * outputs[1]

        return Splitter(score, pieces["wide"], pieces["cut_cost"]) if pieces else Splitter(score)

    def read(
        self,
        inputs: list[str | os.PathLike],
        *,
        segment: bool = False,
        polarity: str = "auto",
        top_k: int = 5,
        min_confidence: float = 0.0,
        line_model: bool = True,
    ) -> list[dict[str, Any]]:
        """One answer per image file (folders are read recursively): its glyphs' top characters, or its error.
        With `segment`, an export that carries a line model reads the rows whose letters touch whole with it, as
        `predict` does (line_model=False: every row cut into characters, as without one). The glyphs the classifier
        reads, of all files, go through it in one batched pass."""
        results, glyphs = [], []
        files = image_files(list(inputs))
        rows = self.read_rows if segment and line_model and self.lines is not None else None
        for file, found, error in glyphs_of_files(
            files, segment=segment, polarity=polarity, split=self.splitter(), rows=rows
        ):
            results.append(
                {
                    "file": str(file),
                    "error": error,
                    "glyphs": [{"index": i, "line": g.line, "box": list(g.box)} for i, g in enumerate(found)],
                }
            )
            glyphs += found
        by_classifier = [g.image for g in glyphs if g.probabilities is None]
        found = iter(self.probabilities(np.stack(by_classifier) if by_classifier else np.zeros((0, 28, 28), np.uint8)))
        answers = iter([next(found) if g.probabilities is None else g.probabilities for g in glyphs])
        for result in results:
            for glyph in result["glyphs"]:
                p = next(answers)
                best = np.argsort(-p)[:top_k]
                glyph["top"] = [(self.classes[c], float(p[c])) for c in best]
                glyph["prediction"] = self.classes[best[0]] if p[best[0]] >= min_confidence else "unsure"
            result["text"] = text_of(
                [(g["line"], "?" if g["prediction"] == "unsure" else g["prediction"]) for g in result["glyphs"]]
            )
        return results


def describe(result: dict[str, Any], segment: bool) -> str:
    """One line per file, as `glyphkit predict` prints it."""
    if segment:
        lowest = min((g["top"][0][1] for g in result["glyphs"]), default=0.0)
        return (
            f"{result['file']}: {result['text']!r} ({len(result['glyphs'])} characters, lowest confidence {lowest:.2f})"
        )
    glyph = result["glyphs"][0]
    return f"{result['file']}: {glyph['prediction']}  ({', '.join(f'{c} {p:.2f}' for c, p in glyph['top'])})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m glyphkit.runtime_onnx",
        description="Read images of handwriting with a model from `glyphkit export`.",
    )
    parser.add_argument("model", help="the .onnx file glyphkit export wrote")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE|FOLDER", help="image files, or folders (read recursively)")
    parser.add_argument(
        "--segment",
        action="store_true",
        help="each image is a page of one or more lines of handwriting: read it row by row, character by character",
    )
    parser.add_argument(
        "--no-line-model",
        action="store_true",
        help="with --segment, cut rows into characters even when the export carries a line model",
    )
    parser.add_argument("--polarity", choices=POLARITIES, default="auto", help="ink darker or lighter than the paper")
    parser.add_argument("--top-k", type=int, default=5, help="characters listed per glyph (default: 5)")
    parser.add_argument("--min-confidence", type=float, default=0.0, metavar="P", help="answer 'unsure' below P")
    parser.add_argument(
        "--class-prior",
        choices=CLASS_PRIORS,
        default=None,
        help="the class prior the answers must be for: train (images mixed like the training images) "
        "or uniform (class-balanced); the file answers for the one it was exported with (glyphkit "
        "export --class-prior), and a different one is an error (default: the file's)",
    )
    parser.add_argument("--json", action="store_true", help="print the answers as JSON instead of one line per file")
    args = parser.parse_args(argv)
    try:
        reader = OnnxGlyphReader(args.model, class_prior=args.class_prior)
        results = reader.read(
            args.inputs,
            segment=args.segment,
            polarity=args.polarity,
            top_k=max(args.top_k, 1),
            min_confidence=args.min_confidence,
            line_model=not args.no_line_model,
        )
    except (ModelError, ImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not results:
        print(f"error: no images in {', '.join(args.inputs)} (looked for {', '.join(IMAGE_SUFFIXES)})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=1, ensure_ascii=False))
    else:
        for result in results:
            if result["error"] is None:
                print(describe(result, args.segment))
    failed = [r for r in results if r["error"] is not None]
    for result in failed:
        print(f"error: {result['error']}", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
