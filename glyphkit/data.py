"""EMNIST on disk -> upright uint8 tensors in memory (glyphkit.batches turns them into device batches).

Where the files come from, in order: an explicit folder (`data_dir` / `$GLYPHKIT_DATA_DIR`), the local cache
(see cache_dir), then NIST's gzip.zip downloaded into the cache (glyphkit.download). A folder may hold the
IDX files (`emnist-<split>-<train|test>-<images-idx3|labels-idx1>-ubyte[.gz]`, plus
`emnist-<split>-mapping.txt`), torchvision's `EMNIST/raw/` layout, NIST's unpacked `gzip/` folder, or NIST's
`gzip.zip` as downloaded. Any split whose files follow that naming loads: that is how your own glyph set
(or a proxy split) comes in.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from glyphkit.config import Config

OFFICIAL_SPLITS = ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")
IDX_NAME = re.compile(
    r"^emnist-(?P<split>[A-Za-z0-9_]+)-(?P<part>train|test)-(?P<kind>images-idx3|labels-idx1)-ubyte(\.gz)?$"
)
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801


class DataError(RuntimeError):
    """Missing, corrupt or inconsistent data, with a message that says what and how to fix it."""


# ----------------------------------------------------------------------------------------------------------------
# IDX parsing. torchvision's reader (`read_sn3_pascalvincent_tensor`) takes only paths of uncompressed files and
# reports problems with bare asserts; EMNIST arrives as .gz files or inside a zip, and a user deserves to hear
# which file is broken and how. So the ~20 lines of header parsing live here.
# ----------------------------------------------------------------------------------------------------------------


def parse_idx(data: bytes, source: str, expected_magic: int) -> torch.Tensor:
    """Parse IDX bytes (uint8 payload) into a tensor, checking magic, header and length."""
    if len(data) < 8:
        raise DataError(f"{source}: file is too short to be an IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        kind = "images (0x00000803)" if expected_magic == IMAGE_MAGIC else "labels (0x00000801)"
        raise DataError(f"{source}: wrong IDX magic 0x{magic:08x}, expected {kind}; is this the right file?")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: IDX header is truncated")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + math.prod(shape)
    if len(data) != expected:
        raise DataError(
            f"{source}: IDX header says shape {tuple(shape)} ({expected} bytes) but the file has "
            f"{len(data)} bytes; the file is truncated or corrupt, download it again"
        )
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(shape)


# A header that promises more than any EMNIST file is refused before anything is decompressed: the largest,
# byclass/bymerge train images, holds 697,932 images of 28x28 (547 MB).
MAX_IDX_ITEMS = 1_000_000
MAX_IDX_BYTES = 2 * 1024**3
MAX_MAPPING_BYTES = 1024**2  # a mapping file is a few hundred bytes
READ_CHUNK = 1024**2


def _read_upto(stream: BinaryIO, limit: int) -> bytes:
    """At most `limit` bytes from `stream` (fewer at its end), read in chunks so nothing larger is ever asked for."""
    parts, left = [], limit
    while left > 0:
        chunk = stream.read(min(left, READ_CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _declared_payload(shape: list[int], source: str) -> int:
    """Bytes after the header that an IDX header declares, refused when no EMNIST file is that large."""
    payload = math.prod(shape)
    if (shape and shape[0] > MAX_IDX_ITEMS) or payload > MAX_IDX_BYTES:
        raise DataError(
            f"{source}: the IDX header declares shape {tuple(shape)} ({payload:,} bytes), more than any "
            f"EMNIST file (at most {MAX_IDX_ITEMS:,} items and {MAX_IDX_BYTES // 1024**3} GiB); the file "
            "is corrupt or not EMNIST data, so it is not read"
        )
    return payload


def read_idx_stream(stream: BinaryIO, source: str) -> bytes:
    """One IDX file from a (decompressing) stream, never more than its header declares: a gzip bomb or a
    header that promises gigabytes stops with a DataError instead of filling memory. parse_idx checks the rest."""
    head = _read_upto(stream, 8)
    magic = int.from_bytes(head[:4], "big")
    if len(head) < 8 or magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        return head  # parse_idx names what is wrong with it
    ndim = magic & 0xFF
    header = head + _read_upto(stream, 4 * ndim - 4)
    if len(header) < 4 + 4 * ndim:
        return header
    shape = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    payload = _declared_payload(shape, source)
    body = _read_upto(stream, payload + 1)  # one byte more than declared tells that the stream goes on
    if len(body) > payload:
        raise DataError(
            f"{source}: decompresses to more than the {len(header) + payload:,} bytes its IDX header "
            f"declares (shape {tuple(shape)}); reading stopped there. The file is corrupt or not "
            "EMNIST data, download it again"
        )
    return header + body


def _read_bytes(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            return read_idx_stream(f, str(path))
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(
            f"{path}: cannot read ({exc}); the file is truncated, corrupt or not gzip data, download it again"
        ) from exc


def _read_mapping_text(stream: BinaryIO, source: str) -> str:
    """A mapping file's text, refused when it is larger than any mapping file (it may come out of a zip)."""
    data = _read_upto(stream, MAX_MAPPING_BYTES + 1)
    if len(data) > MAX_MAPPING_BYTES:
        raise DataError(
            f"{source}: more than {MAX_MAPPING_BYTES:,} bytes, far larger than a mapping file "
            "(one 'label ascii_code' line per class); it is not read"
        )
    return data.decode()


