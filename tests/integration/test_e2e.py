"""End to end: `pytest <suite> --benchmark-json` in a subprocess, asserting on the JSON it writes."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_pytest

REPO = Path(__file__).resolve().parents[2]

TINY = """
name: e2e
models:
  - name: tiny
    source: {generator: tiny_cnn}
targets:
  - {name: cpu, target: "llvm -num-cores=2"}
  - {name: gpu, target: {kind: cuda, arch: sm_80, host: llvm}}
  - {name: cpu1, target: "llvm -num-cores=1"}   # another thread count: another worker
  - {name: cpu9, target: "llvm -num-cores=9"}   # more than this machine has: refused, TVM would use fewer
budgets: [0, {name: b16, trials: 16}]
matrix:
  exclude: [{target: cpu1, budget: b16}, {target: cpu9, budget: b16}]
timing: {rounds: 5, iterations: 5, min_rounds: 3, max_time: 2, min_time: 0.2, slices: 2, slice_gap: 0.5,
         side_by_side: 3}
tuning: {population: 16}   # the search's quality is not the point: a fraction of the default's cost
"""

BROKEN = """
models:
  - name: tiny
    source: {generator: tiny_cnn, colour: red}
targets: [llvm]
"""

pytestmark = [pytest.mark.slow, pytest.mark.tvm]  # one worker makes first_run once (tests/conftest.py)


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in data["benchmarks"]}


@pytest.fixture(scope="session")  # session: made once per xdist worker even when other modules run between
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str], dict]:
    """The e2e suite run once, cold: its tests read what it wrote."""
    work = tmp_path_factory.mktemp("e2e")
    (work / "tiny.yaml").write_text(TINY)
    (work / "broken.yaml").write_text(BROKEN)
    proc = run_pytest("tiny.yaml", "broken.yaml", "--benchmark-json", "out.json", "--bench-cache-dir", "cache",
                      "-rA", cwd=work)
    assert (work / "out.json").is_file(), proc.stdout + proc.stderr
    return work, proc, json.loads((work / "out.json").read_text())


def test_both_variants_measured_with_sane_stats(first_run: tuple[Path, Any, dict]) -> None:
    """The JSON holds untuned, ort and tuned items with consistent statistics."""
    _, _, data = first_run
    items = by_name(data)
    assert set(items) == {"test_case[tiny-cpu-untuned]", "test_case[tiny-cpu-ort]", "test_case[tiny-cpu-b16-tuned]",
                          "test_case[tiny-cpu1-untuned]", "test_case[tiny-cpu1-ort]"}
    for name, item in items.items():
        if "cpu1" in name:
            continue
        st = item["stats"]
        assert 0 < st["min"] <= st["median"] <= st["max"]
        assert st["rounds"] >= 3
        info = item["extra_info"]
        assert info["model"] == "tiny" and info["target"]["kind"] == "llvm" and info["target"]["num-cores"] == 2
        assert info["tvm_version"].startswith("0.27")
        assert info["compile_s"] > 0 and info["timing"]["rounds"] == st["rounds"]
        # the worker tree's memory per stage, sampled; the weights' bytes, exact
        stages = info["memory"]["stages"]
        assert info["memory"]["sampled_every_s"] == 0.25 and {"import", "build", "measure"} <= set(stages), stages
        assert all(0 < s["start_mib"] <= s["peak_mib"] for s in stages.values()) and info["weight_bytes"] > 0
        # the build's plan, exact: the weights held (a tuned build's rewritten to its kernels' layouts, so
        # within a few bytes), and the planned tensors, fewer bytes than each allocated on its own
        plan = info["planned_memory"]
        if info["variant"] == "ort":
            assert plan is None
        else:
            assert 0 < plan["planned_bytes"] < plan["unplanned_bytes"] and plan["dynamic_allocations"] == 0
            assert abs(plan["constant_bytes"] / info["weight_bytes"] - 1) < 0.01, plan
        # fast rounds are timed in the suite's 2 slices, 0.5 s apart
        assert (info["timing"]["slices"], info["timing"]["slice_gap"]) == (2, 0.5)


def test_every_recorded_key_is_declared_in_the_record(first_run: tuple[Path, Any, dict]) -> None:
    """What a real run writes into extra_info is exactly what bench.stages.record.Record declares: one owner."""
    from bench.stages.record import RECORD_SCHEMA, Record

    _, _, data = first_run
    for item in data["benchmarks"]:
        assert set(item["extra_info"]) <= set(Record.__annotations__), item["name"]
        assert item["extra_info"]["bench_schema"] == RECORD_SCHEMA


def test_tuned_build_is_judged_by_its_share_of_flops(first_run: tuple[Path, Any, dict]) -> None:
    """The tuned item records the share of the model's kernel FLOPs in tuned kernels (above the 50% rule);
    the untuned one has none; the ONNX Runtime peer has no kernels."""
    from bench.run.session import MIN_TUNED_FLOP_SHARE

    _, _, data = first_run
    items = by_name(data)
    assert items["test_case[tiny-cpu-b16-tuned]"]["extra_info"]["scheduled_flop_share"] >= MIN_TUNED_FLOP_SHARE
    assert items["test_case[tiny-cpu-untuned]"]["extra_info"]["scheduled_flop_share"] == 0.0
    assert items["test_case[tiny-cpu-ort]"]["extra_info"]["scheduled_flop_share"] is None


def test_tvm_runs_on_the_cores_the_target_names(first_run: tuple[Path, Any, dict]) -> None:
    """Every TVM item ran with the target's num-cores threads, read back in the process that timed it, and
    the tuning runner's measuring processes used them too (TVM's own default here would be 1)."""
    _, _, data = first_run
    items = by_name(data)
    for name, cores in (("tiny-cpu-untuned", 2), ("tiny-cpu-b16-tuned", 2), ("tiny-cpu1-untuned", 1)):
        info = items[f"test_case[{name}]"]["extra_info"]
        assert info["tvm_threads"] == cores == info["target"]["num-cores"], name
        assert info["threads_source"] == "target num-cores"
    assert items["test_case[tiny-cpu-b16-tuned]"]["extra_info"]["tuning_runner_threads"] == [2]
    # tuning.layout auto: NHWC convolutions on a CPU target
    assert items["test_case[tiny-cpu-b16-tuned]"]["extra_info"]["tuning_layout"] == "NHWC"
    assert items["test_case[tiny-cpu1-ort]"]["extra_info"]["ort_threads"] == 1
    assert "tvm_threads" not in items["test_case[tiny-cpu1-ort]"]["extra_info"]


def test_tuned_item_records_tuning_and_speedup(first_run: tuple[Path, Any, dict]) -> None:
    """The tuned item ran trials, applied them to most kernels, and is faster than untuned."""
    _, _, data = first_run
    tuned = by_name(data)["test_case[tiny-cpu-b16-tuned]"]["extra_info"]
    assert tuned["variant"] == "tuned" and tuned["budget"] == "b16" and tuned["budget_trials"] == 16
    assert tuned["tuning_s"] > 0 and tuned["trials"] >= 8 and tuned["tuning_cached"] is False
    tune = tuned["memory"]["stages"]["tune"]  # the builder's and runner's processes count: the tree grows
    assert tune["peak_mib"] > tune["start_mib"], tune
    assert tuned["kernels_scheduled"] * 2 > tuned["kernels"]
    assert tuned["speedup_median"] > 1.0 and tuned["speedup_mean"] > 1.0
    untuned = by_name(data)["test_case[tiny-cpu-untuned]"]["extra_info"]
    assert untuned["kernels_scheduled"] == 0


def test_top5_present_and_matching(first_run: tuple[Path, Any, dict]) -> None:
    """Both variants record a top-5 that agrees with each other and with ONNX Runtime."""
    _, _, data = first_run
    items = by_name(data)
    tuned = items["test_case[tiny-cpu-b16-tuned]"]["extra_info"]
    untuned = items["test_case[tiny-cpu-untuned]"]["extra_info"]
    assert len(tuned["topk"]) == 5
    assert {c["class"] for c in tuned["topk"]} == {c["class"] for c in untuned["topk"]}
    assert {c["class"] for c in tuned["topk"]} == {c["class"] for c in tuned["reference_topk"]}
    assert tuned["check"] == {"untuned": "pass", "onnxruntime": "pass"} and tuned["check_ok"] is True


def test_absent_gpu_skips_and_broken_suite_fails_alone(first_run: tuple[Path, Any, dict]) -> None:
    """The CUDA cases skip with a reason; the broken suite is one failure naming file and key; a target
    with more cores than this machine fails its items with the reason."""
    _, proc, _ = first_run
    assert proc.returncode == 1
    assert "SKIPPED" in proc.stdout and "no cuda device on this machine" in proc.stdout
    assert "tiny-cpu9-untuned: target 'cpu9' needs 9 threads (target num-cores) but this machine lets TVM use" \
        in proc.stdout
    assert "broken.yaml: models[0].source.colour: unknown key" in proc.stdout
    assert "5 passed" in proc.stdout and "3 failed" in proc.stdout


def test_ort_peer_flops_and_peak(first_run: tuple[Path, Any, dict]) -> None:
    """ONNX Runtime is timed as a peer; every item has FLOPs, GFLOP/s and % of the measured peak."""
    _, _, data = first_run
    items = by_name(data)
    ort = items["test_case[tiny-cpu-ort]"]["extra_info"]
    assert ort["runtime"] == "onnxruntime" and ort["ort_threads"] == 2
    assert ort["ort_graph_optimization"] == "ORT_ENABLE_ALL"
    tuned = items["test_case[tiny-cpu-b16-tuned]"]["extra_info"]
    assert {c["class"] for c in ort["topk"]} == {c["class"] for c in tuned["topk"]}
    for item in items.values():
        info = item["extra_info"]
        assert info["flops"] > 7_000_000 and info["flops_unsupported_ops"] == []
        assert info["gflops_per_s"] == pytest.approx(info["flops"] / item["stats"]["median"] / 1e9, rel=1e-2)
        assert 0 < info["pct_of_peak"] == pytest.approx(100 * info["gflops_per_s"] / info["peak_gflops"], rel=1e-2)
        threads = str(info.get("ort_threads") or info["tvm_threads"])  # one limit per thread count and run
        assert info["peak_gflops"] == data["machine_info"]["tvm_bench_peak"][threads]["measured_gflops"]
    assert tuned["tuned_vs_ort_median"] == pytest.approx(
        items["test_case[tiny-cpu-b16-tuned]"]["stats"]["median"] / items["test_case[tiny-cpu-ort]"]["stats"]["median"],
        rel=1e-3)
    # And timed in turn with ONNX Runtime inside the tuned item: the suite's 3 turns, the median per-turn ratio.
    turns = tuned["side_by_side"]
    assert turns["turns"] == 3 and len(turns["tuned_s"]) == len(turns["ort_s"]) == 3
    assert turns["ratios"] == pytest.approx([t / o for t, o in zip(turns["tuned_s"], turns["ort_s"], strict=True)],
                                            rel=1e-3)
    assert tuned["tuned_vs_ort_side_by_side"] == pytest.approx(statistics.median(turns["ratios"]), rel=1e-3)
    assert "side_by_side" not in items["test_case[tiny-cpu-untuned]"]["extra_info"]
    assert tuned["tvm_flops"] > 0 and tuned["flops_disagreement"] is not None
    assert data["machine_info"]["tvm_bench_peak"]["2"]["measured_gflops"] > 0


def test_second_run_reuses_the_tuning_cache(first_run: tuple[Path, Any, dict]) -> None:
    """A second session measures again but does not tune: the database comes from the cache."""
    work, _, data = first_run
    proc = run_pytest("tiny.yaml", "-k", "tiny-cpu-", "--benchmark-json", "again.json",
                      "--bench-cache-dir", "cache", cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:]
    again = by_name(json.loads((work / "again.json").read_text()))["test_case[tiny-cpu-b16-tuned]"]["extra_info"]
    first = by_name(data)["test_case[tiny-cpu-b16-tuned]"]["extra_info"]
    assert again["tuning_cached"] is True
    assert again["tuning_key"] == first["tuning_key"] and again["trials"] == first["trials"]
    assert "reusing" in proc.stdout
    assert again["check_ok"] is True


def test_outcomes_and_samples_on_record(first_run: tuple[Path, Any, dict]) -> None:
    """The JSON lists every item's outcome (skips and suite errors too) and per-round samples."""
    _, _, data = first_run
    outcomes = {o["case"]: o for o in data["tvm_bench"]["outcomes"]}
    assert outcomes["tiny-cpu-b16-tuned"]["outcome"] == "passed"
    assert outcomes["tiny-cpu-ort"]["outcome"] == "passed"
    assert outcomes["tiny-gpu-untuned"]["outcome"] == "skipped"
    assert "no cuda device" in outcomes["tiny-gpu-untuned"]["message"]
    assert outcomes["suite"]["outcome"] == "failed" and "unknown key" in outcomes["suite"]["message"]
    for bench in data["benchmarks"]:
        samples = bench["extra_info"]["samples_s"]
        assert len(samples) == bench["stats"]["rounds"]
        assert min(samples) == pytest.approx(bench["stats"]["min"])


