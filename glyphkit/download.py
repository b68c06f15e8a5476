"""Fetching NIST's EMNIST archive (`gzip.zip`, 536 MB) into the cache, for glyphkit.data.

NIST's link has moved and broken several times, so `$GLYPHKIT_EMNIST_URL` points glyphkit at a mirror of the same
file. The download goes to `gzip.zip.part` next to the archive: a cut transfer is resumed from there (HTTP Range)
when the server allows it and started over when not. Only an archive with NIST's published size and SHA-256 is
renamed to `gzip.zip`, so a half or foreign file never takes its place. When it fails, the error says which URL
was tried and where a `gzip.zip` fetched by hand goes.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from glyphkit.data import DataError

URL_ENV = "GLYPHKIT_EMNIST_URL"
NIST_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
ARCHIVE_NAME = "gzip.zip"
# NIST publishes no checksum. These are the archive's size and SHA-256 as TensorFlow Datasets records them
# (tensorflow_datasets/url_checksums/emnist.txt); torchvision checks the same file by its MD5,
# 58c8d27c78d21e728a6bc7b3cc06412e. A mirror must serve this file byte for byte.
ARCHIVE_SIZE = 561_753_746
ARCHIVE_SHA256 = "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e"
ATTEMPTS = 3  # tries while each one gets further; a try that gets nothing ends the download
TIMEOUT_S = 60
CHUNK = 1024**2


class _Cut(Exception):
    """The transfer stopped early (network error or closed connection); the `.part` file keeps what came."""


class _NotTheArchive(Exception):
    """The server answered with something other than NIST's gzip.zip."""


def archive_url() -> str:
    """The URL of gzip.zip: `$GLYPHKIT_EMNIST_URL` when set, else NIST's."""
    return os.environ.get(URL_ENV, "").strip() or NIST_URL


def download_archive(root: Path, log: Callable[[str], None] = print) -> Path:
    """Fetch gzip.zip into `root`, resuming a `.part` file that a cut download left, check its size and SHA-256,
    and rename it into place; a DataError says what to do when that fails."""
    url, dest = archive_url(), root / ARCHIVE_NAME
    part = dest.with_name(ARCHIVE_NAME + ".part")
    root.mkdir(parents=True, exist_ok=True)
    log(f"downloading EMNIST ({ARCHIVE_SIZE / 2**20:.0f} MB) from {url} into {dest}")
    try:
        _fetch_with_retries(url, part)
        _verify(part)
    except _NotTheArchive as exc:
        part.unlink(missing_ok=True)
        raise DataError(
            f"{url} did not send NIST's gzip.zip ({exc}), so it was deleted. Fix: {_manual_fix(dest)}"
        ) from None
    except _Cut as exc:
        kept = part.stat().st_size if part.is_file() else 0
        resume = f"run again to resume from the {kept:,} bytes kept in {part}, " if kept else "try again later, "
        raise DataError(f"could not download {url} ({exc}). Fix: {resume}{_manual_fix(dest)}") from None
    os.replace(part, dest)
    return dest


def _manual_fix(dest: Path) -> str:
    return (
        f"set {URL_ENV} to a mirror of NIST's gzip.zip, or download gzip.zip yourself (from {NIST_URL} or a "
        f"mirror) and put it at {dest} (or in a folder passed with --data-dir / $GLYPHKIT_DATA_DIR)"
    )


def _fetch_with_retries(url: str, part: Path) -> None:
    """Request the rest of the archive until it is whole, again while each try gets further."""
    for _ in range(ATTEMPTS):
        before = _size(part)
        if before == ARCHIVE_SIZE:
            return
        try:
            _fetch(url, part)
            return
        except _Cut:
            if _size(part) <= before:  # no progress: the server is down or cuts at the same place
                raise
    raise _Cut(f"the transfer was cut {ATTEMPTS} times")


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _fetch(url: str, part: Path) -> None:
    """One request: append to `part` from where it stops when the server honours Range, else start it over."""
    have = _size(part)
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part is not a prefix this server knows: start over next time
            part.unlink()
        raise _Cut(f"HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, refused, timeout, bad URL
        raise _Cut(_reason(exc)) from None
    with response:
        resumed = response.status == 206 and _range_start(response.headers.get("Content-Range")) == have
        if response.status == 206 and not resumed:  # a range other than the one asked for: start over
            part.unlink(missing_ok=True)
            raise _Cut("the server sent another byte range than the one asked for")
        total = _announced_total(response, have if resumed else 0)
        if total is not None and total != ARCHIVE_SIZE:
            raise _NotTheArchive(f"it announces {total:,} bytes, NIST's gzip.zip has {ARCHIVE_SIZE:,}")
        _copy(response, part, append=resumed)
    if _size(part) < ARCHIVE_SIZE:
        raise _Cut(f"the connection closed after {_size(part):,} of {ARCHIVE_SIZE:,} bytes")


def _copy(response, part: Path, append: bool) -> None:
    """Write the response body to `part` (appended, or from scratch), never beyond the archive's size."""
    with open(part, "ab" if append else "wb") as f:
        try:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                if f.tell() > ARCHIVE_SIZE:
                    raise _NotTheArchive(f"it sends more than the {ARCHIVE_SIZE:,} bytes of NIST's gzip.zip")
        except (OSError, http.client.HTTPException) as exc:
            raise _Cut(_reason(exc)) from None
        finally:
            f.flush()
            os.fsync(f.fileno())


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return (str(reason).splitlines() or [""])[0] or type(exc).__name__


def _range_start(content_range: str | None) -> int | None:
    found = re.match(r"bytes (\d+)-", content_range or "")
    return int(found.group(1)) if found else None


def _announced_total(response, start: int) -> int | None:
    """The archive's full size as the response announces it (Content-Range's total, or start + Content-Length)."""
    found = re.search(r"/(\d+)$", response.headers.get("Content-Range") or "")
    if found:
        return int(found.group(1))
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _verify(part: Path) -> None:
    """The whole archive, checked against NIST's published size and SHA-256."""
    if _size(part) != ARCHIVE_SIZE:
        raise _NotTheArchive(f"{_size(part):,} bytes, NIST's gzip.zip has {ARCHIVE_SIZE:,}")
    digest = file_sha256(part)
    if digest != ARCHIVE_SHA256:
        raise _NotTheArchive(f"SHA-256 {digest[:16]}…, NIST's gzip.zip has {ARCHIVE_SHA256[:16]}…")


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in chunks (hashlib.file_digest does this from Python 3.11; glyphkit supports 3.10)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
