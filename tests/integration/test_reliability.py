"""Failure injection end to end: crashing cases, killed sessions, shared caches (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench.history.load import load_history
from tests.helpers import pytest_command, run_pytest

pytestmark = [pytest.mark.slow, pytest.mark.tvm]

FAULTS = """
name: faults
ort: false
models:
  - {name: crash, source: {generator: tiny_cnn, seed: 0}}
  - {name: abort, source: {generator: tiny_cnn, seed: 1}}
  - {name: hang, source: {generator: tiny_cnn, seed: 2}, limits: {measure_s: 5}}
  - {name: stuck, source: {generator: tiny_cnn, seed: 5}, limits: {build_s: 10}}
  - {name: hog, source: {generator: tiny_cnn, seed: 3}}
  - {name: fine, source: {generator: tiny_cnn, seed: 4}}
targets: [{name: cpu, target: "llvm -num-cores=2"}]
budgets: [0]
timing: {rounds: 3, iterations: 3, min_rounds: 3, max_time: 1, min_time: 0.2, slices: 1}
limits: {memory_mb: 2000}
"""

TUNE = """
name: resume
ort: false
models: [{name: tiny, source: {generator: tiny_cnn}}]
targets: [{name: cpu, target: "llvm -num-cores=2"}]
budgets: [{name: b32, trials: 32}]
timing: {rounds: 3, iterations: 3, min_rounds: 3, max_time: 1, min_time: 0.2, slices: 1}
tuning: {trials_per_iter: 4, population: 16}
"""


def outcomes(path: Path) -> dict[str, dict[str, Any]]:
    return {o["case"]: o for o in json.loads(path.read_text())["tvm_bench"]["outcomes"]}


def test_crash_abort_hang_and_memory_blowup_fail_only_their_case(tmp_path: Path) -> None:
    """Each injected fault becomes that case's error (signal or limit, stage, log excerpt);
    the healthy case is measured and the JSON is written."""
    (tmp_path / "faults.yaml").write_text(FAULTS)
    env = {**os.environ, "TVM_BENCH_FAULT": "crash-*:segv:measure,abort-*:abort:build,hang-*:hang:measure,"
                                            "hog-*:oom:build,stuck-*:hang:import"}
    proc = run_pytest("faults.yaml", "--benchmark-json", "out.json", "--bench-cache-dir", "cache", cwd=tmp_path,
                      env=env)
    assert proc.returncode == 1, proc.stdout[-3000:]
    got = outcomes(tmp_path / "out.json")
    assert got["fine-cpu-untuned"]["outcome"] == "passed"
    expected = {
        "crash-cpu-untuned": "worker died (SIGSEGV) during measure",
        "abort-cpu-untuned": "worker died (SIGABRT) during build",
        "hang-cpu-untuned": "timed out: measure took longer than limits.measure_s = 5 s during measure",
        "hog-cpu-untuned": "out of memory: the worker reached",
        # the import counts against the build's limit
        "stuck-cpu-untuned": "timed out: build took longer than limits.build_s = 10 s during import",
    }
    for case, text in expected.items():
        message = got[case]["message"]
        assert got[case]["outcome"] == "failed" and message.startswith(f"faults.yaml: {case}: {text}"), message
        assert "(log: " in message and "last lines of the worker log:" in message
    assert "over limits.memory_mb = 2,000 during build" in got["hog-cpu-untuned"]["message"]
    assert "Segfault encountered" in got["crash-cpu-untuned"]["message"]
    assert "[fault hook]" in got["hang-cpu-untuned"]["message"]
    names = [b["name"] for b in json.loads((tmp_path / "out.json").read_text())["benchmarks"]]
    assert names == ["test_case[fine-cpu-untuned]"]
    assert "5 failed, 1 passed" in proc.stdout


def descendants(pid: int) -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    return children


def left_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Processes of a killed session still alive after a grace period (zombies count as gone)."""
    psutil.wait_procs(procs, timeout=15)
    alive = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def record_count(cache: Path) -> int:
    files = list(cache.glob("tuning/*/work.partial/database_tuning_record.json"))
    return sum(1 for line in files[0].read_text().splitlines() if line.strip()) if files else 0