# ----------------------------------------------------------------------------------------------------------------
# Finding the files
# ----------------------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """glyphkit's per-user cache: $GLYPHKIT_CACHE, else $XDG_CACHE_HOME/glyphkit, else ~/.cache/glyphkit."""
    if os.environ.get("GLYPHKIT_CACHE"):
        return Path(os.environ["GLYPHKIT_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # XDG: a relative path is to be ignored
    return base / "glyphkit"


def _candidate_folders(root: Path) -> list[Path]:
    """The layouts EMNIST comes in under one folder."""
    return [root, root / "gzip", root / "EMNIST" / "raw", root / "EMNIST" / "raw" / "gzip"]


def _zip_archives(root: Path) -> list[Path]:
    return [p for p in (root / "gzip.zip", root / "EMNIST" / "raw" / "gzip.zip") if p.is_file()]


@dataclass
class SplitSource:
    """Where one split's files are: a folder, or members of NIST's gzip.zip."""

    split: str
    location: Path  # folder or zip file
    names: dict[str, str]  # "train-images" -> file name (in the folder or in the zip)
    mapping: str | None  # mapping file name, if present

    def read(self, key: str) -> bytes:
        name = self.names[key]
        if self.location.is_dir():
            return _read_bytes(self.location / name)
        source = f"{self.location}:{name}"
        try:
            with zipfile.ZipFile(self.location) as zf, zf.open(name) as member:
                if not name.endswith(".gz"):
                    return read_idx_stream(member, source)
                with gzip.GzipFile(fileobj=member) as unzipped:
                    return read_idx_stream(unzipped, source)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile, KeyError) as exc:
            raise DataError(f"{source}: cannot read ({exc}); the archive is corrupt, download it again") from exc

    def read_mapping(self) -> str | None:
        if self.mapping is None:
            return None
        try:
            source = f"{self.location}/{self.mapping}"
            if self.location.is_dir():
                with open(self.location / self.mapping, "rb") as f:
                    return _read_mapping_text(f, source)
            with zipfile.ZipFile(self.location) as zf, zf.open(self.mapping) as member:
                return _read_mapping_text(member, source)
        except (OSError, UnicodeDecodeError, zipfile.BadZipFile, KeyError) as exc:
            raise DataError(
                f"{self.location}/{self.mapping}: cannot read the mapping file ({exc}); expected text "
                "with one 'label ascii_code' line per class (e.g. '10 65' for label 10 = 'A')"
            ) from exc

    def describe(self, key: str) -> str:
        return f"{self.location}/{self.names[key]}" if self.location.is_dir() else f"{self.location}:{self.names[key]}"


def _index_names(names: list[str]) -> dict[str, dict[str, str]]:
    """{split: {"train-images": name, ...}} from a list of file names (basenames or zip members)."""
    found: dict[str, dict[str, str]] = {}
    for name in names:
        m = IDX_NAME.match(Path(name).name)
        if m:
            key = f"{m['part']}-{m['kind'].split('-')[0]}"
            found.setdefault(m["split"], {}).setdefault(key, name)
    return found


def find_sources(root: Path) -> dict[str, SplitSource]:
    """Every split under `root` (any supported layout), by name."""
    sources: dict[str, SplitSource] = {}
    for archive in _zip_archives(root):
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"{archive}: not a readable zip archive ({exc}); download gzip.zip again") from exc
        mappings = {Path(n).name: n for n in members if n.endswith("-mapping.txt")}
        for split, names in _index_names(members).items():
            sources.setdefault(split, SplitSource(split, archive, names, mappings.get(f"emnist-{split}-mapping.txt")))
    for folder in _candidate_folders(root):
        if not folder.is_dir():
            continue
        files = sorted(p.name for p in folder.iterdir())
        for split, names in _index_names(files).items():
            mapping = f"emnist-{split}-mapping.txt"
            sources[split] = SplitSource(split, folder, names, mapping if (folder / mapping).is_file() else None)
    return sources


