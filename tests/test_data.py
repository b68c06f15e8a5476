"""Loading EMNIST-format data: IDX parsing in every packaging, orientation, characters, splits, batches."""

import gzip
import shutil
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import torch

from glyphkit.batches import iterate_batches, random_affine
from glyphkit.data import (
    IMAGE_MAGIC,
    DataError,
    available_splits,
    load_split,
    locate_split,
    parse_idx,
    read_part,
    split_classes,
    stratified_split,
)
from glyphkit.synthetic import idx_bytes, render_glyphs, write_emnist_split
from tests.conftest import TINY_CHARS


def test_parse_idx_reads_shape_and_values():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = parse_idx(idx_bytes(array), "mem", IMAGE_MAGIC)
    assert out.shape == (2, 3, 4) and torch.equal(out, torch.from_numpy(array))


@pytest.mark.parametrize("packaging", ["gz", "raw", "zip", "torchvision"])
def test_every_packaging_loads_the_same_images(tmp_path, tiny_data, packaging):
    src = tmp_path / "src"
    write_emnist_split(src, "tiny", TINY_CHARS, train_per_class=30, test_per_class=10, compress=True)
    dest = tmp_path / "dest"
    if packaging == "gz":
        dest = src
    elif packaging == "raw":  # uncompressed IDX files, as torchvision leaves them
        dest.mkdir()
        for f in src.iterdir():
            target = dest / f.name.removesuffix(".gz")
            target.write_bytes(gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes())
    elif packaging == "zip":  # NIST's gzip.zip: a gzip/ folder of .gz files inside a zip
        dest.mkdir()
        with zipfile.ZipFile(dest / "gzip.zip", "w") as zf:
            for f in src.iterdir():
                zf.write(f, f"gzip/{f.name}")
    else:  # torchvision's root/EMNIST/raw layout
        shutil.copytree(src, dest / "EMNIST" / "raw")
    data = load_split("tiny", dest, val_split=0.2, seed=0)
    assert data.classes == list(TINY_CHARS)
    assert torch.equal(data.test_images, tiny_data.test_images)
    assert torch.equal(data.train_labels, tiny_data.train_labels)


def test_images_come_out_upright(tiny_data):
    # The files store glyphs transposed, as EMNIST does; loading must undo it exactly.
    expected, _ = render_glyphs(TINY_CHARS, 10, seed=1)  # the test part was rendered with seed+1
    assert torch.equal(tiny_data.test_images, torch.from_numpy(expected))