def test_gate_confirm_remeasures_through_pytest(first_run: tuple[Path, Any, dict]) -> None:
    """`gate --confirm 1` re-runs the flagged node ids with pytest; the re-measurement is stamped as a
    confirmation, kept out of history, and a slowdown that persists still fails."""
    work, _, data = first_run
    fast = json.loads(json.dumps(data))
    fast["datetime"] = "2026-01-01T00:00:00"
    # a baseline 100x faster than this machine can be: every case "regressed", even when the other xdist
    # worker's load spread this run's samples 8x (a 4x baseline then left the interval across zero)
    for bench in fast["benchmarks"]:
        bench["extra_info"]["samples_s"] = [x * 0.01 for x in bench["extra_info"]["samples_s"]]
        for key in ("min", "max", "mean", "median"):
            bench["stats"][key] *= 0.01
    (work / "fast.json").write_text(json.dumps(fast))
    confirm_args = f"-p bench.plugin -c {REPO / 'pyproject.toml'} --rootdir . --bench-cache-dir cache"
    proc = subprocess.run([sys.executable, "-m", "bench", "gate", "--current", "out.json", "--baseline", "fast.json",
                           "--confirm", "1", "--confirm-args", confirm_args, "--json", "verdict.json"],
                          cwd=work, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "re-measuring 3 case(s), attempt 1" in proc.stderr
    verdict = json.loads((work / "verdict.json").read_text())
    statuses = {c["case"]: (c["status"], c["reason"]) for c in verdict["cases"]}
    assert statuses["tiny-cpu-untuned"][0] == "regression"
    assert "confirmed by 1 re-measurements" in statuses["tiny-cpu-untuned"][1]
    again = json.loads((work / "out.confirm-1.json").read_text())
    assert again["tvm_bench"]["confirms"].endswith("-out")
    assert {b["extra_info"]["case"] for b in again["benchmarks"]} == {"tiny-cpu-untuned", "tiny-cpu-b16-tuned",
                                                                       "tiny-cpu1-untuned"}
    from bench.history.load import load_history

    assert "out.confirm-1.json" not in set(load_history([work]).runs["file"].map(lambda f: Path(f).name))


def test_installed_plugin_runs_suites_in_any_folder(tmp_path: Path) -> None:
    """After `pip install`, `pytest suite.yaml` and `pytest suites/` work in a folder outside this checkout,
    with no conftest, no -p and no config file: the plugin comes from the pytest11 entry point."""
    import os

    project = tmp_path / "their-repo"
    (project / "suites").mkdir(parents=True)
    (project / "suites" / "tiny.yaml").write_text(
        "models:\n  - {name: tiny, source: {generator: tiny_cnn}}\ntargets: ['llvm -num-cores=2']\n"
        "budgets: [0]\nort: false\n"
        "timing: {rounds: 3, iterations: 2, min_rounds: 3, min_time: 0, max_time: 1, slices: 1}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    explicit = subprocess.run([sys.executable, "-m", "pytest", "suites/tiny.yaml", "-p", "no:cacheprovider",
                               "--benchmark-json", "out.json", "--bench-cache-dir", str(tmp_path / "cache")],
                              cwd=project, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                              env=env)
    assert explicit.returncode == 0, explicit.stdout[-3000:]
    assert "1 passed" in explicit.stdout and not (project / "conftest.py").exists()
    data = json.loads((project / "out.json").read_text())
    assert [b["extra_info"]["case"] for b in data["benchmarks"]] == ["tiny-llvm-untuned"]
    folder = subprocess.run([sys.executable, "-m", "pytest", "suites/", "--collect-only", "-q",
                             "-p", "no:cacheprovider"], cwd=project, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL, env=env)
    assert folder.returncode == 0 and "suites/tiny.yaml::test_case[tiny-llvm-untuned]" in folder.stdout