def _download(split: str, root: Path) -> None:
    """NIST's gzip.zip (every official split) into `root`, checked; see glyphkit.download (needs the network)."""
    from glyphkit.download import download_archive

    download_archive(root)


def locate_split(split: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> SplitSource:
    """Find `split`'s files: explicit folder, then cache, then download; one clear error when all fail."""
    looked: list[str] = []
    roots = []
    explicit = data_dir or os.environ.get("GLYPHKIT_DATA_DIR")
    if explicit:
        explicit = Path(explicit).expanduser()
        if not explicit.is_dir():
            raise DataError(
                f"data folder {explicit} does not exist; pass --data-dir with the folder that holds "
                "the EMNIST files (or NIST's gzip.zip)"
            )
        roots.append(explicit)
    roots.append(cache_dir())
    found_elsewhere: set[str] = set()
    for root in roots:
        sources = find_sources(root)
        looked.append(str(root))
        if split in sources:
            return _check_complete(sources[split])
        found_elsewhere.update(sources)
    known = ", ".join(sorted(found_elsewhere)) or "none"
    if split in OFFICIAL_SPLITS and download:
        try:
            _download(split, cache_dir())
        except DataError as exc:
            raise DataError(
                f"split {split!r} is not in {'; '.join(looked)} (splits there: {known}), and the download failed: {exc}"
            ) from exc
        sources = find_sources(cache_dir())
        if split in sources:
            return _check_complete(sources[split])
        looked.append(f"{cache_dir()}/gzip.zip (downloaded)")
    hint = (
        "put NIST's gzip.zip or the emnist-<split>-*-ubyte.gz files in a folder and pass --data-dir FOLDER "
        "(or set GLYPHKIT_DATA_DIR)"
    )
    if split not in OFFICIAL_SPLITS and not found_elsewhere:
        hint = f"{split!r} is not an EMNIST split ({', '.join(OFFICIAL_SPLITS)}) and no folder holds its files; " + hint
    raise DataError(
        f"split {split!r} not found. Looked in: {'; '.join(looked)}. Splits found there: {known}. Fix: {hint}"
    )


def _check_complete(source: SplitSource) -> SplitSource:
    missing = [k for k in ("train-images", "train-labels", "test-images", "test-labels") if k not in source.names]
    if missing:
        names = ", ".join(
            f"emnist-{source.split}-{k.replace('images', 'images-idx3').replace('labels', 'labels-idx1')}-ubyte.gz"
            for k in missing
        )
        raise DataError(f"split {source.split!r} in {source.location} is incomplete: missing {names}")
    return source


def available_splits(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the splits present locally (explicit folder and cache), without downloading."""
    roots = [Path(d) for d in (data_dir or os.environ.get("GLYPHKIT_DATA_DIR"), cache_dir()) if d]
    return sorted({s for r in roots if r.is_dir() for s in find_sources(r)})


# ----------------------------------------------------------------------------------------------------------------
# Label -> character maps
# ----------------------------------------------------------------------------------------------------------------


def parse_mapping(text: str, source: str) -> list[str]:
    """`label ascii_code` per line -> list of characters indexed by label."""
    pairs = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        # isascii: str.isdigit() also accepts digits such as '²' that int() cannot read
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
            raise DataError(
                f"{source}: line {n} is {line.strip()!r}; expected 'label ascii_code' "
                "(two integers, e.g. '10 65' for label 10 = 'A')"
            )
        if int(parts[1]) > 0x10FFFF:
            raise DataError(
                f"{source}: line {n}: {parts[1]} is not a character code; expected 'label ascii_code' "
                "(e.g. '10 65' for label 10 = 'A')"
            )
        pairs[int(parts[0])] = chr(int(parts[1]))
    if not pairs:
        raise DataError(
            f"{source}: the mapping file is empty; expected one 'label ascii_code' line per class "
            "(e.g. '10 65' for label 10 = 'A')"
        )
    if sorted(pairs) != list(range(len(pairs))):
        raise DataError(
            f"{source}: labels must be 0..N-1 without gaps, one 'label ascii_code' line each; "
            f"found labels {sorted(pairs)[:5]}..."
        )
    return [pairs[i] for i in range(len(pairs))]


def split_classes(source: SplitSource) -> list[str]:
    text = source.read_mapping()
    if text is not None:
        return parse_mapping(text, f"{source.location}/{source.mapping}")
    if source.split in OFFICIAL_SPLITS:
        from torchvision.datasets import EMNIST

        return [c if c != "N/A" else "?" for c in EMNIST.classes_split_dict[source.split]]
    raise DataError(
        f"mapping file emnist-{source.split}-mapping.txt is missing in {source.location}; "
        "add it with one 'label ascii_code' line per class (e.g. '10 65' for label 10 = 'A')"
    )


# ----------------------------------------------------------------------------------------------------------------
# Loading a split into memory
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class GlyphData:
    """One split in memory: upright uint8 images [N, 28, 28], int64 labels, and the characters."""

    split: str
    classes: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_labels), "val": len(self.val_labels), "test": len(self.test_labels)}

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"part must be train, val or test, got {name!r}")
        return getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")


def read_part(source: SplitSource, part: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (upright) and labels of the `train` or `test` part, checked against each other and the mapping."""
    images = parse_idx(source.read(f"{part}-images"), source.describe(f"{part}-images"), IMAGE_MAGIC)
    labels = parse_idx(source.read(f"{part}-labels"), source.describe(f"{part}-labels"), LABEL_MAGIC)
    if images.dim() != 3:
        raise DataError(
            f"{source.describe(f'{part}-images')}: expected a 3-d image array, got shape {tuple(images.shape)}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{source.describe(f'{part}-images')} has {len(images)} images but "
            f"{source.describe(f'{part}-labels')} has {len(labels)} labels; the pair does not match"
        )
    if len(labels) and int(labels.max()) >= num_classes:
        raise DataError(
            f"{source.describe(f'{part}-labels')}: label {int(labels.max())} is outside the mapping's "
            f"{num_classes} classes; is the mapping file for this split?"
        )
    # EMNIST stores every image transposed; make them upright once, here.
    return images.transpose(1, 2).contiguous(), labels.long()


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) with every class represented in proportion (sklearn's stratified split)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels.numpy())
    n_val = math.ceil(len(labels) * val_fraction)
    n_classes = int((counts > 0).sum())
    # a class of one cannot be split, and a part smaller than the class count cannot hold every class
    can_stratify = counts[counts > 0].min() >= 2 and min(n_val, len(labels) - n_val) >= n_classes
    stratify = labels.numpy() if can_stratify else None
    train_idx, val_idx = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    return torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(val_idx))


def _subsample(images: torch.Tensor, labels: torch.Tensor, limit: int | None, seed: int):
    if limit is None or limit >= len(labels):
        return images, labels
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(labels), generator=g)[:limit].sort().values
    return images[keep], labels[keep]


