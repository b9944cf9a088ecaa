"""Cache locations, keys and atomic writes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cache import atomic_write, cache_root, key_of, locked, read_verified, set_aside, write_verified


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--bench-cache-dir beats $TVM_BENCH_CACHE beats $XDG_CACHE_HOME."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TVM_BENCH_CACHE", raising=False)
    assert cache_root() == tmp_path / "xdg" / "tvm-bench"
    monkeypatch.setenv("TVM_BENCH_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "opt") == tmp_path / "opt"


def test_keys_are_stable_and_order_insensitive_for_dicts() -> None:
    """The same parts give the same key; dict key order does not matter; any change does."""
    assert key_of("m", {"a": 1, "b": 2}) == key_of("m", {"b": 2, "a": 1})
    assert key_of("m", {"a": 1}) != key_of("m", {"a": 2})
    assert len(key_of("x")) == 64


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    """A write replaces the file whole and leaves no temporary behind."""
    target = tmp_path / "d" / "f.json"
    atomic_write(target, "one")
    atomic_write(target, b"two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_set_aside_moves_with_a_note(tmp_path: Path) -> None:
    """A corrupt entry is moved into quarantine with the reason beside it; nothing is deleted."""
    entry = tmp_path / "tuning" / "x"
    entry.mkdir(parents=True)
    (entry / "db.json").write_text("half")
    dest = set_aside(entry, tmp_path, "records truncated")
    assert not entry.exists() and (dest / "db.json").read_text() == "half"
    assert dest.parent == tmp_path / "quarantine"
    assert dest.with_name(dest.name + ".why.txt").read_text() == f"{entry}\nrecords truncated\n"
    again = tmp_path / "tuning" / "x"
    again.mkdir()
    assert set_aside(again, tmp_path, "again") != dest  # same name twice never overwrites


def test_verified_read_detects_edits(tmp_path: Path) -> None:
    """A cache file edited after it was written is set aside and reported; an intact one reads back."""
    path = tmp_path / "models" / "m.onnx"
    write_verified(path, b"model bytes")
    warnings: list[str] = []
    assert read_verified(path, tmp_path, warnings.append) == b"model bytes" and warnings == []
    path.write_bytes(b"model bytez")
    assert read_verified(path, tmp_path, warnings.append) is None
    assert not path.exists() and "does not match its recorded sha256" in warnings[0]
    assert [p.read_bytes() for p in (tmp_path / "quarantine").glob("*m.onnx")] == [b"model bytez"]
    assert read_verified(tmp_path / "models" / "absent.onnx", tmp_path, warnings.append) is None


def lock_holder(lock: Path) -> subprocess.Popen[str]:
    """Another process that takes ``lock``, says 'held', and keeps it until it reads a line (or dies)."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from filelock import FileLock\n"
        f"l = FileLock({str(lock)!r}); l.acquire(); print('held', flush=True); sys.stdin.readline()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_lock_makes_a_second_session_wait(tmp_path: Path) -> None:
    """While another process holds an entry's lock, locked() says so and waits until it is released.

    No timing margin: the holder releases only when told to, after this session has said it is waiting.
    """
    import threading

    lock = tmp_path / "entry.lock"
    messages: list[str] = []
    entered = threading.Event()

    def second_session() -> None:
        with locked(lock, "tuning x", messages.append):
            entered.set()

    with lock_holder(lock) as holder:
        waiter = threading.Thread(target=second_session, daemon=True)
        waiter.start()
        deadline = time.monotonic() + 60
        while not messages and time.monotonic() < deadline:
            time.sleep(0.01)
        assert messages and messages[0].startswith("[cache] waiting for another session that is tuning x")
        assert not entered.is_set(), "entered the lock while another process held it"
        assert holder.stdin is not None
        holder.stdin.write("release\n")
        holder.stdin.flush()
        waiter.join(60)
    assert entered.is_set() and "acquired after" in messages[1]


def test_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    """A session killed with SIGKILL leaves no stale lock behind."""
    lock = tmp_path / "entry.lock"
    with lock_holder(lock) as holder:
        holder.kill()
    messages: list[str] = []
    with locked(lock, "tuning x", messages.append):
        pass
    assert messages == []
