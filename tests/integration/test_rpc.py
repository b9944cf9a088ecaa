"""Remote targets through TVM's RPC tracker, on a loopback fleet: a tracker and two rpc_servers."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bench.testing.fleet import fleet, free_port
from tests.helpers import pytest_command, run_pytest

pytestmark = [pytest.mark.slow, pytest.mark.tvm]  # one worker makes fleet_run once (tests/conftest.py)

SUITE = """
name: fleet
models:
  - name: tiny
    source: {{generator: tiny_cnn}}
targets:
  - name: box
    target: {{kind: llvm, num-cores: 2}}
    rpc: {{tracker: "{tracker}", key: box, session_timeout: 120, queue_timeout: {queue}, connect_timeout: 2}}
budgets: [{{name: b{trials}, trials: {trials}}}]
timing: {{rounds: 5, iterations: 5, min_rounds: 3, max_time: 2, min_time: 0.2, slices: 1}}
tuning: {{trials_per_iter: 4, population: 16}}
"""


def by_case(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["extra_info"]["case"]: b for b in data["benchmarks"]}


def outcomes(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["case"]: o for o in data["tvm_bench"]["outcomes"]}


def write_suite(folder: Path, tracker: str, trials: int = 16, queue: float = 60) -> None:
    (folder / "fleet.yaml").write_text(SUITE.format(tracker=tracker, trials=trials, queue=queue))


@pytest.fixture(scope="session")  # session: made once per xdist worker even when other modules run between
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str], dict]:
    """The tiny suite measured and tuned on two loopback devices."""
    work = tmp_path_factory.mktemp("fleet")
    with fleet(work) as f:
        write_suite(work, f.address)
        proc = run_pytest("fleet.yaml", "--benchmark-json", "out.json", "--bench-cache-dir", "cache", "-rA",
                          cwd=work)
    assert (work / "out.json").is_file(), proc.stdout[-4000:] + proc.stderr[-2000:]
    return work, proc, json.loads((work / "out.json").read_text())


def test_untuned_and_tuned_run_on_the_device(fleet_run: tuple[Path, Any, dict]) -> None:
    """Both TVM variants are built here, timed on the device's clock, checked against ONNX Runtime here,
    and record the device; the ort peer skips with its reason."""
    _, proc, data = fleet_run
    items = by_case(data)
    assert set(items) == {"tiny-box-untuned", "tiny-box-b16-tuned"}, proc.stdout[-4000:]
    for info in (b["extra_info"] for b in items.values()):
        assert info["clock"] == "device" and info["tvm_threads"] == 2
        assert info["device"]["rpc_key"] == "box" and info["device"]["exist"] is True
        assert info["device"]["threads"] == 2 and len(info["device_id"]) == 12
        assert info["check_ok"] is True and info["reference_topk"] and info["rpc_retried"] is None
        assert "peak_gflops" not in info  # the host's peak says nothing about a device
    tuned = items["tiny-box-b16-tuned"]["extra_info"]
    assert tuned["check"] == {"untuned": "pass", "onnxruntime": "pass"}
    assert tuned["tuning_runner_threads"] == [2] and tuned["kernels_scheduled"] * 2 > tuned["kernels"]
    assert "measuring on 2 device(s) with key 'box'" in proc.stdout
    ort = outcomes(data)["tiny-box-ort"]
    assert ort["outcome"] == "skipped" and "ONNX Runtime has no remote form" in ort["message"]


def test_history_treats_the_device_as_its_own_machine(fleet_run: tuple[Path, Any, dict]) -> None:
    """A remote item's trend line belongs to the device pool, not to the host that built it."""
    from bench.history.load import load_history

    work, _, _ = fleet_run
    results = load_history([work / "out.json"]).results
    assert set(results["machine_desc"]) == {"rpc key box (cpu), 2 threads"}
    assert results["machine"].nunique() == 1 and (results["machine"] != results["host_machine"]).all()


def test_no_tracker_fails_fast_with_the_address(tmp_path: Path) -> None:
    """With nothing listening at the tracker address, each item fails in seconds with one line naming the
    target and the address."""
    port = free_port()
    write_suite(tmp_path, f"127.0.0.1:{port}")
    started = time.monotonic()
    proc = run_pytest("fleet.yaml", "--bench-cache-dir", "cache", "-rA", cwd=tmp_path)
    assert proc.returncode == 1 and time.monotonic() - started < 240
    assert "2 failed, 1 skipped" in proc.stdout
    assert (f"fleet.yaml: targets[0].rpc.tracker: target 'box': cannot reach the RPC tracker at 127.0.0.1:{port} "
            "(from targets[0].rpc.tracker)") in proc.stdout


def test_cli_and_environment_override_the_tracker(tmp_path: Path) -> None:
    """--bench-rpc-tracker beats TVM_TRACKER_HOST/PORT, which beat the suite; a malformed one is a usage error."""
    import os

    write_suite(tmp_path, "127.0.0.1:1")
    port = free_port()
    env = {**os.environ, "TVM_TRACKER_HOST": "127.0.0.1", "TVM_TRACKER_PORT": str(port)}
    proc = run_pytest("fleet.yaml", "-k", "untuned", "--benchmark-json", "env.json", "--bench-cache-dir", "c",
                      cwd=tmp_path, env=env)
    assert f"cannot reach the RPC tracker at 127.0.0.1:{port} (from TVM_TRACKER_HOST/TVM_TRACKER_PORT)" in proc.stdout
    other = free_port()
    proc = run_pytest("fleet.yaml", "-k", "untuned", "--bench-rpc-tracker", f"127.0.0.1:{other}",
                      "--bench-cache-dir", "c", cwd=tmp_path, env=env)
    assert f"cannot reach the RPC tracker at 127.0.0.1:{other} (from --bench-rpc-tracker)" in proc.stdout
    proc = run_pytest("fleet.yaml", "--bench-rpc-tracker", "nowhere", cwd=tmp_path)
    assert proc.returncode == 4 and "expected HOST:PORT" in proc.stderr


def test_busy_pool_times_out_and_a_killed_server_costs_one_retry(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No device of the key within queue_timeout is one clear line, and so is a device running fewer TVM
    threads than the target names; a device killed after it was handed out is replaced by another from the
    pool, once, and the item says so."""
    from bench.run.session import BenchSession
    from bench.stages import build
    from bench.suite.case import expand
    from bench.suite.schema import load_suite

    with fleet(tmp_path, servers=1) as f:
        write_suite(tmp_path, f.address, queue=3)
        (tmp_path / "other.yaml").write_text((tmp_path / "fleet.yaml").read_text().replace("key: box", "key: none"))
        session = BenchSession(tmp_path / "cache", progress=print)
        [absent] = [c for c in expand(load_suite(tmp_path / "other.yaml")) if c.variant == "untuned"]
        with pytest.raises(Exception, match=r"no free device with key 'none' at tracker .* within "
                                            r"rpc.queue_timeout = 3 s"):
            session.run(absent)
        f.start_server("narrow", key="narrow", threads=1)  # a device started with fewer threads than named
        f.wait_registered("narrow", 1)
        (tmp_path / "narrow.yaml").write_text((tmp_path / "fleet.yaml").read_text().replace("key: box",
                                                                                          "key: narrow"))
        [narrow] = [c for c in expand(load_suite(tmp_path / "narrow.yaml")) if c.variant == "untuned"]
        with pytest.raises(Exception, match=r"runs TVM with 1 threads and cannot be given more; the target names 2 "
                                            r"\(num-cores\). Start its server with TVM_NUM_THREADS=2"):
            session.run(narrow)
        [case] = [c for c in expand(load_suite(tmp_path / "fleet.yaml")) if c.variant == "untuned"]
        load = build.load_remote
        kills: list[int] = []

        def dies_once(*args: Any) -> Any:
            if not kills:  # the server dies right after the tracker handed it out ...
                kills.append(f.servers["s0"].pid)
                f.kill_server("s0")
                f.start_server("s1")  # ... and another joins the pool
                f.wait_registered("box", 1)
            return load(*args)

        monkeypatch.setattr(build, "load_remote", dies_once)
        measured = session.run(case)
        assert kills and measured.info["rpc_retried"] is not None and measured.info["check_ok"] is True
        assert len(measured.samples) >= 3


def test_tuning_survives_a_server_killed_midway(tmp_path: Path) -> None:
    """One of two devices dies while candidates are being measured: tuning finishes on the other and the
    tuned item passes."""
    with fleet(tmp_path, servers=2) as f:
        write_suite(tmp_path, f.address, trials=48)
        cmd = pytest_command("fleet.yaml", "-k", "tuned", "--benchmark-json", "out.json", "--bench-cache-dir",
                             "cache", cwd=tmp_path)
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            records = list((tmp_path / "cache" / "tuning").glob("*/work.partial/database_tuning_record.json"))
            while not records and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.5)
                records = list((tmp_path / "cache" / "tuning").glob("*/work.partial/database_tuning_record.json"))
            assert records, "tuning never started"
            f.kill_server("s0")
            out, _ = proc.communicate(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, out[-4000:]
    data = json.loads((tmp_path / "out.json").read_text())
    tuned = by_case(data)["tiny-box-b48-tuned"]["extra_info"]
    assert tuned["check_ok"] is True and tuned["trials"] >= 40