def test_bench_gate_never_judges_a_run_against_itself(tmp_path: Path) -> None:
    """With --benchmark-json inside the --bench-gate history, the file pytest-benchmark has just written is
    this run, not its baseline: alone in the history, every case is new. A window of 0 runs is refused."""
    (tmp_path / "tiny.yaml").write_text(
        "models:\n  - {name: tiny, source: {generator: tiny_cnn}}\ntargets: ['llvm -num-cores=2']\n"
        "budgets: [0]\nort: false\n"
        "timing: {rounds: 3, iterations: 2, min_rounds: 3, min_time: 0, max_time: 1, slices: 1}\n")
    proc = run_pytest("tiny.yaml", "--benchmark-json", "hist/x.json", "--bench-gate", "hist",
                      "--bench-cache-dir", "cache", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "hist" / "x.json").is_file()
    assert "tiny-llvm-untuned" in proc.stdout and "no baseline for this case on this machine" in proc.stdout
    proc = run_pytest("tiny.yaml", "--bench-gate", "hist", "--bench-gate-window", "0", cwd=tmp_path)
    assert proc.returncode == 4 and "expected a whole number, 1 or more, got '0'" in proc.stderr


def test_real_streaming_model_with_a_scalar_int64_input(tmp_path: Path) -> None:
    """The shipped audio suite: Silero VAD, whose sample rate is a scalar int64 (16000) and whose recurrent
    state is an input, runs untuned, tuned and on ONNX Runtime, and every output is checked. Only its timing and
    search are the test's own (fewer, shorter slices and turns; a population of 16): what is tested is the model,
    not the timing plan or the search's quality."""
    import yaml

    suite = yaml.safe_load((REPO / "suites" / "audio.yaml").read_text())
    suite["models"][0]["source"]["path"] = str(REPO / "suites" / suite["models"][0]["source"]["path"])
    suite["timing"] = {**suite["timing"], "min_time": 0.2, "slices": 1, "side_by_side": 2}
    suite["tuning"] = {**suite.get("tuning", {}), "population": 16}
    (tmp_path / "audio.yaml").write_text(yaml.safe_dump(suite))
    proc = run_pytest("audio.yaml", "--benchmark-json", "out.json", "--bench-cache-dir", "cache", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    items = by_name(json.loads((tmp_path / "out.json").read_text()))
    assert set(items) == {"test_case[silero_vad-native-untuned]", "test_case[silero_vad-native-ort]",
                          "test_case[silero_vad-native-b64-tuned]"}
    for item in items.values():
        info = item["extra_info"]
        assert info["input_shapes"] == {"input": [1, 512], "sr": [], "state": [2, 1, 128]}
        assert info["output"] == ["output", "stateN"]
        assert info["check_ok"] is True
    tuned = items["test_case[silero_vad-native-b64-tuned]"]["extra_info"]
    assert tuned["check"] == {"untuned": "pass", "onnxruntime": "pass"}
    assert tuned["kernels_scheduled"] * 2 > tuned["kernels"]