def load_split(
    split: str = "balanced",
    data_dir: str | os.PathLike | None = None,
    val_split: float = 0.1,
    seed: int = 42,
    limit_train: int | None = None,
    limit_test: int | None = None,
    download: bool = True,
) -> GlyphData:
    """Load a split: train/val (stratified, seeded) and the untouched test set, as upright uint8 tensors.

    A data folder laid out as `train/<class>/*.png` (a glyph set of your own) is that split, named after the
    folder, whatever `split` says."""
    folder = data_dir or os.environ.get("GLYPHKIT_DATA_DIR")
    if folder and is_image_folder(folder):
        split, classes, (train_images, train_labels), (test_images, test_labels) = read_image_folder(folder, seed)
    else:
        source = locate_split(split, data_dir, download=download)
        classes = split_classes(source)
        train_images, train_labels = read_part(source, "train", len(classes))
        test_images, test_labels = read_part(source, "test", len(classes))
    train_images, train_labels = _subsample(train_images, train_labels, limit_train, seed)
    test_images, test_labels = _subsample(test_images, test_labels, limit_test, seed + 1)
    train_idx, val_idx = stratified_split(train_labels, val_split, seed)
    return GlyphData(
        split=split,
        classes=classes,
        train_images=train_images[train_idx],
        train_labels=train_labels[train_idx],
        val_images=train_images[val_idx],
        val_labels=train_labels[val_idx],
        test_images=test_images,
        test_labels=test_labels,
    )


# ----------------------------------------------------------------------------------------------------------------
# Your own glyph set: a folder of images per class
# ----------------------------------------------------------------------------------------------------------------

IMAGE_FOLDER_TEST_SHARE = 0.2  # held out for testing when the folder has no test/


def is_image_folder(root: str | os.PathLike) -> bool:
    """True for the layout `root/train/<class>/<image>` (optionally `root/test/<class>/<image>`)."""
    return (Path(root).expanduser() / "train").is_dir()


def read_image_folder(root: str | os.PathLike, seed: int) -> tuple[str, list[str], tuple, tuple]:
    """(split name, classes, (train images, labels), (test images, labels)) of a glyph set kept as image files.

    Class names are the folder names (a character such as `a`, or a name such as `alpha`). Every image goes through
    glyphkit.preprocess, as `glyphkit predict` reads images, once: the 28x28 glyphs are cached (see cache_dir)
    under a key made of the files' names, sizes and times. Without test/, a stratified share is held out."""
    root = Path(root).expanduser()
    classes = _class_folders(root / "train")
    train = _read_image_part(root / "train", classes)
    if (root / "test").is_dir():
        unknown = sorted(set(_class_folders(root / "test", minimum=1)) - set(classes))
        if unknown:
            raise DataError(
                f"{root / 'test'}: classes {', '.join(unknown)} have no training images in "
                f"{root / 'train'}; add them there or remove them from test/"
            )
        test = _read_image_part(root / "test", classes, required=False)
    else:
        keep, held_out = stratified_split(train[1], IMAGE_FOLDER_TEST_SHARE, seed + 7)
        train, test = (train[0][keep], train[1][keep]), (train[0][held_out], train[1][held_out])
    return root.name, classes, train, test


