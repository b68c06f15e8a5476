"""Exporting a run: ONNX and torch.export files that compute what the run's Predictor computes, carry their
description, refuse to be written when they do not match, and an onnxruntime reader that never imports torch."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from glyphkit import cli, export
from glyphkit.config import Config
from glyphkit.inference import load_predictor
from glyphkit.rundir import store_calibration
from glyphkit.training import Trainer
from tests.conftest import TINY_CHARS
from tests.test_benchmarks import tiny_run  # noqa: F401 - the fixture
from tests.test_lines import reading_line_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# Far from the identity, so a calibration left out of the graph shows in the probabilities: every class at
# temperature 2 or more, and a different bias for each.
CALIBRATION = {
    "method": "vector scaling",
    "scale": [0.5 - 0.05 * (i % 3) for i in range(len(TINY_CHARS))],
    "bias": [0.3 * (i % 4) - 0.4 for i in range(len(TINY_CHARS))],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data_dir, tiny_data):
    """A tiny run of the spec's network family at 32x32 (so the graph must pad), fp32, calibrated."""
    run = tmp_path_factory.mktemp("run")
    config = Config(
        split="tiny",
        data_dir=str(tiny_data_dir),
        model="enhanced",
        width=8,
        epochs=1,
        batch_size=64,
        precision="fp32",
        device="cpu",
        val_split=0.2,
        seed=0,
    )
    Trainer(config, tiny_data, run, progress=False, log=lambda *_: None, max_batches=3).fit()
    store_calibration(run / "best_model.pth", CALIBRATION)
    return run


def expected_probabilities(run_dir, images: torch.Tensor) -> np.ndarray:
    """What `glyphkit evaluate` and `predict` compute for these glyphs (the run is fp32, so no autocast)."""
    return load_predictor(run_dir, device="cpu").probabilities(images).numpy()


@pytest.mark.slow
def test_onnx_export_computes_what_the_run_computes_at_any_batch_size(run_dir, tiny_data, tmp_path):
    import onnxruntime

    path = export.export_run(run_dir, "onnx", tmp_path / "m.onnx", log=lambda *_: None).path
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = tiny_data.test_images[:23]
    want = expected_probabilities(run_dir, images)
    for batch in (1, 2, 23):  # traced with 4: the batch dimension must stay dynamic
        got = session.run(None, {"glyphs": images[:batch].numpy().astype(np.float32)[:, None]})[0]
        np.testing.assert_allclose(got, want[:batch], atol=1e-5)
    assert np.allclose(want.sum(1), 1) and want.max() < 0.999  # probabilities, softened by the calibration


@pytest.mark.slow
def test_the_file_describes_itself(run_dir, tmp_path):
    path = export.export_run(run_dir, "onnx", tmp_path / "m.onnx", parity_images=0, log=lambda *_: None).path
    meta = export.read_metadata(path)
    assert meta["classes"] == list(TINY_CHARS)
    assert meta["input"]["shape"] == ["batch", 1, 28, 28] and meta["input"]["range"] == [0, 255]
    assert meta["output"]["calibration"]["bias"] == pytest.approx(CALIBRATION["bias"])
    assert meta["output"]["calibrated"] is True
    assert meta["checkpoint_sha256"] == hashlib.sha256((run_dir / "best_model.pth").read_bytes()).hexdigest()
    assert meta["parity"]["images"] == 200 and meta["parity"]["top1_agreement"] == 1.0  # the whole tiny test split
    assert meta["glyphkit_version"] and meta["model"] == "enhanced"


@pytest.mark.slow
def test_torch_export_round_trip_with_its_description_beside_it(run_dir, tiny_data, tmp_path):
    path = export.export_run(run_dir, "torch", tmp_path / "m.pt2", log=lambda *_: None).path
    program = torch.export.load(path)
    images = tiny_data.test_images[:9]
    got = program.module()(images.float()[:, None]).detach().numpy()
    np.testing.assert_allclose(got, expected_probabilities(run_dir, images), atol=1e-5)
    beside = json.loads((tmp_path / "m.pt2.json").read_text())
    assert beside == export.read_metadata(path) and beside["classes"] == list(TINY_CHARS)


@pytest.mark.slow
def test_an_export_that_computes_something_else_is_an_error_and_nothing_is_written(
    run_dir, tmp_path, monkeypatch, capsys
):
    def subtly_wrong(path, glyphs, batch_size=256):  # what a buggy exporter does: most answers right, some not
        p = np.full((len(glyphs), len(TINY_CHARS)), 1 / len(TINY_CHARS), dtype=np.float32)
        p[:, 0] = 0.5
        return p, None

    monkeypatch.setattr(export, "onnx_outputs", subtly_wrong)
    output = tmp_path / "m.onnx"
    assert cli.main(["export", str(run_dir), "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "does not compute what" in err[0]
    assert not output.exists() and not list(tmp_path.iterdir())


def test_when_the_dynamo_exporter_fails_the_torchscript_one_takes_over(run_dir, tiny_data, tmp_path, monkeypatch):
    real_export = torch.onnx.export

    def dynamo_broken(*args, **kwargs):
        if kwargs.get("dynamo"):
            raise RuntimeError("an exporter bug")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_broken)
    lines: list[str] = []
    result = export.export_run(run_dir, "onnx", tmp_path / "m.onnx", log=lines.append)
    assert result.metadata["exporter"] == "torch.onnx torchscript"
    assert any(line.startswith("warning:") and "an exporter bug" in line for line in lines)
    assert result.parity["passed"] and result.parity["top1_agreement"] == 1.0


@pytest.mark.slow
def test_export_command_prints_the_check_and_bad_inputs_get_one_line(run_dir, tmp_path, monkeypatch, capsys):
    assert cli.main(["export", str(run_dir), "--output", str(tmp_path / "ok.onnx"), "--parity-images", "50"]) == 0
    out = capsys.readouterr().out
    assert "on 50 tiny test images: same answer for 100.00%" in out and "ok.onnx" in out

    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "best_model.pth").write_bytes(b"PK\x03\x04 not really a checkpoint")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = {
        "empty": ([str(tmp_path / "empty")], "no checkpoint"),
        "corrupt": ([str(corrupt)], "corrupt"),
        "unwritable": ([str(run_dir), "--output", str(a_file / "m.onnx")], "cannot write"),
    }
    for name, (args, says) in cases.items():
        assert cli.main(["export", *args]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], (name, err)

    real_find_spec = export.importlib.util.find_spec
    monkeypatch.setattr(
        export.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a)
    )
    assert cli.main(["export", str(run_dir), "--output", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "onnxruntime" in err and 'pip install "glyphkit[onnx]"' in err


def glyph_png(image: np.ndarray, path) -> None:
    """A test glyph as a user's scan: dark ink on white paper, 4x larger."""
    Image.fromarray(255 - image).resize((112, 112), Image.NEAREST).save(path)


@pytest.mark.slow
def test_the_onnx_runtime_reads_images_like_predict_and_never_imports_torch(run_dir, tiny_data, tmp_path, capsys):
    model = export.export_run(run_dir, "onnx", tmp_path / "m.onnx", log=lambda *_: None).path
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(6):
        glyph_png(tiny_data.test_images[i * 10].numpy(), folder / f"g{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    code = (
        f"import sys, runpy; sys.argv = ['runtime_onnx', {str(model)!r}, {str(folder)!r}, '--json']\n"
        "try:\n    runpy.run_module('glyphkit.runtime_onnx', run_name='__main__')\n"
        "except SystemExit as exc:\n    status = exc.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr  # one file could not be read ...
    assert done.stderr.strip().splitlines() == [next(line for line in done.stderr.splitlines())]
    assert "broken.png" in done.stderr and done.stderr.startswith("error: ")
    answers = {r["file"]: r for r in json.loads(done.stdout)}  # ... and the others were answered

    assert cli.main(["predict", str(run_dir), str(folder), "--no-progress", "--output", str(tmp_path / "p.json")]) == 2
    capsys.readouterr()
    predicted = [row for row in json.loads((tmp_path / "p.json").read_text())["predictions"]]
    assert len(predicted) == 6
    for row in predicted:
        top = answers[row["file"]]["glyphs"][0]["top"][0]
        assert top[0] == row["top1"] and abs(top[1] - row["p1"]) < 1e-4


@pytest.mark.slow
def test_the_onnx_runtime_reads_a_page_row_by_row(run_dir, tmp_path):
    from PIL import ImageDraw

    from glyphkit.runtime_onnx import OnnxGlyphReader

    model = export.export_run(run_dir, "onnx", tmp_path / "m.onnx", log=lambda *_: None).path
    page = Image.new("L", (300, 260), 240)
    for x, y in ((20, 20), (110, 20), (200, 20), (40, 150), (160, 150)):  # three bars above two
        ImageDraw.Draw(page).rectangle((x, y, x + 20, y + 80), fill=10)
    page.save(tmp_path / "page.png")
    answer = OnnxGlyphReader(model).read([tmp_path / "page.png"], segment=True)[0]
    assert [g["line"] for g in answer["glyphs"]] == [0, 0, 0, 1, 1]
    chars = [g["prediction"] for g in answer["glyphs"]]
    assert answer["text"] == "".join(chars[:3]) + "\n" + "".join(chars[3:])


@pytest.mark.slow
def test_an_export_carries_the_piece_model_and_the_onnx_runtime_cuts_as_predict_does(run_dir, tmp_path):
    """A run with a piece model exports it as a second output, described in the metadata; the ONNX runtime then
    reads pages as `predict --segment` does with the run itself."""
    from glyphkit.pieces import PIECE_WEIGHT, PieceModel, train_piece_model
    from glyphkit.predict import predict
    from glyphkit.runtime_onnx import OnnxGlyphReader
    from tests.test_layout import three_rings_touching, two_bars_touching
    from tests.test_pieces import line_of_bars

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    train_piece_model(run, lines=8, epochs=1, progress=False, log=lambda *_: None)
    model = export.export_run(run, "onnx", tmp_path / "m.onnx", log=lambda *_: None).path
    reader = OnnxGlyphReader(model)
    assert [o.name for o in reader.session.get_outputs()] == ["probabilities", "one_character"]
    assert reader.metadata["pieces"]["weight"] == PIECE_WEIGHT
    assert reader.metadata["parity"]["max_piece_difference"] <= export.MAX_PROBABILITY_DIFFERENCE

    glyphs = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    expected = PieceModel.of_run(run, precision="fp32").log_one_character(glyphs)  # the run is fp32
    assert np.allclose(reader.outputs(glyphs)[1], expected, atol=1e-4)

    pages = [line_of_bars(tmp_path / "bars.png")]
    for n, image in enumerate((two_bars_touching(), two_bars_touching(right=80), three_rings_touching())):
        image.save(tmp_path / f"touching{n}.png")
        pages.append(tmp_path / f"touching{n}.png")
    by_onnx = reader.read(pages, segment=True)
    by_torch = predict(run, pages, segment=True, progress=False)
    for onnx_answer, torch_answer in zip(by_onnx, by_torch):
        assert [tuple(g["box"]) for g in onnx_answer["glyphs"]] == [g.box for g in torch_answer.glyphs]
        assert onnx_answer["text"] == torch_answer.text


@pytest.mark.slow
def test_with_a_line_model_and_a_piece_model_the_onnx_runtime_reads_rows_as_predict_does(
    tiny_run,  # noqa: F811
    tmp_path,
):
    """A run with both models: the line model reads each row, and the piece model judges the pieces of ink it reads
    as several characters (glyphkit.strips.row_characters); here it is made sure that every piece is one character,
    so it keeps such pieces whole. The ONNX runtime, with the piece model as its second output, reads the page with
    the same boxes and text as `predict --segment`."""
    from glyphkit.pieces import PIECE_MODEL, train_piece_model
    from glyphkit.predict import predict
    from glyphkit.runtime_onnx import OnnxGlyphReader
    from tests.test_lines import bars

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    train_piece_model(run, lines=8, epochs=1, progress=False, log=lambda *_: None)
    state = torch.load(run / PIECE_MODEL, weights_only=True)
    state["model"]["classifier.2.bias"] = torch.tensor([-20.0, 20.0])  # "one character", whatever the glyph
    torch.save(state, run / PIECE_MODEL)
    reading_line_model(run)
    page = tmp_path / "page.png"
    page_image = Image.new("L", (400, 300), 235)
    page_image.paste(bars(50, 120, 190, width=30), (0, 0))
    # two touching bars, 1.25 letter heights wide: wide enough to be read whole, narrow enough to be one letter
    page_image.paste(bars(60, 96, height=40, touching=True).crop((0, 30, 400, 100)), (0, 200))
    page_image.save(page)
    model = export.export_run(run, "onnx", tmp_path / "m.onnx", log=lambda *_: None)
    assert model.metadata["pieces"] and model.metadata["lines"]
    by_onnx = OnnxGlyphReader(model.path).read([page], segment=True)[0]
    by_torch = predict(run, [page], segment=True, progress=False)[0]
    unjudged = predict(run, [page], segment=True, progress=False, piece_model=False)[0]
    # the touching bars read whole by the line model, the bars standing apart cut and read by the classifier
    assert [g.line for g in by_torch.glyphs if g.read is None] == [0, 0, 0]
    assert {g.line for g in by_torch.glyphs if g.read is not None} == {1}
    assert len(by_torch.glyphs) < len(unjudged.glyphs)  # pieces read as several were kept whole
    assert [tuple(g["box"]) for g in by_onnx["glyphs"]] == [g.box for g in by_torch.glyphs]
    assert by_onnx["text"] == by_torch.text


def test_the_onnx_runtime_refuses_a_model_glyphkit_did_not_write(tmp_path):
    from glyphkit.runtime_onnx import main

    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    Image.new("L", (40, 40), 255).save(tmp_path / "a.png")
    assert main([str(tmp_path / "junk.onnx"), str(tmp_path / "a.png")]) == 2
    assert main([str(tmp_path / "missing.onnx"), str(tmp_path / "a.png")]) == 2


@pytest.mark.slow
def test_an_export_carries_the_line_model_and_the_onnx_runtime_reads_rows_as_predict_does(tiny_run, tmp_path):  # noqa: F811
    """A run with a line model exports it beside the classifier (model.lines.onnx, named and hashed in the
    classifier's metadata); the ONNX runtime reads each row whole with it, as `predict --segment` does: the same
    boxes, text and probabilities, for either class prior (the run's prior made uneven, so the two differ)."""
    from glyphkit.predict import predict
    from glyphkit.runtime_onnx import ModelError, OnnxGlyphReader
    from tests.test_lines import bars

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    state = torch.load(run / "best_model.pth", weights_only=True)
    counts = [30.0 * (1 + 4 * (k % 2)) for k in range(len(TINY_CHARS))]  # as if odd classes had 5x the images
    state["class_prior"] = {**state["class_prior"], "counts": counts}
    torch.save(state, run / "best_model.pth")
    reading_line_model(run)
    page = tmp_path / "page.png"
    page_image = Image.new("L", (400, 300), 235)
    page_image.paste(bars(50, 120, 190), (0, 0))
    page_image.paste(bars(60, 150, touching=True).crop((0, 30, 400, 100)), (0, 200))
    page_image.save(page)

    answers = {}
    for prior in ("train", "uniform"):
        model = export.export_run(run, "onnx", tmp_path / f"{prior}.onnx", class_prior=prior, log=lambda *_: None)
        assert (tmp_path / f"{prior}.lines.onnx").is_file()
        assert model.metadata["lines"]["file"] == f"{prior}.lines.onnx" and model.metadata["lines"]["parity"]["passed"]
        by_onnx = OnnxGlyphReader(model.path).read([page], segment=True)[0]
        by_torch = predict(run, [page], segment=True, class_prior=prior, progress=False)[0]
        assert len(by_torch.glyphs) >= 4 and {g.line for g in by_torch.glyphs} == {0, 1}
        # the touching bars read whole by the line model, the bars standing apart cut and read by the classifier
        assert [g.line for g in by_torch.glyphs if g.read is None] == [0, 0, 0]
        assert {g.line for g in by_torch.glyphs if g.read is not None} == {1}
        assert [tuple(g["box"]) for g in by_onnx["glyphs"]] == [g.box for g in by_torch.glyphs]
        assert by_onnx["text"] == by_torch.text
        for onnx_glyph, torch_glyph in zip(by_onnx["glyphs"], by_torch.glyphs):
            assert [c for c, _ in onnx_glyph["top"]] == [c for c, _ in torch_glyph.top]
            assert np.allclose([p for _, p in onnx_glyph["top"]], [p for _, p in torch_glyph.top], atol=1e-4)
        answers[prior] = [g.top[0][1] for g in by_torch.glyphs]
        cut = OnnxGlyphReader(model.path).read([page], segment=True, line_model=False)[0]
        assert cut["text"] == predict(run, [page], segment=True, class_prior=prior, line_model=False)[0].text
    assert not np.allclose(answers["train"], answers["uniform"], atol=1e-3)

    (tmp_path / "uniform.lines.onnx").rename(tmp_path / "elsewhere.onnx")
    with pytest.raises(ModelError, match="not beside it"):
        OnnxGlyphReader(tmp_path / "uniform.onnx")
    (tmp_path / "train.lines.onnx").write_bytes((tmp_path / "elsewhere.onnx").read_bytes())
    with pytest.raises(ModelError, match="not the line model"):
        OnnxGlyphReader(tmp_path / "train.onnx")
    with pytest.raises(ModelError, match="line model of an export"):
        OnnxGlyphReader(tmp_path / "elsewhere.onnx")
