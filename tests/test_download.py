"""The EMNIST download, end to end against a local HTTP server (127.0.0.1, a thread of this test) serving a small
NIST-format gzip.zip built here: a good transfer, a cut one (resumed afterwards), and answers that are not the
archive. Every bad case is one DataError and leaves no gzip.zip in place."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import re
import socket
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from glyphkit import cli, download
from glyphkit.data import DataError, load_split

SPLIT = "digits"  # an official split: only those are downloaded
COUNTS = {"train": 30, "test": 10}


def idx_gz(array: np.ndarray) -> bytes:
    """IDX written by hand (magic 0x0000080N, big-endian dims, uint8 data), gzipped."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def nist_archive() -> tuple[bytes, dict[str, np.ndarray]]:
    """A gzip.zip laid out as NIST's (gzip/emnist-digits-...), and the upright images and labels inside it."""
    rng = np.random.default_rng(0)
    arrays, members = {}, {}
    for part, n in COUNTS.items():
        upright = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        arrays[part] = upright, labels
        members[f"gzip/emnist-{SPLIT}-{part}-images-idx3-ubyte.gz"] = idx_gz(upright.transpose(0, 2, 1))
        members[f"gzip/emnist-{SPLIT}-{part}-labels-idx1-ubyte.gz"] = idx_gz(labels)
    members[f"gzip/emnist-{SPLIT}-mapping.txt"] = "".join(f"{i} {48 + i}\r\n" for i in range(10)).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue(), arrays


ARCHIVE, ARRAYS = nist_archive()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves the archive as the server's `mode` says, and notes every request's Range header."""

    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        body, mode = server.body, server.mode
        start = int(re.match(r"bytes=(\d+)-", self.headers.get("Range") or "bytes=0-").group(1))
        if mode == "missing":
            self.send_error(404)
        elif mode == "good" and start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self._send(body[start:], len(body) - start)
        elif mode == "cut":  # announces the whole archive, sends 40% of it, closes the connection
            self.send_response(200)
            self._send(body[: len(body) * 2 // 5], len(body))
        else:  # "good" from the start, "no-range" (ignores Range), or a wrong body
            self.send_response(200)
            self._send(body, len(body))

    def _send(self, data: bytes, announced: int) -> None:
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    """A local server of ARCHIVE; glyphkit's cache, URL and expected size and SHA-256 point at it."""
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    httpd.mode, httpd.body, httpd.ranges = "good", ARCHIVE, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GLYPHKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("GLYPHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(download.URL_ENV, f"http://127.0.0.1:{httpd.server_port}/mirror/gzip.zip")
    monkeypatch.setattr(download, "ARCHIVE_SIZE", len(ARCHIVE))
    monkeypatch.setattr(download, "ARCHIVE_SHA256", hashlib.sha256(ARCHIVE).hexdigest())
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def assert_loads_the_archive(split: str = SPLIT) -> None:
    data = load_split(split, val_split=0.2, seed=0)
    upright, labels = ARRAYS["test"]
    assert torch.equal(data.test_images, torch.from_numpy(upright))
    assert torch.equal(data.test_labels, torch.from_numpy(labels).long())
    assert data.classes == list("0123456789") and data.sizes()["train"] + data.sizes()["val"] == COUNTS["train"]


def test_the_archive_comes_from_the_mirror_and_loads(server, tmp_path):
    assert_loads_the_archive()
    assert (cache(tmp_path) / "gzip.zip").read_bytes() == ARCHIVE
    assert sorted(p.name for p in cache(tmp_path).iterdir()) == ["gzip.zip"]
    assert server.ranges == [None]  # one plain request
    load_split(SPLIT)  # found in the cache now: no second download
    assert server.ranges == [None]


@pytest.mark.parametrize("then", ["good", "no-range"])
def test_a_cut_download_is_one_error_then_resumes_or_restarts(server, tmp_path, then):
    server.mode = "cut"
    with pytest.raises(DataError) as err:
        load_split(SPLIT)
    message = str(err.value)
    kept = len(ARCHIVE) * 2 // 5
    assert server.ranges == [None, f"bytes={kept}-"]  # tried again from the kept bytes; that got no further
    assert "\n" not in message and server_url(server) in message
    assert f"closed after {kept:,} of {len(ARCHIVE):,} bytes" in message
    assert str(cache(tmp_path) / "gzip.zip") in message and "GLYPHKIT_EMNIST_URL" in message
    assert not (cache(tmp_path) / "gzip.zip").exists()
    assert (cache(tmp_path) / "gzip.zip.part").stat().st_size == kept
    server.mode = then
    assert_loads_the_archive()
    # resumed from the kept bytes (a server that ignores Range sends everything again)
    assert server.ranges == [None, f"bytes={kept}-", f"bytes={kept}-"]
    assert sorted(p.name for p in cache(tmp_path).iterdir()) == ["gzip.zip"]


def server_url(server) -> str:
    return f"http://127.0.0.1:{server.server_port}/mirror/gzip.zip"


HTML = b"<html><body>This page has moved</body></html>"
WRONG = {
    "same size, other bytes": (bytes(reversed(ARCHIVE)), "SHA-256"),
    "an HTML page": (HTML, f"announces {len(HTML)} bytes"),
}


@pytest.mark.parametrize("case", WRONG)
def test_an_answer_that_is_not_the_archive_is_refused_and_deleted(server, tmp_path, case):
    server.mode, (server.body, phrase) = "wrong", WRONG[case]
    with pytest.raises(DataError) as err:
        load_split(SPLIT)
    message = str(err.value)
    assert "\n" not in message and phrase in message and server_url(server) in message
    assert "did not send NIST's gzip.zip" in message and str(cache(tmp_path) / "gzip.zip") in message
    assert list(cache(tmp_path).iterdir()) == []  # no gzip.zip, no .part


def test_a_missing_file_on_the_mirror_names_url_and_where_to_put_the_archive(server, tmp_path, capsys):
    server.mode = "missing"
    code = cli.main(["train", "--split", SPLIT, "--output-dir", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "HTTP 404" in err and server_url(server) in err and str(cache(tmp_path) / "gzip.zip") in err
    assert not (cache(tmp_path) / "gzip.zip").exists()


def test_nothing_listening_is_one_error(server, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(download.URL_ENV, f"http://127.0.0.1:{port}/gzip.zip")
    with pytest.raises(DataError, match=f"could not download http://127.0.0.1:{port}/gzip.zip") as err:
        load_split(SPLIT)
    assert "refused" in str(err.value) and not (cache(tmp_path) / "gzip.zip").exists()