def _class_folders(folder: Path, minimum: int = 2) -> list[str]:
    from glyphkit.preprocess import is_os_metadata

    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not is_os_metadata(p))
    stray = [p.name for p in entries if not p.is_dir()]
    if stray:
        raise DataError(
            f"{folder / stray[0]}: a file where {folder} holds one folder per class "
            f"({folder.name}/<class>/<image>); move it into the folder of its class"
        )
    if len(entries) < minimum:
        raise DataError(
            f"{folder}: {len(entries)} class folder(s); a glyph set needs at least {minimum} "
            f"({folder.name}/<class>/<image>, one folder per character)"
        )
    return [p.name for p in entries]


class UnreadableImages(DataError):
    """Image files of a glyph set that cannot be read: one line per file, then what to do. Nothing is trained on
    a set with a file missing, so every such file is named at once."""

    def __init__(self, errors: list[str], folder: Path, total: int):
        self.errors = errors
        super().__init__(
            "\n".join(
                [
                    *errors,
                    f"{len(errors)} of the {total:,} images in {folder} cannot be read; fix or remove those files",
                ]
            )
        )


def _file_key(path: Path) -> tuple[str, int, int]:
    """What the cache key holds of a file; a file that cannot be looked at (a broken link) gets its error later,
    when it is read."""
    try:
        stat = path.stat()
    except OSError:
        return str(path), -1, -1
    return str(path), stat.st_size, stat.st_mtime_ns


def _read_image_part(folder: Path, classes: list[str], required: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Every class folder's images as upright uint8 glyphs, through the cache."""
    from glyphkit.preprocess import IMAGE_SUFFIXES, glyphs_of_files, image_files  # heavy (scikit-image), optional

    files = {c: image_files([folder / c]) if (folder / c).is_dir() else [] for c in classes}
    empty = [c for c, found in files.items() if not found and (required or (folder / c).is_dir())]
    if empty:
        raise DataError(
            f"{folder / empty[0]}: no images ({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)}); "
            "every class needs some, or remove its folder"
        )
    listing = [(c, p) for c in classes for p in files[c]]
    key = hashlib.sha256(repr([_file_key(p) for _, p in listing]).encode())
    cached = cache_dir() / "image-folders" / f"{folder.parent.name}-{folder.name}-{key.hexdigest()[:16]}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as saved:
            return torch.from_numpy(saved["images"]), torch.from_numpy(saved["labels"])
    glyphs, errors = [], []
    for _, found, error in glyphs_of_files([p for _, p in listing]):
        if error is None:
            glyphs.append(found[0].image)
        else:
            errors.append(error)
    if errors:
        raise UnreadableImages(errors, folder, len(listing))
    images = np.stack(glyphs)
    labels = np.array([classes.index(c) for c, _ in listing], dtype=np.int64)
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = cached.with_suffix(".tmp.npz")  # written whole, then renamed: a killed run leaves no half cache
    np.savez(staging, images=images, labels=labels)
    os.replace(staging, cached)
    return torch.from_numpy(images), torch.from_numpy(labels)


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of pixel values in [0, 1], for normalisation."""
    x = images.float().div_(255)
    return float(x.mean()), float(x.std())


def load_config_split(config: Config, download: bool = True) -> GlyphData:
    """The data a Config describes: its split, data folder, validation share, seed and limits (the one place
    that unpacks a Config for load_split)."""
    return load_split(
        config.split,
        config.data_dir,
        val_split=config.val_split,
        seed=config.seed,
        limit_train=config.limit_train,
        limit_test=config.limit_test,
        download=download,
    )


def load_run_split(config: Config, data_dir: str | os.PathLike | None = None) -> GlyphData:
    """A trained run's split (its config), read from `data_dir` when given, else from where the run read it: its
    config's folder, or, when it named none, $GLYPHKIT_DATA_DIR and the cache as load_split looks (never the folder
    "None"). What train-pieces and train-lines learn from."""
    return load_config_split(config.replace(data_dir=str(data_dir) if data_dir else config.data_dir))