def test_killed_sessions_resume_tuning_from_their_records(tmp_path: Path) -> None:
    """SIGKILL and SIGTERM in the middle of tuning leave no process behind and no unreadable record;
    the next run resumes from the records already measured and finishes the budget."""
    (tmp_path / "tune.yaml").write_text(TUNE)
    cache = tmp_path / "cache"
    cmd = pytest_command("tune.yaml", "--bench-cache-dir", "cache", "--benchmark-json", "out.json", cwd=tmp_path)

    # 1. SIGKILL the pytest process: the worker notices its parent is gone and takes its group down.
    with (tmp_path / "run1.log").open("w") as log, subprocess.Popen(cmd, cwd=tmp_path, stdout=log,
                                                                    stderr=subprocess.STDOUT) as run1:
        wait_for(lambda: record_count(cache) >= 8, "8 tuning records")
        children = descendants(run1.pid)
        run1.send_signal(signal.SIGKILL)
    assert children and not left_running(children)
    first = record_count(cache)
    records = next(cache.glob("tuning/*/work.partial/database_tuning_record.json"))
    with records.open("a") as f:
        f.write('[0, [["SampleCategorical"')  # what a kill in the middle of a write leaves

    # 2. SIGTERM (a cancelled CI job): the session ends like Ctrl-C and still writes its JSON.
    with (tmp_path / "run2.log").open("w") as log, subprocess.Popen(cmd, cwd=tmp_path, stdout=log,
                                                                    stderr=subprocess.STDOUT) as run2:
        wait_for(lambda: record_count(cache) >= first + 8, "8 more tuning records")
        children = descendants(run2.pid)
        run2.send_signal(signal.SIGTERM)
        assert run2.wait(timeout=60) == pytest.ExitCode.INTERRUPTED
    assert children and not left_running(children)
    log2 = (tmp_path / "run2.log").read_text()
    assert f"resuming an interrupted tuning: {first} records already measured" in log2
    assert "kept the" in log2 and "good records" in log2
    assert outcomes(tmp_path / "out.json")["tiny-cpu-untuned"]["outcome"] == "passed"
    assert list((cache / "quarantine").glob("*database_tuning_record.json"))
    second = record_count(cache)

    # 3. A clean run finishes the budget from where the last one stopped.
    proc = run_pytest("tune.yaml", "--bench-cache-dir", "cache", "--benchmark-json", "out.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"resuming an interrupted tuning: {second} records already measured" in proc.stdout
    meta = json.loads(next(cache.glob("tuning/*/meta.json")).read_text())
    assert meta["resumed_from_records"] == second and meta["trials"] >= 32
    tuned = {b["name"]: b for b in json.loads((tmp_path / "out.json").read_text())["benchmarks"]}
    assert tuned["test_case[tiny-cpu-b32-tuned]"]["extra_info"]["tuning_resumed_records"] == second


def test_warm_start_continues_a_smaller_budget_and_counts_its_trials(tmp_path: Path) -> None:
    """With tuning.warm_start, b24 starts from b8's database: its records come first, its trials and
    seconds are counted, and only the rest is measured in this run."""
    suite = TUNE.replace("budgets: [{name: b32, trials: 32}]",
                         "budgets: [{name: b8, trials: 8}, {name: b24, trials: 24}]")
    (tmp_path / "tune.yaml").write_text(suite.replace("tuning: {trials_per_iter: 4,",
                                                      "tuning: {trials_per_iter: 4, warm_start: true,"))
    proc = run_pytest("tune.yaml", "-k", "b8 or b24", "--bench-cache-dir", "cache", "--benchmark-json", "out.json",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    metas = {m["budget"]["name"]: m for m in (json.loads(p.read_text())
                                              for p in (tmp_path / "cache").glob("tuning/*/meta.json"))}
    small, big = metas["b8"], metas["b24"]
    assert small["warm_from"] is None and small["family"] == big["family"] and small["key"] != big["key"]
    assert big["warm_from"]["budget"] == "b8" and big["warm_from"]["trials"] == small["trials"]
    assert big["warm_from"]["tuning_s"] == small["tuning_s"] and big["tuning_s"] > small["tuning_s"]
    assert big["trials"] >= 24 and big["resumed_from_records"] == 0
    # the search's cost model waited passively (metaschedule.quiet_cost_model), unless this shell chose
    policy = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    assert small["cost_model_env"] == big["cost_model_env"] == policy
    folder = {m["budget"]["name"]: p.parent for p in (tmp_path / "cache").glob("tuning/*/meta.json")
              for m in [json.loads(p.read_text())]}
    before = (folder["b8"] / "work" / "database_tuning_record.json").read_text()
    assert (folder["b24"] / "work" / "database_tuning_record.json").read_text().startswith(before)
    assert f"warm start from {folder['b8']}: {small['trials']} trials" in proc.stdout
    info = {b["name"]: b["extra_info"] for b in json.loads((tmp_path / "out.json").read_text())["benchmarks"]}
    assert info["test_case[tiny-cpu-b24-tuned]"]["tuning_warm_from"]["trials"] == small["trials"]
    assert info["test_case[tiny-cpu-b8-tuned]"]["tuning_warm_from"] is None


def test_two_sessions_share_one_cache_and_results_folder(tmp_path: Path) -> None:
    """Two sessions started together tune once (one waits for the other's lock) and both write valid results."""
    (tmp_path / "tune.yaml").write_text(TUNE.replace("b32, trials: 32", "b16, trials: 16"))
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = []
    for name, log in zip("ab", logs, strict=True):
        cmd = pytest_command("tune.yaml", "--bench-cache-dir", "cache", "--benchmark-json", f"results/{name}.json",
                             cwd=tmp_path)
        with log.open("w") as out:
            procs.append(subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))
    codes = [p.wait(timeout=900) for p in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], texts
    assert sum(" in this run, " in t for t in texts) == 1  # tuned once ...
    assert sum("reusing" in t for t in texts) == 1  # ... and reused by the other session
    assert len(list((tmp_path / "cache" / "tuning").glob("*/meta.json"))) == 1
    assert not (tmp_path / "cache" / "quarantine").exists()
    history = load_history([tmp_path / "results"])
    assert history.problems == [] and history.runs["run_id"].nunique() == 2


def test_in_process_mode_measures_the_same_way(tmp_path: Path) -> None:
    """--bench-isolation=none (for debuggers) runs the same cases in pytest's own process."""
    (tmp_path / "faults.yaml").write_text(FAULTS)
    proc = run_pytest("faults.yaml", "-k", "fine", "--bench-isolation=none", "--benchmark-json", "out.json",
                      "--bench-cache-dir", "cache", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    bench = json.loads((tmp_path / "out.json").read_text())["benchmarks"][0]
    assert bench["name"] == "test_case[fine-cpu-untuned]" and bench["stats"]["rounds"] == 3
    assert not (tmp_path / "cache" / "logs").exists()  # no worker was started
