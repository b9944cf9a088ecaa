"""Download a model once, verify its sha256, keep it in the cache by that hash."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.cache import file_sha256, set_aside
from bench.errors import ModelError


def fetch(url: str, sha256: str, dest_dir: Path, max_bytes: int, where: str, key: str,
          timeout: float = 60.0, warn: Callable[[str], None] = print) -> Path:
    """Return the cached file for ``sha256``, downloading it from ``url`` if absent.

    The download streams into a temp file and is renamed into place only after
    its size and hash check out, so the cache never holds an unverified file.
    """
    dest = dest_dir / sha256
    if dest.is_file():
        got = file_sha256(dest)
        if got == sha256:
            return dest
        # Content changed on disk: fetch again rather than trust it, and keep the odd file for a look.
        moved = set_aside(dest, dest_dir.parent, f"cached download has sha256 {got}, expected {sha256}")
        warn(f"[cache] {dest}: content no longer matches its sha256; moved to {moved}, downloading again")
    if not url.startswith(("http://", "https://")):
        raise ModelError(f"url must be http(s) (got {url!r})", where, key)
    dest_dir.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".download.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ModelError(f"{url} is {int(declared):,} bytes, over max_bytes={max_bytes:,}; "
                                 "nothing downloaded", where, key)
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise ModelError(f"download from {url} exceeds max_bytes={max_bytes}", where, key)
                h.update(chunk)
                out.write(chunk)
        got = h.hexdigest()
        if got != sha256:
            raise ModelError(f"sha256 mismatch for {url}: expected {sha256}, got {got}", where, key)
        os.replace(tmp, dest)
    except urllib.error.URLError as err:
        raise ModelError(f"cannot download {url}: {getattr(err, 'reason', err)}", where, key) from None
    except OSError as err:
        raise ModelError(f"cannot download {url}: {err}", where, key) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest
