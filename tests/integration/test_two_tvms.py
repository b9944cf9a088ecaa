"""Two TVMs under test in one session, end to end, without the package index: two "builds" that are the harness's
own TVM reached through folders of their own, and a build outside the supported range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_pytest

pytestmark = [pytest.mark.slow, pytest.mark.tvm]

SUITE = """
name: tvms
models: [{name: tiny, source: {generator: tiny_cnn}}]
targets: [{name: cpu, target: "llvm -num-cores=2"}]
budgets: [0]
timing: {rounds: 3, iterations: 3, min_rounds: 3, max_time: 1, min_time: 0.2, slices: 1, side_by_side: 0}
"""


def build_of_installed_tvm(folder: Path) -> Path:
    """A folder holding the tvm package (a link to the installed one): a build as ``--bench-tvm`` takes it."""
    import tvm

    folder.mkdir()
    (folder / "tvm").symlink_to(Path(tvm.__file__).parent)
    return folder


def test_two_tvms_side_by_side_and_one_out_of_range(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    a, b = build_of_installed_tvm(tmp_path / "a"), build_of_installed_tvm(tmp_path / "b")
    old = tmp_path / "old"
    (old / "tvm").mkdir(parents=True)
    (old / "tvm" / "__init__.py").write_text("__version__ = '0.24.0'\n")
    (old / "tvm" / "libtvm_runtime.so").write_bytes(b"")
    proc = run_pytest("s.yaml", "--benchmark-json", "out.json", "--bench-cache-dir", "cache", "--bench-tvm",
                      f"a={a}", "--bench-tvm", f"b={b}", "--bench-tvm", f"old={old}", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    out = proc.stdout
    # each TVM gets its own worker; the out-of-range build fails its item in one line, naming version and range
    assert "starting a worker with 2 TVM threads for cpu on TVM b" in out
    assert "FAILED s.yaml::test_case[tiny-cpu-tvmold-untuned]" in out
    [message] = [line for line in out.splitlines() if line.startswith("TVM 0.24.0 is outside")]
    assert message.startswith("TVM 0.24.0 is outside the range this harness supports (0.25-0.27): choose a version")
    from tvm import _version

    commit = str(_version.commit_id).removeprefix("g")[:9]
    items = {b["extra_info"]["case"]: b["extra_info"] for b in json.loads((tmp_path / "out.json").read_text())[
        "benchmarks"]}
    assert sorted(items) == ["tiny-cpu-ort", "tiny-cpu-tvma-untuned", "tiny-cpu-tvmb-untuned"]
    for name, folder in (("a", a), ("b", b)):
        tvm = items[f"tiny-cpu-tvm{name}-untuned"]["tvm"]
        assert (tvm["name"], tvm["source"], tvm["path"]) == (name, "path", str(folder.resolve()))
        assert tvm["version"] == items["tiny-cpu-ort"]["tvm_version"] and tvm["llvm"] >= 15
        # no git checkout: the commit TVM's own build info names
        assert tvm["commit"] == commit and items[f"tiny-cpu-tvm{name}-untuned"]["tvm_label"] == f"{name}@{commit}"
    # b's build timed against a's in interleaved pairs, each in a worker of its own TVM: the same TVM (A/A) is
    # within the threshold, with per-pair seconds from both sides
    pairs = items["tiny-cpu-tvmb-untuned"]["vs_tvm"]
    assert pairs["against"] == f"a@{commit}" and pairs["against_case"] == "tiny-cpu-tvma-untuned"
    assert pairs["decision"] == "within" and pairs["pairs"] >= 12 == len(pairs["current_s"][:12])
    assert len(pairs["current_s"]) == len(pairs["reference_s"]) == pairs["pairs"] and pairs["low"] < pairs["high"]
    assert "vs_tvm" not in items["tiny-cpu-tvma-untuned"]
    assert "[paired] tiny-cpu-tvmb-untuned: " in out and "against TVM a" in out
    # the closing table: a row per TVM that ran, each beside the one ONNX Runtime item
    rows = [line.split() for line in out.splitlines() if line.startswith("tiny ")]
    assert [r[2] for r in rows] == [f"a@{commit}", f"b@{commit}"] and rows[0][6] == rows[1][6] != "-"