def test_orientation_of_an_asymmetric_glyph(tmp_path):
    # An "L": a vertical bar on the left and a foot at the bottom. Stored transposed, read upright.
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 4:24, 6] = 255
    img[0, 23, 6:20] = 255
    folder = tmp_path / "l"
    folder.mkdir()
    for part in ("train", "test"):
        imgs = np.repeat(img, 4, 0)
        (folder / f"emnist-l-{part}-images-idx3-ubyte").write_bytes(idx_bytes(imgs.transpose(0, 2, 1)))
        (folder / f"emnist-l-{part}-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 1, 0, 1], np.uint8)))
    (folder / "emnist-l-mapping.txt").write_text("0 76\n1 108\n")
    data = load_split("l", folder, val_split=0.5, seed=0)
    glyph = data.test_images[0]
    assert glyph[4:24, 6].eq(255).all() and glyph[23, 6:20].eq(255).all()
    assert data.classes == ["L", "l"]


def test_official_splits_know_their_characters(tmp_path):
    # No mapping file in the folder: balanced and byclass fall back to torchvision's class lists.
    for split, n, sample in (("balanced", 47, {10: "A", 36: "a", 46: "t"}), ("byclass", 62, {35: "Z", 61: "z"})):
        folder = tmp_path / split
        write_emnist_split(folder, split, "01", train_per_class=2, test_per_class=1)
        (folder / f"emnist-{split}-mapping.txt").unlink()
        classes = split_classes(locate_split(split, folder))
        assert len(classes) == n and all(classes[k] == v for k, v in sample.items())
        assert classes[:10] == list("0123456789")


def test_mapping_file_gives_characters_for_folder_splits(tiny_data):
    assert tiny_data.classes[:3] == ["0", "1", "2"] and tiny_data.classes[-1] == "J"


def test_available_splits_lists_what_is_in_the_folder(tiny_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    assert available_splits(tiny_data_dir) == ["tiny"]


def test_unknown_split_says_where_it_looked(tiny_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        load_split("nosuch", tiny_data_dir)
    message = str(err.value)
    assert "nosuch" in message and str(tiny_data_dir) in message and "tiny" in message


def test_stratified_split_keeps_class_shares():
    labels = torch.tensor([0] * 80 + [1] * 20)
    train, val = stratified_split(labels, 0.1, seed=0)
    assert len(val) == 10 and int((labels[val] == 1).sum()) == 2
    assert set(train.tolist()).isdisjoint(val.tolist()) and len(train) + len(val) == 100
    again, _ = stratified_split(labels, 0.1, seed=0)
    assert torch.equal(train, again)


def test_validation_split_is_disjoint_and_test_untouched(tiny_data):
    sizes = tiny_data.sizes()
    assert sizes == {"train": 480, "val": 120, "test": 200}
    assert torch.bincount(tiny_data.val_labels).tolist() == [6] * 20  # 20% of 30 per class


def test_augmentation_keeps_shape_and_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 32, 32)
    out = random_affine(x, rotation=15, affine_rotation=10, translate=0.08, scale=0.1, generator=g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)
    # No augmentation at all gives back the input.
    same = random_affine(x, rotation=0, affine_rotation=0, translate=0, scale=0, generator=g)
    assert torch.allclose(same, x, atol=1e-5)


def test_augment_share_warps_that_share_of_the_glyphs_and_leaves_the_rest_as_they_are():
    x = torch.rand(2000, 1, 28, 28)

    def unchanged(share):
        out = random_affine(
            x,
            rotation=10,
            affine_rotation=0,
            translate=0.08,
            scale=0.1,
            generator=torch.Generator().manual_seed(0),
            share=share,
        )
        return (out == x).all(dim=(1, 2, 3)).float().mean().item()  # the glyphs left exactly as they were

    assert unchanged(1.0) == 0.0  # the default: every glyph warped
    assert 0.45 < unchanged(0.5) < 0.55  # binomial(2000, 0.5): outside this range about once in 10^5 draws
    assert 0.7 < unchanged(0.25) < 0.8


def test_batches_are_normalised_padded_and_cover_the_set(tiny_data):
    seen = 0
    for x, y in iterate_batches(
        tiny_data.test_images,
        tiny_data.test_labels,
        64,
        mean=0.1,
        std=0.3,
        input_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        augment=dict(rotation=15, affine_rotation=10, translate=0.08, scale=0.0),
    ):
        assert x.shape[1:] == (1, 32, 32) and x.dtype == torch.float32
        assert torch.allclose(x[:, :, 0, :], torch.tensor(-0.1 / 0.3))  # zero border after normalisation
        seen += len(y)
    assert seen == 200


def test_shards_split_one_order_into_equal_disjoint_shares():
    labels = torch.arange(11)
    images = torch.zeros(11, 28, 28, dtype=torch.uint8)

    def seen(rank: int, world: int) -> list[int]:
        batches = iterate_batches(
            images,
            labels,
            2,
            mean=0.0,
            std=1.0,
            input_size=28,
            shuffle=True,
            generator=torch.Generator().manual_seed(3),
            shard=(rank, world),
        )
        return [int(y) for _, ys in batches for y in ys]

    whole = seen(0, 1)
    assert sorted(whole) == list(range(11))
    shares = [seen(rank, 2) for rank in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 5  # equal lengths: one image of the 11 sits this epoch out
    assert not set(shares[0]) & set(shares[1])
    assert shares[0] == whole[0:10:2] and shares[1] == whole[1:10:2]  # every rank draws from the same order


# ----------------------------------------------------------------------------------------------------------------
# Decompression bounds: a file that inflates far beyond its IDX header is refused before memory fills
# ----------------------------------------------------------------------------------------------------------------

INFLATED = 64 * 1024**2  # what each "bomb" below inflates to; a bounded reader never holds more than a few MB of it
PEAK_LIMIT = 16 * 1024**2


def gzip_of_header_and_zeros(header: bytes, zeros: int) -> bytes:
    """gzip of `header` + `zeros` zero bytes, compressed a block at a time (the test never holds the inflated data)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    block = bytes(1024**2)
    parts = [packer.compress(header)] + [packer.compress(block) for _ in range(zeros // len(block))]
    return b"".join(parts) + packer.flush()


def bomb_folder(tmp_path, images_gz: bytes, packaging: str):
    """Split `bomb` (10 train images, valid small files) whose train images file is `images_gz`; as .gz files in
    a folder, or inside a NIST-style gzip.zip."""
    folder = tmp_path / "files"
    write_emnist_split(folder, "bomb", "01", train_per_class=5, test_per_class=2)
    (folder / "emnist-bomb-train-images-idx3-ubyte.gz").write_bytes(images_gz)
    if packaging == "gz":
        return folder
    archive = tmp_path / "zipped"
    archive.mkdir()
    with zipfile.ZipFile(archive / "gzip.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in folder.iterdir():
            zf.write(f, f"gzip/{f.name}")
    return archive


def load_measuring_peak(split: str, folder) -> tuple[pytest.ExceptionInfo, int]:
    """The DataError that loading raises, and the peak of Python memory allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            load_split(split, folder)
        return err, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("packaging", ["gz", "zip"])
def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path, monkeypatch, packaging):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    header = struct.pack(">IIII", 0x00000803, 10, 28, 28)  # 10 images: 16 + 7,840 bytes, then 64 MB more
    folder = bomb_folder(tmp_path, gzip_of_header_and_zeros(header, INFLATED), packaging)
    err, peak = load_measuring_peak("bomb", folder)
    assert peak < PEAK_LIMIT, f"{peak:,} bytes allocated: the bomb was inflated"
    assert "emnist-bomb-train-images-idx3-ubyte.gz" in str(err.value) and "\n" not in str(err.value)
    assert f"more than the {16 + 10 * 28 * 28:,} bytes its IDX header declares" in str(err.value)


@pytest.mark.parametrize("packaging", ["gz", "zip"])
@pytest.mark.parametrize("shape", [(2**31, 28, 28), (10, 65535, 65535)], ids=["2^31 images", "huge images"])
def test_a_header_declaring_an_absurd_size_is_refused_before_reading(tmp_path, monkeypatch, packaging, shape):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    header = struct.pack(">IIII", 0x00000803, *shape)
    folder = bomb_folder(tmp_path, gzip_of_header_and_zeros(header, INFLATED), packaging)
    err, peak = load_measuring_peak("bomb", folder)
    assert peak < PEAK_LIMIT, f"{peak:,} bytes allocated: the stream was read"
    assert "emnist-bomb-train-images-idx3-ubyte.gz" in str(err.value)
    assert f"declares shape {shape}" in str(err.value) and "more than any EMNIST file" in str(err.value)


def test_a_mapping_member_that_inflates_to_megabytes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "files"
    write_emnist_split(folder, "bomb", "01", train_per_class=5, test_per_class=2)
    (tmp_path / "zipped").mkdir()
    with zipfile.ZipFile(tmp_path / "zipped" / "gzip.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in folder.iterdir():
            if not f.name.endswith("mapping.txt"):
                zf.write(f, f"gzip/{f.name}")
        with zf.open("gzip/emnist-bomb-mapping.txt", "w") as member:
            for _ in range(INFLATED // 2**20):
                member.write(b" " * 2**20)
    err, peak = load_measuring_peak("bomb", tmp_path / "zipped")
    assert peak < PEAK_LIMIT, f"{peak:,} bytes allocated: the member was inflated"
    assert "emnist-bomb-mapping.txt" in str(err.value) and "larger than a mapping file" in str(err.value)


# ----------------------------------------------------------------------------------------------------------------
# Files written by hand (struct + numpy, not glyphkit's encoder), read by glyphkit and by torchvision's IDX reader
# ----------------------------------------------------------------------------------------------------------------

HAND_CHARS = "aB7"  # mapping codes 97, 66, 55
HAND_COUNTS = {"train": 12, "test": 6}


def hand_idx(array: np.ndarray, magic: int) -> bytes:
    """IDX as the format defines it: a big-endian magic (0x801 labels, 0x803 images), big-endian dims, uint8 data."""
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    """Split `hand` written by hand three ways (raw IDX, .gz, NIST's gzip.zip), and the upright arrays in it.

    Stored like EMNIST: each image transposed, so the file holds upright.transpose(0, 2, 1)."""
    root = tmp_path_factory.mktemp("handmade")
    rng = np.random.default_rng(7)
    arrays, files = {}, {}
    for part, n in HAND_COUNTS.items():
        upright = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % len(HAND_CHARS)).astype(np.uint8)
        arrays[part] = upright, labels
        files[f"emnist-hand-{part}-images-idx3-ubyte"] = hand_idx(upright.transpose(0, 2, 1), 0x00000803)
        files[f"emnist-hand-{part}-labels-idx1-ubyte"] = hand_idx(labels, 0x00000801)
    mapping = "".join(f"{label} {ord(c)}\r\n" for label, c in enumerate(HAND_CHARS)).encode()
    for folder, suffix, pack in (("raw", "", lambda b: b), ("gz", ".gz", gzip.compress)):
        (root / folder).mkdir()
        for name, data in files.items():
            (root / folder / (name + suffix)).write_bytes(pack(data))
        (root / folder / "emnist-hand-mapping.txt").write_bytes(mapping)
    (root / "zip").mkdir()
    with zipfile.ZipFile(root / "zip" / "gzip.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((root / "gz").iterdir()):
            zf.write(path, f"gzip/{path.name}")
    return root, arrays


@pytest.mark.parametrize("packaging", ["raw", "gz", "zip"])
def test_handmade_files_load_upright_with_their_characters(handmade, packaging):
    root, arrays = handmade
    source = locate_split("hand", root / packaging, download=False)
    assert split_classes(source) == list(HAND_CHARS)
    for part, (upright, labels) in arrays.items():
        images, got_labels = read_part(source, part, len(HAND_CHARS))
        assert torch.equal(images, torch.from_numpy(upright)), part
        assert torch.equal(got_labels, torch.from_numpy(labels).long()), part
    data = load_split("hand", root / packaging, val_split=0.5, seed=0)
    assert torch.equal(data.test_images, torch.from_numpy(arrays["test"][0]))


def test_torchvision_reads_the_same_files_as_stored_and_glyphkit_turns_them_upright(handmade):
    """torchvision's own IDX reader, a second opinion: it returns images as stored (transposed, as torchvision's
    EMNIST users see them); glyphkit's are those images transposed back, with the same labels."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    root, arrays = handmade
    source = locate_split("hand", root / "gz", download=False)
    for part in HAND_COUNTS:
        stored = read_image_file(str(root / "raw" / f"emnist-hand-{part}-images-idx3-ubyte"))
        labels = read_label_file(str(root / "raw" / f"emnist-hand-{part}-labels-idx1-ubyte"))
        assert torch.equal(stored, torch.from_numpy(arrays[part][0].transpose(0, 2, 1).copy()))
        images, got_labels = read_part(source, part, len(HAND_CHARS))
        assert torch.equal(images, stored.transpose(1, 2)) and torch.equal(got_labels, labels)
