"""A trained run as one self-describing file for use outside glyphkit: ONNX (onnxruntime in a service, a browser
or a phone) or torch.export's `.pt2` (PyTorch without glyphkit's code).

    glyphkit export outputs --format onnx          # -> outputs/model.onnx
    from glyphkit.export import export_run
    export_run("outputs", "torch")                 # -> outputs/model.pt2 and outputs/model.pt2.json

What is exported is a `GlyphClassifier`: the run's network with everything a user would otherwise have to
reproduce around it folded into the graph. Input: float32 [N, 1, 28, 28] upright glyphs with pixel values 0..255
(ink bright on black, as `glyphkit.preprocess` makes them); the division by 255, the padding to the network's
input size and the training set's normalisation happen inside; output: probabilities [N, classes], calibrated
by the run's calibration when it has one, for the class prior chosen at export (`--class-prior`; its logit
adjustment is part of the graph too). The class characters, the training class prior, the input layout, the
preprocessing expected, the run's test accuracy and the checkpoint's SHA-256 travel inside the file (ONNX
metadata_props; for `.pt2` its extra files and a JSON beside it).

Every export is checked before it is written: the exported graph and the PyTorch network read the same test
images, and an export whose probabilities or answers differ is an error, since exporters have shipped bugs
that silently change outputs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import glyphkit
from glyphkit.batches import pad_to_size
from glyphkit.download import file_sha256
from glyphkit.inference import INFERENCE_BATCH, Calibrator, Predictor, load_trained_run, prior_shift
from glyphkit.lines import LineModel, render_lines
from glyphkit.pieces import PieceModel
from glyphkit.rundir import BEST, atomic_write, checkpoint_path, why_not_writable, write_json
from glyphkit.runtime_onnx import METADATA_KEY  # the ONNX metadata_props entry (and .pt2 extra file) of the JSON
from glyphkit.strips import STRIDE, STRIP_HEIGHT, STRIP_PAD, stacked_strips

FORMATS = {"onnx": ".onnx", "torch": ".pt2"}  # --format -> file suffix
INPUT_NAME, OUTPUT_NAME = "glyphs", "probabilities"
PIECES_OUTPUT = "one_character"  # the second output of a run with a piece model (glyphkit.pieces)
TRACE_BATCH = 4  # example batch the graph is traced with: >= 2, since torch.export fixes dimensions of size 1
PARITY_IMAGES = 5000  # test images each export is checked on (0: the run's whole test split)
LINES_INPUT, LINES_OUTPUTS = "strips", ["columns", "characters"]  # the line model's graph (glyphkit.lines)
LINES_SUFFIX = ".lines.onnx"  # model.onnx -> model.lines.onnx: the line model's file, beside the classifier's
PARITY_LINES = 60  # lines of test glyphs an exported line model is checked on
MAX_LOG_PROBABILITY_DIFFERENCE = 1e-3  # largest |log p_exported - log p_pytorch| of a line's columns
MAX_PROBABILITY_DIFFERENCE = 1e-4  # largest |p_exported - p_pytorch| accepted (fp32 both: ~1e-6 is usual)
MIN_TOP1_AGREEMENT = 0.999  # share of the checked images whose answer must be the same
ONNX_OPSET = 18
INSTALL_HINT = 'pip install "glyphkit[onnx]" (the packages onnx, onnxscript and onnxruntime)'
PREPROCESSING = (
    "glyphkit.preprocess (EMNIST's own conversion: Gaussian blur sigma 1, crop to the ink, centre in a "
    "square keeping the aspect ratio, strokes 22 of 28 pixels long, bicubic resize to 28x28, 0..255)"
)


class ExportError(RuntimeError):
    """An export that cannot be made or failed its check, with a message that says why and what to do."""


class GlyphClassifier(nn.Module):
    """A run's network as users meet it: 0..255 glyphs in, calibrated probabilities out.

    The steps `Predictor` applies around the network (scale to [0, 1], pad to the input size, normalise by the
    training set's mean and std; softmax of the calibrated logits) are part of the graph, so an exported file
    needs nothing of glyphkit's but the glyph preprocessing.
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        mean: float,
        std: float,
        input_size: int,
        calibrator: Calibrator | None = None,
        logit_shift: torch.Tensor | None = None,
        pieces: nn.Module | None = None,
    ):
        super().__init__()
        self.network = network.eval()
        self.pieces = pieces.eval() if pieces is not None else None  # the run's piece model, when it has one
        self.mean, self.std, self.input_size = mean, std, input_size
        calibrator = calibrator or Calibrator.identity()
        # The class prior's logit adjustment (inference.prior_shift), a constant bias folded into the graph rather
        # than carried in the metadata for runtime_onnx to apply: the graph's output is calibrated probabilities,
        # from which the logits cannot be recovered (vector scaling's per-class scales; float32 softmax underflows
        # to 0), and so every runtime, not only glyphkit's, answers for the prior the file was exported with.
        self.register_buffer("logit_shift", torch.zeros(1) if logit_shift is None else logit_shift.float().clone())
        self.register_buffer("scale", calibrator.scale.float().clone())  # buffers: constants of the graph
        self.register_buffer("bias", calibrator.bias.float().clone())

    @classmethod
    def from_predictor(cls, predictor: Predictor, pieces: PieceModel | None = None) -> GlyphClassifier:
        """fp32, on the CPU, in the default memory layout: what exporters and every runtime expect."""
        c = predictor.config
        network = predictor.model.float().cpu().to(memory_format=torch.contiguous_format)
        return cls(
            network,
            mean=c.norm_mean,
            std=c.norm_std,
            input_size=c.input_size,
            calibrator=predictor.calibrator,
            logit_shift=predictor.logit_shift,
            pieces=pieces.network.float().cpu() if pieces is not None else None,
        )

    def forward(self, glyphs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Probabilities [N, classes]; with a piece model also each glyph's log-probability of being one
        character [N] (it reads the 28x28 glyph itself, normalised as the network's input is)."""
        x = pad_to_size(glyphs / 255.0, self.input_size)
        logits = self.network((x - self.mean) / self.std) + self.logit_shift
        probabilities = torch.softmax(logits * self.scale + self.bias, dim=1)
        if self.pieces is None:
            return probabilities
        one_character = torch.log_softmax(self.pieces((glyphs / 255.0 - self.mean) / self.std), dim=1)[:, 1]
        return probabilities, one_character


class LineGraph(nn.Module):
    """A run's line model as exported (glyphkit.lines): strips in, its columns' answers out.

    Input: float32 strips [B, 1, STRIP_HEIGHT, W], 0..1, ink bright (glyphkit.strips.row_strip makes them; W varies).
    Outputs: each column's log-probabilities [B, classes + 1, W // STRIDE] (index 0 CTC's blank), which CTC's best
    path is read from, and each column's probabilities of the classes [B, classes, W // STRIDE], the blank left out
    and the class prior's adjustment folded in as GlyphClassifier folds it (predict's answers for the line model's
    characters)."""

    def __init__(self, line_model: LineModel, logit_shift: torch.Tensor | None = None):
        super().__init__()
        self.network = line_model.network.float().cpu().eval()
        self.mean, self.std = line_model.mean, line_model.std
        self.register_buffer("logit_shift", torch.zeros(1) if logit_shift is None else logit_shift.float().clone())

    def forward(self, strips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = self.network((strips - self.mean) / self.std)
        shift = self.logit_shift.reshape(1, -1, 1)
        return log_probs, torch.softmax(log_probs[:, 1:] + shift, dim=1)


@dataclass
class ExportResult:
    path: Path
    format: str
    metadata: dict[str, Any]
    probabilities: np.ndarray  # what the exported file answered for the test images it was checked on

    @property
    def parity(self) -> dict[str, Any]:
        return self.metadata["parity"]


def missing_packages(format: str) -> list[str]:
    """The exporter/runtime packages `format` needs that are not installed."""
    needed = ["onnx", "onnxscript", "onnxruntime"] if format == "onnx" else []
    return [name for name in needed if importlib.util.find_spec(name) is None]


def export_run(
    run_dir: str | os.PathLike,
    format: str = "onnx",
    output: str | os.PathLike | None = None,
    *,
    checkpoint: str | os.PathLike = BEST,
    parity_images: int = PARITY_IMAGES,
    data_dir: str | os.PathLike | None = None,
    class_prior: str = "train",
    log: Callable[[str], None] = print,
) -> ExportResult:
    """Export a run's checkpoint to `output` (default: RUN_DIR/model.onnx or model.pt2), check it against the
    PyTorch network on `parity_images` test images (0: all), and write it only if it passes. `class_prior`: the
    prior its probabilities answer for ("train" or "uniform"; inference.ClassPrior), recorded in its metadata."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    if missing := missing_packages(format):
        raise ExportError(f"exporting to {format} needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}")
    output = Path(output) if output else Path(run_dir) / f"model{FORMATS[format]}"
    check_suffix(output, format)
    check_writable(output)
    source = checkpoint_path(run_dir, checkpoint)
    run = load_trained_run(
        run_dir,
        checkpoint=checkpoint,
        data_dir=data_dir,
        device="cpu",
        compile_model=False,
        limit_test=parity_images or None,
        class_prior=class_prior,
    )
    pieces = PieceModel.of_run(run_dir)
    classifier = GlyphClassifier.from_predictor(run.predictor, pieces)
    glyphs = run.images.unsqueeze(1).float()  # [N, 1, 28, 28], 0..255: what the exported graph takes
    reference, reference_pieces = classifier_outputs(classifier, glyphs)
    with tempfile.TemporaryDirectory(prefix="glyphkit-export-") as tmp:
        draft = Path(tmp) / f"model{FORMATS[format]}"
        exporter = export_onnx(classifier, draft, log) if format == "onnx" else export_torch(classifier, draft)
        exported, exported_pieces = (
            onnx_outputs(draft, glyphs.numpy())
            if format == "onnx"
            else classifier_outputs(torch.export.load(draft).module(), glyphs)
        )
        parity = compare(reference, exported, run.labels.numpy())
        if pieces is not None:  # the piece model's probabilities of one character must agree as closely
            difference = float(np.abs(np.exp(reference_pieces) - np.exp(exported_pieces)).max())
            parity["max_piece_difference"] = difference
            parity["passed"] = parity["passed"] and difference <= MAX_PROBABILITY_DIFFERENCE
        parity.update(images=len(glyphs), split=run.split, reference="PyTorch, fp32, eager")
        if not parity["passed"]:
            raise ExportError(
                f"the {format} export of {source} does not compute what the PyTorch network does "
                f"({describe_parity(parity)}); nothing was written. Try the other --format, or "
                "another torch/onnx version"
            )
        metadata = describe_export(run, source, format, exporter, parity, pieces)
        line_model = LineModel.of_run(run_dir, "cpu", precision="fp32")  # fp32, as the exported graph computes
        if line_model is not None and format == "onnx":  # written first: the classifier's file names it
            metadata["lines"] = export_line_model(line_model, run, lines_path(output), Path(tmp), log)
        elif line_model is not None:
            log(f"note: {output} does not carry the run's line model (a .pt2 holds one graph); --format onnx does")
        save_with_metadata(draft, output, format, metadata)
    return ExportResult(output, format, metadata, exported)


def lines_path(output: Path) -> Path:
    """Where an ONNX export's line model goes: model.onnx -> model.lines.onnx, beside it."""
    return output.with_name(output.stem + LINES_SUFFIX)


def export_line_model(line_model: LineModel, run, path: Path, tmp: Path, log: Callable[[str], None]) -> dict:
    """The run's line model as its own ONNX file at `path` (a second graph: its input, strips of any width, is not
    the classifier's), checked like the classifier on PARITY_LINES lines of the run's test glyphs and written only
    if it agrees. Returns its description, for the classifier's metadata (runtime_onnx finds it there)."""
    check_writable(path)
    prior = run.predictor.prior
    # The line model learnt from lines of training glyphs as they come: its answers carry the training prior.
    shift = None if prior is None else prior_shift(prior.log_prior(), "train", run.predictor.class_prior)
    graph = LineGraph(line_model, shift)
    strips, _ = render_lines(
        run.images.numpy(), run.labels.numpy(), PARITY_LINES, np.random.default_rng(0), progress=False
    )
    x = stacked_strips([s.astype(np.float32) / 255 for s in strips])
    with torch.no_grad():
        reference = [t.numpy() for t in graph(torch.from_numpy(x))]
    draft = tmp / path.name
    exporter = export_onnx(graph, draft, log, line_spec())
    exported = onnx_session(draft).run(None, {LINES_INPUT: x})
    parity = {
        "lines": len(strips),
        "max_log_probability_difference": float(np.abs(reference[0] - exported[0]).max()),
        "max_probability_difference": float(np.abs(reference[1] - exported[1]).max()),
        "column_agreement": float((reference[0].argmax(1) == exported[0].argmax(1)).mean()),
        "reference": "PyTorch, fp32, eager",
    }
    parity["passed"] = (
        parity["max_log_probability_difference"] <= MAX_LOG_PROBABILITY_DIFFERENCE
        and parity["max_probability_difference"] <= MAX_PROBABILITY_DIFFERENCE
        and parity["column_agreement"] >= MIN_TOP1_AGREEMENT
    )
    if not parity["passed"]:
        raise ExportError(
            f"the ONNX export of the run's line model does not compute what the PyTorch network does (on "
            f"{len(strips)} lines of test glyphs: largest log-probability difference "
            f"{parity['max_log_probability_difference']:.1e}, columns alike {parity['column_agreement']:.2%}); "
            "nothing was written. Try another torch/onnx version"
        )
    description = {
        "file": path.name,
        "exporter": exporter,
        "input": {
            "name": LINES_INPUT,
            "dtype": "float32",
            "shape": ["batch", 1, STRIP_HEIGHT, "width"],
            "range": [0, 1],
            "strip": "glyphkit.strips.row_strip: a row of writing, a typical letter GLYPH_SPAN pixels high, "
            f"centred in {STRIP_HEIGHT} rows, {STRIP_PAD} columns of paper at either end, ink bright",
        },
        "outputs": {
            LINES_OUTPUTS[0]: "log-probabilities [batch, classes + 1, width // stride] of each column: CTC's blank "
            "(index 0), then the classes in the order of 'classes'",
            LINES_OUTPUTS[1]: "probabilities [batch, classes, width // stride] of the classes in each column, for "
            "the class prior the classifier answers for",
        },
        "stride": STRIDE,
        "trained": line_model.trained,
        "parity": parity,
    }
    save_with_metadata(draft, path, "onnx", {"line_model": description})
    description["sha256"] = file_sha256(path)
    log(f"exported the run's line model to {path}: the classifier's file names it, keep the two together")
    return description


def check_suffix(output: Path, format: str) -> None:
    """Refuse an output name that says another format: an ONNX file named model.pt2 (or the reverse) would be
    opened with the wrong loader, and fail there far from its cause."""
    if output.suffix.lower() == FORMATS[format]:
        return
    named = next((f for f, suffix in FORMATS.items() if suffix == output.suffix.lower()), None)
    fix = f"pass --format {named} for a {output.suffix} file, or " if named else ""
    raise ExportError(
        f"--output {output} does not end in {FORMATS[format]}, the suffix of --format {format}; "
        f"{fix}name it {output.with_suffix(FORMATS[format])}"
    )


def check_writable(output: Path) -> None:
    """Refuse an output path that cannot be written before minutes are spent on the export."""
    if why := why_not_writable(output):
        raise ExportError(f"cannot write --output {output}: {why}; choose another --output")


@torch.no_grad()
def classifier_outputs(
    module: Callable[[torch.Tensor], Any], glyphs: torch.Tensor, batch_size: int = INFERENCE_BATCH
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities [N, classes] of a GlyphClassifier (or its exported program) for float glyphs, in batches, and
    its piece model's log-probabilities of one character [N] (None without one)."""
    with torch.no_grad():
        outputs = [module(glyphs[i : i + batch_size]) for i in range(0, len(glyphs), batch_size)]
    if outputs and isinstance(outputs[0], (tuple, list)):
        return torch.cat([o[0] for o in outputs]).numpy(), torch.cat([o[1] for o in outputs]).numpy()
    return torch.cat(outputs).numpy(), None


def classifier_probabilities(
    module: Callable[[torch.Tensor], Any], glyphs: torch.Tensor, batch_size: int = INFERENCE_BATCH
) -> np.ndarray:
    """Probabilities [N, classes] of a GlyphClassifier (or its exported program) for float glyphs, in batches."""
    return classifier_outputs(module, glyphs, batch_size)[0]


def onnx_session(path: str | os.PathLike):
    """An onnxruntime session of an exported file, on the CPU."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_outputs(
    path: str | os.PathLike, glyphs: np.ndarray, batch_size: int = INFERENCE_BATCH
) -> tuple[np.ndarray, np.ndarray | None]:
    """What an exported ONNX file answers for float glyphs: probabilities, and its one-character
    log-probabilities when it carries a piece model (else None)."""
    session = onnx_session(path)
    outputs = [session.run(None, {INPUT_NAME: glyphs[i : i + batch_size]}) for i in range(0, len(glyphs), batch_size)]
    pieces = np.concatenate([o[1] for o in outputs]) if outputs and len(outputs[0]) > 1 else None
    return np.concatenate([o[0] for o in outputs]), pieces


@dataclass(frozen=True)
class GraphSpec:
    """An exported graph's interface: its input, its outputs, and the axes whose size varies from call to call."""

    input: str
    outputs: tuple[str, ...]
    example: torch.Tensor  # what it is traced with
    input_axes: dict[int, str]  # axis -> the name of a size that varies
    output_axes: dict[int, str]

    def dynamo_shapes(self) -> dict:
        return {self.input: {a: torch.export.Dim(n, min=DIM_MIN[n], max=2**20) for a, n in self.input_axes.items()}}

    def torchscript_axes(self) -> dict:
        return {self.input: self.input_axes, **{name: self.output_axes for name in self.outputs}}


DIM_MIN = {"batch": 1, "width": 2 * STRIP_PAD + 1}  # the smallest size of each varying axis (a strip is never less)


def example_glyphs() -> torch.Tensor:
    return torch.rand(TRACE_BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255


def output_names(classifier: GlyphClassifier) -> list[str]:
    return [OUTPUT_NAME] if classifier.pieces is None else [OUTPUT_NAME, PIECES_OUTPUT]


def classifier_spec(classifier: GlyphClassifier) -> GraphSpec:
    return GraphSpec(INPUT_NAME, tuple(output_names(classifier)), example_glyphs(), {0: "batch"}, {0: "batch"})


def line_spec() -> GraphSpec:
    strips = torch.rand(TRACE_BATCH, 1, STRIP_HEIGHT, 203, generator=torch.Generator().manual_seed(0))
    return GraphSpec(LINES_INPUT, tuple(LINES_OUTPUTS), strips, {0: "batch", 3: "width"}, {0: "batch", 2: "columns"})


def export_onnx(
    module: nn.Module, path: Path, log: Callable[[str], None] = print, spec: GraphSpec | None = None
) -> str:
    """ONNX through the dynamo exporter (torch.export), with dynamic sizes as `spec` says (a GlyphClassifier's by
    default: its batch); if that exporter fails, the TorchScript-based one, with a warning. Returns which exporter
    made the file."""
    spec = spec or classifier_spec(module)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's own chatter; its failures raise
            program = torch.onnx.export(
                module,
                (spec.example,),
                dynamo=True,
                input_names=[spec.input],
                output_names=list(spec.outputs),
                dynamic_shapes=spec.dynamo_shapes(),
                opset_version=ONNX_OPSET,
                verbose=False,
            )
        program.save(str(path))
        return "torch.onnx dynamo"
    except Exception as exc:  # noqa: BLE001 - any exporter failure: the older exporter may still work
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log(
            f"warning: the dynamo ONNX exporter failed ({type(exc).__name__}: {first}); "
            "using the TorchScript-based exporter instead"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice and tracer warnings: the parity check decides
        torch.onnx.export(
            module,
            (spec.example,),
            str(path),
            dynamo=False,
            input_names=[spec.input],
            output_names=list(spec.outputs),
            opset_version=ONNX_OPSET,
            dynamic_axes=spec.torchscript_axes(),
        )
    return "torch.onnx torchscript"


def export_torch(classifier: GlyphClassifier, path: Path) -> str:
    spec = classifier_spec(classifier)
    program = torch.export.export(classifier, (spec.example,), dynamic_shapes=spec.dynamo_shapes())
    torch.export.save(program, path)
    return "torch.export"


def compare(reference: np.ndarray, exported: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """How closely the exported graph matches the PyTorch network, and whether that passes."""
    difference = float(np.abs(reference - exported).max()) if len(reference) else 0.0
    same = float((reference.argmax(1) == exported.argmax(1)).mean()) if len(reference) else 1.0
    return {
        "max_probability_difference": difference,
        "top1_agreement": same,
        "accuracy_pytorch": float((reference.argmax(1) == labels).mean()) if len(labels) else None,
        "accuracy_exported": float((exported.argmax(1) == labels).mean()) if len(labels) else None,
        "passed": difference <= MAX_PROBABILITY_DIFFERENCE and same >= MIN_TOP1_AGREEMENT,
    }


def describe_parity(parity: dict[str, Any]) -> str:
    return (
        f"on {parity['images']:,} {parity['split']} test images: same answer for "
        f"{parity['top1_agreement']:.2%}, largest probability difference {parity['max_probability_difference']:.1e}"
        f" (limits: {MIN_TOP1_AGREEMENT:.1%}, {MAX_PROBABILITY_DIFFERENCE:.0e})"
    )


def describe_export(
    run, source: Path, format: str, exporter: str, parity: dict[str, Any], pieces: PieceModel | None = None
) -> dict[str, Any]:
    """The JSON that travels with the exported file: what goes in, what comes out, where it came from."""
    c = run.config
    return {
        "glyphkit_version": glyphkit.__version__,
        "format": format,
        "exporter": exporter,
        "torch": torch.__version__,
        "classes": list(c.classes),
        "model": c.model,
        "split": run.split,
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", 1, 28, 28],
            "range": [0, 255],
            "glyph": "upright, ink bright (255) on a black (0) background",
            "preprocessing": PREPROCESSING,
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(c.classes)],
            "meaning": "probability of each class, in the order of 'classes'",
            "calibration": run.predictor.calibrator.to_state(),
            "calibrated": not run.predictor.calibrator.is_identity,
        },
        # answers_for: the prior the probabilities are for (uniform: class-balanced); counts: the training images
        # per class; logits: the prior the network's raw logits carry (uniform when trained with --balance)
        "class_prior": {"answers_for": run.predictor.class_prior, **run.predictor.prior.to_state()},
        # with a piece model: its output, and how runtime_onnx cuts touching letters with it (glyphkit.pieces)
        "pieces": None if pieces is None else pieces.describe(PIECES_OUTPUT),
        "folded_in": {"scale": 1 / 255, "mean": c.norm_mean, "std": c.norm_std, "network_input_size": c.input_size},
        "checkpoint": run.checkpoint,
        "checkpoint_sha256": file_sha256(source),
        "test_accuracy": run_test_accuracy(source.parent, run.checkpoint),
        "parity": parity,
    }


def run_test_accuracy(run_dir: Path, checkpoint: str) -> dict[str, float] | None:
    """The accuracy `glyphkit evaluate` last wrote for this checkpoint (metrics.json), if any."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or metrics.get("checkpoint") != checkpoint:
        return None
    found = {
        "split": metrics.get("split"),
        "images": metrics.get("num_test_images"),
        "accuracy": metrics.get("accuracy"),
    }
    if isinstance(metrics.get("tta_metrics"), dict):
        found["accuracy_tta"] = metrics["tta_metrics"].get("accuracy")
    return found


def save_with_metadata(draft: Path, output: Path, format: str, metadata: dict[str, Any]) -> None:
    """Write the checked draft to `output` atomically, its description inside (and for .pt2 also beside) it."""
    text = json.dumps(metadata, ensure_ascii=False)
    if format == "onnx":
        import onnx

        model = onnx.load(str(draft))
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, text
        model.producer_name, model.producer_version = "glyphkit", glyphkit.__version__
        atomic_write(output, lambda tmp: onnx.save(model, str(tmp)))
    else:
        program = torch.export.load(draft)

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: torch.export.save warns about a path not ending in .pt2
                torch.export.save(program, f, extra_files={METADATA_KEY + ".json": text})

        atomic_write(output, save)
        write_json(sidecar_path(output), metadata)


def sidecar_path(output: Path) -> Path:
    """model.pt2 -> model.pt2.json: the description beside a .pt2, readable without loading it."""
    return output.with_name(output.name + ".json")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The description stored in an exported file (.onnx or .pt2)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props[METADATA_KEY])
    extra = {METADATA_KEY + ".json": ""}
    torch.export.load(path, extra_files=extra)
    return json.loads(extra[METADATA_KEY + ".json"])
