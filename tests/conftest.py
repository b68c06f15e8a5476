"""Shared fixtures: tiny EMNIST-format folders written by the tests themselves (no real data needed)."""

from __future__ import annotations

import pytest

from glyphkit.synthetic import write_emnist_split

TINY_CHARS = "0123456789ABCDEFGHIJ"  # 20 classes: enough for stratification and confusion tests


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """A folder with split `tiny` (20 classes, 30 train / 10 test images per class), gzipped IDX."""
    folder = tmp_path_factory.mktemp("emnist")
    write_emnist_split(folder, "tiny", TINY_CHARS, train_per_class=30, test_per_class=10)
    return folder


@pytest.fixture(scope="session")
def tiny_data(tiny_data_dir):
    from glyphkit.data import load_split

    return load_split("tiny", tiny_data_dir, val_split=0.2, seed=0)


@pytest.fixture
def tiny_config():
    """A Config that trains in about a second on tiny_data: fp32, deterministic."""
    from glyphkit.config import Config

    return Config(
        split="tiny",
        model="glyphnet",
        epochs=2,
        batch_size=64,
        lr=3e-3,
        precision="fp32",
        deterministic=True,
        width=8,
        input_size=28,
    )
