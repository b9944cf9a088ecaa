"""Samples timed in the worker reach pytest-benchmark unchanged (pinned to the installed version)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run.worker import _tail, inject_fault

REPO = Path(__file__).resolve().parents[2]
SAMPLES = [0.0031, 0.0012, 0.0020, 0.0101, 0.0024]

TEST = f"""
from bench.plugin.testcase import record_samples

def test_replay(benchmark):
    stats = record_samples(benchmark, {SAMPLES!r}, 5)
    assert stats["rounds"] == 5 and abs(stats["median"] - 0.0024) < 1e-12
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_replay.py").write_text(TEST)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_replay.py",
                           "--rootdir", str(tmp_path), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_replayed_samples_are_the_recorded_statistics(tmp_path: Path) -> None:
    """The JSON's per-round data, iterations and stats are exactly the worker's samples."""
    proc = run(tmp_path, "--benchmark-json", "out.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bench = json.loads((tmp_path / "out.json").read_text())["benchmarks"][0]
    assert bench["stats"]["data"] == pytest.approx(SAMPLES, rel=1e-12)
    assert bench["stats"]["iterations"] == 5 and bench["stats"]["rounds"] == 5
    assert bench["stats"]["median"] == pytest.approx(0.0024, rel=1e-12)
    assert bench["stats"]["max"] == pytest.approx(0.0101, rel=1e-12)
    assert bench["options"]["timer"] == "perf_counter"


def test_disabled_benchmarks_still_get_statistics(tmp_path: Path) -> None:
    """--benchmark-disable skips pytest-benchmark's bookkeeping but the harness keeps its numbers."""
    proc = run(tmp_path, "--benchmark-disable")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_log_excerpt_starts_at_the_crash(tmp_path: Path) -> None:
    """The excerpt shown for a dead worker starts at the crash report, not in a long native stack."""
    log = tmp_path / "w.log"
    log.write_text("tuning...\n" * 50 + "!!!!!!! Segfault encountered !!!!!!!\n" + "  frame\n" * 40)
    excerpt = _tail(log, 5).splitlines()
    assert excerpt[0] == "  !!!!!!! Segfault encountered !!!!!!!" and len(excerpt) == 5
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    assert _tail(log, 3).splitlines() == ["  line 27", "  line 28", "  line 29"]


def test_fault_hook_matches_case_and_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test hook fires only for the named case and stage, and rejects unknown faults."""
    monkeypatch.setenv("TVM_BENCH_FAULT", "tiny-*-tuned:explode:measure")
    inject_fault("tiny-cpu-untuned", "measure")
    inject_fault("tiny-cpu-b16-tuned", "build")
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        inject_fault("tiny-cpu-b16-tuned", "measure")
