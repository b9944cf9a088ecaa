"""Cache locations, keys and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cache import atomic_write, cache_root, key_of


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
