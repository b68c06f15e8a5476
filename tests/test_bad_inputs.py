"""Trust: a bad file never stops the batch, and nothing a user wrote is overwritten.

Arbitrary and byte-mutated image files (PNG, JPEG, GIF, BMP, TIFF, WebP, made here with Pillow) go through every
reader (the shared one, `glyphkit predict`, `python -m glyphkit.runtime_onnx`, glyph-set folders): each gets an
answer or one `error:` line that names it, never a traceback, and the good files of the same call keep their
answers. Then one test for each way a user's trust was broken before: a PNG with one wrong byte, a run folder
that replaced a user's history.json, 16-bit scans read as blank, outputs found unwritable after every image was
read, calibrations fitted on two images, and the smaller ones (pixel limit, missing paths, export suffixes,
wording, OS metadata files)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from glyphkit import cli, rundir, runtime_onnx, workflows
from glyphkit.config import Config
from glyphkit.data import DataError, UnreadableImages, load_split
from glyphkit.inference import load_predictor
from glyphkit.preprocess import ImageError, glyphs_from_file, glyphs_of_files, read_image
from tests.test_evaluation import SYNTH_CLASSES
from tests.test_predict import trained_run  # noqa: F401 - the module-scoped fixture: a tiny run to predict with


def fuzz(examples: int) -> settings:
    """A bounded run (a few seconds): fixtures here are shared by every example, and files are decoded (slow)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def bar(mode: str = "L", size=(24, 32)) -> Image.Image:
    """A small dark bar on light paper (a '1'), in `mode`."""
    image = Image.new("L", size, 230)
    ImageDraw.Draw(image).rectangle((size[0] // 2 - 3, 4, size[0] // 2 + 2, size[1] - 5), fill=20)
    if mode == "I;16":
        return Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    if mode == "F":
        return Image.fromarray(np.asarray(image).astype(np.float32) / 255)
    return image.convert(mode)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# Every format glyphkit reads, in the modes a user's files come in: the seeds the mutations start from.
SEEDS = {
    ".png": [encoded(bar(m), "PNG") for m in ("L", "RGB", "P", "RGBA", "I;16")],
    ".jpg": [encoded(bar("L"), "JPEG"), encoded(bar("RGB"), "JPEG", progressive=True)],
    ".gif": [encoded(bar("P"), "GIF")],
    ".bmp": [encoded(bar("RGB"), "BMP"), encoded(bar("1"), "BMP")],
    ".tif": [encoded(bar("L"), "TIFF"), encoded(bar("RGB"), "TIFF", compression="tiff_lzw"), encoded(bar("F"), "TIFF")],
    ".webp": [encoded(bar("RGB"), "WEBP"), encoded(bar("RGBA"), "WEBP", lossless=True)],
}


# Byte values that make lengths, counts and sizes in headers wrong in the ways decoders trip over.
EDGE_BYTES = st.sampled_from([0, 1, 2, 12, 0x7F, 0x80, 0xFF])


@st.composite
def image_bytes(draw) -> tuple[str, bytes]:
    """(suffix, bytes): a valid image with a few bytes changed, cut or inserted; or arbitrary bytes. Changes
    favour the header (its first 64 bytes: sizes, chunk lengths, tag counts), where one byte breaks a decoder."""
    suffix = draw(st.sampled_from(sorted(SEEDS)))
    if draw(st.integers(0, 9)) == 0:
        return suffix, draw(st.binary(max_size=200))
    data = bytearray(draw(st.sampled_from(SEEDS[suffix])))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, 63) | st.integers(0, len(data)))
        how = draw(st.sampled_from(["set", "set", "set", "cut", "insert"]))
        if how == "set" and where < len(data):
            data[where] = draw(EDGE_BYTES | st.integers(0, 255))
        elif how == "cut":
            del data[where:]
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
    return suffix, bytes(data)


def write_case(folder: Path, case: tuple[str, bytes]) -> tuple[Path, list[Path]]:
    """The mutated file and two good ones, in `folder`."""
    suffix, data = case
    bad = folder / f"mutated{suffix}"
    bad.write_bytes(data)
    good = [folder / "good.png", folder / "good.jpg"]
    bar().save(good[0])
    bar("RGB", (30, 36)).save(good[1])
    return bad, good


