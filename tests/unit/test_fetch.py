"""URL sources: downloaded once from a local HTTP server, verified by sha256, then cached."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.errors import ModelError
from bench.stages.fetch import fetch

PAYLOAD = b"pretend this is an onnx model" * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server serving PAYLOAD at /model.onnx; yields base URL and request log."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if self.path not in ("/model.onnx", "/unsized.onnx"):
                self.send_error(404)
                return
            self.send_response(200)
            if self.path == "/model.onnx":
                self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def test_download_verified_and_cached(server: tuple[str, list[str]], tmp_path: Path) -> None:
    """The first call downloads; the second is served from the cache without a request."""
    base, hits = server
    path = fetch(f"{base}/model.onnx", SHA, tmp_path, 10**6, "s.yaml", "models[0].source.url")
    assert path.read_bytes() == PAYLOAD and path.name == SHA
    again = fetch(f"{base}/model.onnx", SHA, tmp_path, 10**6, "s.yaml", "models[0].source.url")
    assert again == path and hits == ["/model.onnx"]


def test_wrong_sha256_rejected_and_not_cached(server: tuple[str, list[str]], tmp_path: Path) -> None:
    """A hash mismatch is an error naming both hashes, and leaves nothing in the cache."""
    base, _ = server
    wrong = "0" * 64
    with pytest.raises(ModelError) as info:
        fetch(f"{base}/model.onnx", wrong, tmp_path, 10**6, "s.yaml", "models[0].source.url")
    assert str(info.value).startswith("s.yaml: models[0].source.url: sha256 mismatch")
    assert SHA in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_size_limit(server: tuple[str, list[str]], tmp_path: Path) -> None:
    """A download larger than max_bytes stops with an error."""
    base, _ = server
    with pytest.raises(ModelError, match="is 2,900 bytes, over max_bytes=100; nothing downloaded"):
        fetch(f"{base}/model.onnx", SHA, tmp_path, 100, "s.yaml", "models[0].source.url")


def test_size_limit_without_content_length(server: tuple[str, list[str]], tmp_path: Path) -> None:
    """A server that does not declare the size is cut off once the stream passes max_bytes."""
    base, _ = server
    with pytest.raises(ModelError, match="exceeds max_bytes=100"):
        fetch(f"{base}/unsized.onnx", SHA, tmp_path, 100, "s.yaml", "models[0].source.url")
    assert not any(tmp_path.iterdir())


def test_http_error_is_one_line(server: tuple[str, list[str]], tmp_path: Path) -> None:
    """A 404 is reported with the URL, not a traceback."""
    base, _ = server
    with pytest.raises(ModelError, match=r"cannot download .*/missing\.onnx: Not Found"):
        fetch(f"{base}/missing.onnx", SHA, tmp_path, 10**6, "s.yaml", "models[0].source.url")


def test_corrupted_cache_entry_is_fetched_again(server: tuple[str, list[str]], tmp_path: Path) -> None:
    """A cached file whose content no longer matches its hash is set aside (not deleted) and fetched again."""
    base, hits = server
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / SHA).write_bytes(b"tampered")
    warnings: list[str] = []
    path = fetch(f"{base}/model.onnx", SHA, downloads, 10**6, "s.yaml", "k", warn=warnings.append)
    assert path.read_bytes() == PAYLOAD and hits == ["/model.onnx"]
    kept = [p for p in (tmp_path / "quarantine").iterdir() if p.name.endswith(SHA)]
    assert kept and kept[0].read_bytes() == b"tampered"
    assert "no longer matches its sha256; moved to" in warnings[0] and str(kept[0]) in warnings[0]
