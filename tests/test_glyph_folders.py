"""A glyph set of your own as a folder of images (train/<class>/*.png): training, evaluation and predict through
the command line, the errors for bad layouts, and starting from a trained run (--init-from)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from glyphkit import cli
from glyphkit.data import DataError, load_split
from glyphkit.synthetic import render_glyphs

CLASSES = {"zero": "0", "one": "1", "A": "A", "B": "B"}  # folder name -> the character drawn


def write_glyph_set(root, per_class: int = 12, test: bool = False, seed: int = 0):
    """Font-rendered characters (not handwriting) as dark ink on white PNGs of 64x64, one folder per class."""
    images, labels = render_glyphs("".join(CLASSES.values()), per_class, seed)
    for part in ("train", "test") if test else ("train",):
        for n, (image, label) in enumerate(zip(images, labels)):
            folder = root / part / list(CLASSES)[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(255 - image).resize((64, 64), Image.BICUBIC).save(folder / f"{n}.png")
    return root


def test_a_glyph_folder_loads_as_a_split(tmp_path, monkeypatch):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    root = write_glyph_set(tmp_path / "mine")
    data = load_split("ignored", root, val_split=0.2, seed=0)
    assert data.split == "mine" and data.classes == sorted(CLASSES)  # classes are the folder names
    assert sum(data.sizes().values()) == 4 * 12 and data.sizes()["test"] == round(0.2 * 48)  # a held-out share
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape[1:] == (28, 28)
    assert data.train_images.max() == 255 and data.train_images.float().mean() < 100  # bright ink on black
    cached = list((tmp_path / "cache" / "image-folders").glob("*.npz"))
    assert len(cached) == 1
    again = load_split("ignored", root, val_split=0.2, seed=0)  # from the cache, the same glyphs
    assert torch.equal(again.train_images, data.train_images)


def _keep_one_class(root):
    for name in ("zero", "one", "B"):
        shutil.rmtree(root / "train" / name)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_keep_one_class, r"1 class folder\(s\); a glyph set needs at least 2"),
        (lambda root: [p.unlink() for p in (root / "train" / "B").iterdir()], "B: no images"),
        (lambda root: (root / "train" / "notes.txt").write_text("x"), "notes.txt: a file where"),
        (lambda root: (root / "train" / "one" / "0.png").write_text("not an image"), "0.png: not an image"),
    ],
)
def test_bad_glyph_folders_are_clear_errors(tmp_path, monkeypatch, damage, message):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    root = write_glyph_set(tmp_path / "mine", per_class=3)
    damage(root)
    with pytest.raises(DataError, match=message):
        load_split("mine", root)


@pytest.mark.slow
def test_train_evaluate_predict_and_init_from_on_a_glyph_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    root = write_glyph_set(tmp_path / "mine", test=True)
    common = ["--model", "glyphnet", "--batch-size", "16", "--epochs", "2", "--no-progress", "--data-dir", str(root)]
    assert cli.main(["train", *common, "--output-dir", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["split"] == "mine" and metrics["num_test_images"] == 48 and set(metrics["per_class"]) == set(CLASSES)
    assert cli.main(["evaluate", str(tmp_path / "a"), "--no-progress"]) == 0  # finds its folder from the run
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "a"), str(root / "test" / "A"), "--no-progress"]) == 0
    assert all(line.split(": ")[1].split()[0] in CLASSES for line in capsys.readouterr().out.strip().splitlines())
    # --init-from: every tensor but the classifier (classes differ) comes from run a
    other = write_glyph_set(tmp_path / "other")
    (other / "train" / "zero").rename(other / "train" / "O")  # another class set: O, one, A, B
    assert (
        cli.main(
            [
                "train",
                *common[:-1],
                str(other),
                "--epochs",
                "1",
                "--output-dir",
                str(tmp_path / "b"),
                "--init-from",
                str(tmp_path / "a"),
                "--skip-eval",
            ]
        )
        == 0
    )
    assert "initialised" in capsys.readouterr().out
    from glyphkit.config import Config
    from glyphkit.training import Trainer

    data = load_split("other", other)
    trainer = Trainer(
        Config(model="glyphnet", init_from=str(tmp_path / "a")),
        data,
        tmp_path / "c",
        progress=False,
        log=lambda *_: None,
    )
    source = torch.load(tmp_path / "a" / "best_model.pth", weights_only=True)
    assert torch.equal(
        trainer.model.state_dict()["stem.0.weight"],
        source["ema"]["module.stem.0.weight"] if source.get("ema") else source["model"]["stem.0.weight"],
    )
    fresh = Trainer(Config(model="glyphnet"), data, tmp_path / "d", progress=False, log=lambda *_: None)
    assert not torch.equal(fresh.model.state_dict()["stem.0.weight"], trainer.model.state_dict()["stem.0.weight"])