def assert_one_line_about(error: str, path: Path) -> None:
    assert error.startswith(f"{path}: ") and "\n" not in error and "Traceback" not in error, error


# ---------------------------------------------------------------------------------------------------------------
# Every reader, fuzzed
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@fuzz(100)
@given(case=image_bytes())
def test_any_image_bytes_through_the_shared_reader(case):
    with tempfile.TemporaryDirectory() as tmp:
        bad, good = write_case(Path(tmp), case)
        results = list(glyphs_of_files([bad, *good]))
    (_, glyphs, error), *others = results
    assert (error is None) == bool(glyphs)  # an answer, or an error ...
    if error is not None:
        assert_one_line_about(error, bad)  # ... that names the file, on one line
    assert all(e is None and len(g) == 1 for _, g, e in others)  # the good files keep their answers


def _stderr_lines(err: str) -> list[str]:
    lines = err.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines) and "Traceback" not in err, err
    return lines


@fuzz(15)
@given(case=image_bytes())
@pytest.mark.slow
def test_any_image_bytes_through_predict(trained_run, capsys, case):  # noqa: F811 - the imported fixture
    with tempfile.TemporaryDirectory() as tmp:
        bad, good = write_case(Path(tmp), case)
        output = Path(tmp) / "answers.csv"
        code = cli.main(
            ["predict", str(trained_run), str(bad), *map(str, good), "--output", str(output), "--no-progress"]
        )
        out, err = capsys.readouterr()
        rows = list(csv.DictReader(output.open()))
    errors = _stderr_lines(err)
    assert code == (2 if errors else 0) and len(errors) <= 1
    if errors:
        assert_one_line_about(errors[0][len("error: ") :], bad)
    assert [r["file"] for r in rows if r["file"] != str(bad)] == list(map(str, good))
    assert len(rows) == 3 - len(errors)


def onnx_model(path: Path, classes: list[str]) -> Path:
    """A stand-in for an exported model, built with onnx.helper (no export needed): glyphs -> linear ->
    softmax, with the metadata glyphkit's export writes that the runtime reads."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(0, 0.01, (784, len(classes))).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["glyphs", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "stand-in",
        [helper.make_tensor_value_info("glyphs", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(classes)])],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    helper.set_model_props(
        model, {runtime_onnx.METADATA_KEY: json.dumps({"classes": classes, "input": {"name": "glyphs"}})}
    )
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def stand_in_onnx(tmp_path_factory):
    return onnx_model(tmp_path_factory.mktemp("onnx") / "model.onnx", SYNTH_CLASSES)


@fuzz(25)
@given(case=image_bytes())
def test_any_image_bytes_through_runtime_onnx(stand_in_onnx, capsys, case):
    with tempfile.TemporaryDirectory() as tmp:
        bad, good = write_case(Path(tmp), case)
        code = runtime_onnx.main([str(stand_in_onnx), str(bad), *map(str, good), "--json"])
        out, err = capsys.readouterr()
    errors = _stderr_lines(err)
    answers = json.loads(out)
    assert code == (2 if errors else 0) and len(errors) <= 1
    assert [a["file"] for a in answers] == [str(bad), *map(str, good)]
    assert all(a["error"] is None and len(a["glyphs"]) == 1 for a in answers[1:])
    if errors:
        assert_one_line_about(answers[0]["error"], bad) and errors[0] == f"error: {answers[0]['error']}"


def glyph_set(root: Path, per_class: int = 2) -> Path:
    for name, box in (("one", (10, 4, 14, 27)), ("dash", (3, 14, 20, 18))):
        (root / "train" / name).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            image = Image.new("L", (24, 32), 230)
            ImageDraw.Draw(image).rectangle(box, fill=20 + n)
            image.save(root / "train" / name / f"{n}.png")
    return root


@pytest.mark.slow
@fuzz(40)
@given(case=image_bytes())
def test_any_image_bytes_in_a_glyph_set_folder(monkeypatch, case):
    with tempfile.TemporaryDirectory() as tmp:
        monkeypatch.setenv("GLYPHKIT_CACHE", str(Path(tmp) / "cache"))
        root = glyph_set(Path(tmp) / "mine", per_class=3)
        bad = root / "train" / "one" / f"mutated{case[0]}"
        bad.write_bytes(case[1])
        try:
            data = load_split("mine", root, val_split=0.2, seed=0)
        except UnreadableImages as exc:
            assert len(exc.errors) == 1  # that file, and only that file, is named
            assert_one_line_about(exc.errors[0], bad)
        else:
            assert sum(data.sizes().values()) == 7  # the mutated file still decodes: it is a glyph too


# ---------------------------------------------------------------------------------------------------------------
# 1. One wrong byte in a PNG
# ---------------------------------------------------------------------------------------------------------------


def ihdr_length_12(path: Path) -> Path:
    """A PNG whose IHDR chunk says it is 12 bytes long instead of 13: Pillow raises ValueError('Truncated IHDR
    chunk'), which the reader once let through and which stopped the whole batch."""
    data = bytearray(encoded(bar(), "PNG"))
    assert data[8:16] == b"\x00\x00\x00\x0dIHDR"
    data[11] = 12
    path.write_bytes(bytes(data))
    return path


@pytest.mark.slow
def test_a_corrupt_png_among_400_good_images_is_one_error_line(trained_run, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "scans"
    folder.mkdir()
    for n in range(400):
        bar(size=(20, 24)).save(folder / f"{n:03d}.png")
    bad = ihdr_length_12(folder / "200_bad.png")
    code = cli.main(["predict", str(trained_run), str(folder), "--output", str(tmp_path / "p.csv"), "--no-progress"])
    errors = _stderr_lines(capsys.readouterr().err)
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {bad}: ")
    assert "damaged" in errors[0] and "Truncated IHDR chunk" in errors[0]
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 400 and str(bad) not in {r["file"] for r in rows}


def test_a_corrupt_png_in_runtime_onnx_and_in_a_glyph_set(stand_in_onnx, tmp_path, monkeypatch, capsys):
    bad = ihdr_length_12(tmp_path / "bad.png")
    bar().save(tmp_path / "good.png")
    assert runtime_onnx.main([str(stand_in_onnx), str(bad), str(tmp_path / "good.png")]) == 2
    out, err = capsys.readouterr()
    assert _stderr_lines(err) == [f"error: {read_error(bad)}"] and "good.png: " in out

    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    root = glyph_set(tmp_path / "mine")
    ihdr_length_12(root / "train" / "one" / "bad.png")
    (root / "train" / "dash" / "notes.png").write_text("my notes")
    code = cli.main(["train", "--data-dir", str(root), "--output-dir", str(tmp_path / "run"), "--no-progress"])
    errors = _stderr_lines(capsys.readouterr().err)
    assert code == 2 and len(errors) == 3  # each bad file on its own line, then what to do
    assert errors[0].startswith(f"error: {root / 'train' / 'dash' / 'notes.png'}: not an image")
    assert errors[1].startswith(f"error: {root / 'train' / 'one' / 'bad.png'}: the image is damaged")
    assert "2 of the 6 images" in errors[2] and not (tmp_path / "run").exists()


def read_error(path: Path) -> str:
    with pytest.raises(ImageError) as caught:
        read_image(path)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------------------------
# 2. A user's files in --output-dir
# ---------------------------------------------------------------------------------------------------------------


def test_train_refuses_a_folder_with_a_users_files_named_like_a_runs(tiny_data_dir, tmp_path, capsys):
    folder = tmp_path / "x"
    folder.mkdir()
    mine = {
        "history.json": "my notes",
        "metrics.json": "{}",
        "config.json": '{"theme": "dark"}',
        "confusion_matrix.png": "my figure",
    }
    for name, text in mine.items():
        (folder / name).write_text(text)
    train = [
        "train",
        "--split",
        "tiny",
        "--data-dir",
        str(tiny_data_dir),
        "--model",
        "glyphnet",
        "--epochs",
        "1",
        "--limit-train",
        "100",
        "--skip-eval",
        "--no-progress",
        "--output-dir",
        str(folder),
    ]
    assert cli.main(train) == 2
    errors = _stderr_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "holds no run" in errors[0] and "--overwrite" in errors[0]
    assert all(name in errors[0] for name in mine) and "--resume" not in errors[0]
    assert {name: (folder / name).read_text() for name in mine} == mine  # untouched
    assert sorted(p.name for p in folder.iterdir()) == sorted(mine)

    rundir.prepare_run_dir(folder, Config(), overwrite=True)  # --overwrite: asked for, they are removed
    assert list(folder.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# 3. 16-bit and float greyscale
# ---------------------------------------------------------------------------------------------------------------


def test_a_16_bit_or_float_scan_reads_like_its_8_bit_twin(tmp_path):
    paper = np.full((64, 48), 60_000, np.uint16)
    paper[8:56, 20:27] = 8_000  # ink at 8,000 on paper at 60,000: every value above 255
    eight_bit = np.round(paper / 65535 * 255).astype(np.uint8)
    Image.fromarray(eight_bit).save(tmp_path / "twin.png")
    Image.fromarray(paper).save(tmp_path / "scan16.png")
    Image.fromarray(paper).save(tmp_path / "scan16.tif")
    Image.fromarray(paper.astype(np.int32)).save(tmp_path / "scan32.tif")
    Image.fromarray((paper / 65535).astype(np.float32)).save(tmp_path / "float.tif")
    twin = glyphs_from_file(tmp_path / "twin.png")[0]
    for name, mode in (("scan16.png", "I;16"), ("scan16.tif", "I;16"), ("scan32.tif", "I"), ("float.tif", "F")):
        assert Image.open(tmp_path / name).mode == mode
        glyph = glyphs_from_file(tmp_path / name)[0]
        assert glyph.box == twin.box, name
        assert np.abs(glyph.image.astype(int) - twin.image.astype(int)).max() <= 2, name
    Image.fromarray(np.full((20, 20), 40_000, np.uint16)).save(tmp_path / "flat16.png")
    with pytest.raises(ImageError, match="blank"):  # a flat image stays flat
        glyphs_from_file(tmp_path / "flat16.png")


# ---------------------------------------------------------------------------------------------------------------
# 4. Outputs checked before any image is read
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value", [("--output", "a_file/p.csv"), ("--save-crops", "a_file/crops"), ("--save-crops", "a_file")]
)
def test_unwritable_outputs_are_refused_before_any_image_is_read(
    trained_run,  # noqa: F811
    tmp_path,
    capsys,
    monkeypatch,
    flag,
    value,
):
    (tmp_path / "a_file").write_text("x")
    bar().save(tmp_path / "one.png")
    read = []
    monkeypatch.setattr("glyphkit.preprocess.read_image", lambda *a, **k: read.append(a) or bar())
    code = cli.main(
        ["predict", str(trained_run), str(tmp_path / "one.png"), flag, str(tmp_path / value), "--no-progress"]
    )
    errors = _stderr_lines(capsys.readouterr().err)
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {flag} {tmp_path / value}")
    assert f"{tmp_path / 'a_file'} is a file, not a folder" in errors[0] and "File exists" not in errors[0]
    assert read == []  # refused before any image was read


# ---------------------------------------------------------------------------------------------------------------
# 5. Calibration only on enough images, and only when it helps
# ---------------------------------------------------------------------------------------------------------------


def test_calibration_on_two_images_or_one_that_raises_the_loss_is_not_kept(
    trained_run,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    import shutil

    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    predictor = load_predictor(run, device="cpu")
    images = torch.randint(0, 256, (120, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = predictor.logits(images).argmax(1)  # the network's own answers: a higher temperature raises the loss
    said = []
    calibrator = workflows.calibrate(run, predictor, images[:2], labels[:2], log=said.append)
    assert calibrator.is_identity and predictor.calibrator.is_identity
    assert said == [
        "not calibrated: 2 validation images, fewer than the 100 a calibration is fitted on; the "
        "probabilities are the network's own"
    ]
    assert "calibration" not in rundir.load_checkpoint(run / rundir.BEST)

    with monkeypatch.context() as patch:
        patch.setattr(workflows, "fit_temperature", lambda logits, labels: 300_000.0)  # a fit gone astray
        said.clear()
        assert workflows.calibrate(run, predictor, images, labels, log=said.append).is_identity
    # at that temperature every class is as likely: the loss is ln 6 = 1.7918, above the network's own
    assert len(said) == 1 and re.fullmatch(
        r"not calibrated: temperature 300000\.\d+ does not lower the validation "
        r"loss \(1\.\d+ -> 1\.7918\) on the 120 validation images; the "
        r"probabilities are the network's own",
        said[0],
    ), said
    assert "calibration" not in rundir.load_checkpoint(run / rundir.BEST)
    kept = workflows.calibrate(run, predictor, images, labels, log=said.append)  # the real fit: kept
    assert not kept.is_identity and said[-1].startswith("calibrated: temperature")
    assert rundir.load_checkpoint(run / rundir.BEST)["calibration"]["scale"] == pytest.approx(float(kept.scale))
    workflows.calibrate(run, predictor, images[:2], labels[:2], log=said.append)  # refitted on too few: removed
    assert load_predictor(run, device="cpu").calibrator.is_identity and predictor.calibrator.is_identity


# ---------------------------------------------------------------------------------------------------------------
# 6. The smaller ones
# ---------------------------------------------------------------------------------------------------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height pixels (greyscale) and holds almost nothing: its header is what the
    pixel limit is checked on."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (20_000, 20_000)])  # above Pillow's limit, twice it
def test_images_above_pillows_own_limit_get_the_size_message(tmp_path, width, height):
    assert width * height > Image.MAX_IMAGE_PIXELS
    path = png_header_only(tmp_path / "huge.png", width, height)
    assert read_error(path) == (
        f"{path}: {width}x{height} pixels is more than the 50,000,000 glyphkit reads; "
        "scale the image down or crop it to the handwriting"
    )


def test_a_missing_path_or_symlink_loop_is_that_items_own_error(trained_run, tmp_path, capsys):  # noqa: F811
    bar().save(tmp_path / "good.png")
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    missing = tmp_path / "missing.png"
    code = cli.main(["predict", str(trained_run), str(missing), str(loop), str(tmp_path / "good.png"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2 and f"{tmp_path / 'good.png'}: " in out
    assert _stderr_lines(err) == [
        f"error: {missing}: no such file or folder",
        f"error: {loop}: cannot read the image (Too many levels of symbolic links)",
    ]


def test_export_refuses_an_output_suffix_that_is_not_its_formats(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    for fmt, name, says in (
        ("onnx", "model.pt2", "pass --format torch"),
        ("torch", "model.onnx", "--format onnx"),
        ("onnx", "model", "name it"),
    ):
        assert cli.main(["export", str(tmp_path), "--format", fmt, "--output", str(tmp_path / name)]) == 2
        errors = _stderr_lines(capsys.readouterr().err)
        assert len(errors) == 1 and "does not end in" in errors[0] and says in errors[0], errors
    assert list(tmp_path.iterdir()) == []


def test_wording_for_a_path_under_a_file_and_a_checkpoint_that_is_a_device(trained_run, tmp_path, capsys):  # noqa: F811
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OSError, match=f"{tmp_path / 'a_file'} is a file, not a folder"):
        rundir.atomic_write_text(tmp_path / "a_file" / "out.txt", "text")
    bar().save(tmp_path / "one.png")
    assert cli.main(["predict", str(trained_run), str(tmp_path / "one.png"), "--checkpoint", os.devnull]) == 2
    errors = _stderr_lines(capsys.readouterr().err)
    assert errors == [
        f"error: {os.devnull} is not a regular file (a device, pipe or socket), so not a checkpoint; "
        "give a checkpoint file (.pth)"
    ]


def test_os_metadata_files_in_a_glyph_set_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    root = glyph_set(tmp_path / "mine", per_class=3)
    for where in (root / "train", root / "train" / "one"):
        for name in ("Thumbs.db", "desktop.ini", ".DS_Store"):
            (where / name).write_bytes(b"\0\1 operating system metadata")
    (root / "train" / "one" / "._0.png").write_bytes(b"\0\5\26\7 AppleDouble")  # macOS's resource fork of 0.png
    data = load_split("mine", root, val_split=0.2, seed=0)
    assert data.classes == ["dash", "one"] and sum(data.sizes().values()) == 6
    (root / "train" / "notes.txt").write_text("a user's stray file is still pointed out")
    with pytest.raises(DataError, match="notes.txt: a file where"):
        load_split("mine", root)
