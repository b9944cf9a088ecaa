"""Where caches live, how keys are made, and writes that never leave half a file.

Layout under the cache root (``--bench-cache-dir``, ``$TVM_BENCH_CACHE``, or
``$XDG_CACHE_HOME/tvm-bench``, default ``~/.cache/tvm-bench``)::

    models/     generated and shape-frozen ONNX files, named by content key
    downloads/  URL sources, named by their sha256
    tuning/     one MetaSchedule work_dir per (model, target, budget, TVM) key
    logs/       worker process logs, kept 7 days
    quarantine/ entries found corrupt, moved here (never deleted) with a note saying why

Every file is written atomically (temp file + rename) and every entry that
several sessions could build at once is built under a file lock, so two
sessions sharing a cache wait for each other instead of mixing their writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CACHE_ENV = "TVM_BENCH_CACHE"


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tvm-bench"


def key_of(*parts: Any) -> str:
    """A stable sha256 over JSON-able parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_aside(path: Path, root: Path, reason: str) -> Path:
    """Move a corrupt file or folder into ``<root>/quarantine`` with a note; return where it went.

    Nothing is deleted: a person can look at what went wrong, and a later
    session never reads it again.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = root / "quarantine" / f"{stamp}-{os.getpid()}-{path.name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{stamp}-{os.getpid()}-{n}-{path.name}")
    os.replace(path, dest)
    atomic_write(dest.with_name(dest.name + ".why.txt"), f"{path}\n{reason}\n")
    return dest


def write_verified(path: Path, data: bytes) -> None:
    """Write a cache file and, beside it, its sha256, so later reads can tell it is intact."""
    atomic_write(path, data)
    atomic_write(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest() + "\n")


def read_verified(path: Path, root: Path, warn: Callable[[str], None]) -> bytes | None:
    """The file's bytes if they still match the recorded sha256; otherwise set it aside and return None."""
    sidecar = path.with_name(path.name + ".sha256")
    try:
        data = path.read_bytes()
        expected = sidecar.read_text().strip()
    except FileNotFoundError:
        return None  # absent, or written before hashes were recorded: the caller rebuilds it
    got = hashlib.sha256(data).hexdigest()
    if got == expected:
        return data
    dest = set_aside(path, root, f"content sha256 {got} does not match the recorded {expected}")
    sidecar.unlink(missing_ok=True)
    warn(f"[cache] {path}: content does not match its recorded sha256 (edited or damaged); "
         f"moved to {dest} and rebuilding")
    return None


@contextmanager
def locked(path: Path, what: str, progress: Callable[[str], None]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a ``.lock`` file); say so if another session holds it.

    The lock is an OS file lock, released by the kernel when its holder dies,
    so a killed session never leaves a stale lock behind.
    """
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress(f"[cache] waiting for another session that is {what} (lock {path})")
        start = time.monotonic()
        lock.acquire()
        progress(f"[cache] lock {path} acquired after {time.monotonic() - start:.0f} s")
    try:
        yield
    finally:
        lock.release()
