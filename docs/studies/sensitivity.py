"""Where does an item's run-to-run spread come from? Time one build in many fresh processes.

The gate compares each run's minimum of rounds; across runs of an unchanged
build on this VM a tuned item's minimum spreads far more than its rounds do
within a run (docs/method.md#regression-gate). This script builds a suite case once
(tuning cache reused), exports it as a shared library, and times it in
``--processes`` fresh processes per setting, settings interleaved so drifts of
the machine hit them alike. Each process times like a suite item (warm-up, then
rounds of iterations). Per setting it reports the median of the processes'
minima, their spread (SD of the log), the within-process round-to-round
spread, and what combining k processes per run (the minimum of their minima)
would leave of the run-to-run spread.

    .venv/bin/python docs/studies/sensitivity.py suites/smoke.yaml mobilenet_v2-native-b160-tuned \\
        --cache-dir /tmp/smoke-cache --processes 12 \\
        --setting default: --setting nobind:TVM_BIND_THREADS=0

A setting's variables go to the timing process, except two switches of this
script: ``ORT=1`` creates and runs an ONNX Runtime session on the model in the
timing process first (as the harness's worker does for reference outputs), and
``POLL=1`` runs a process that walks the timing process tree's memory every
0.1 s (as the pytest parent watches its worker), ``LONG=1`` times every
block in one long-lived process instead of a fresh one each (slow blocks in
it too mean periods of the machine, not states of a process), and ``PIN=1``
pins the calling thread to the core TVM's bound worker thread does not hold.
The timing layout: ``ROUNDS=N`` (instead of ``--rounds``), ``SLICES=N`` and
``GAP=S`` (the rounds in N groups S seconds apart, like ``timing.slices``
and ``timing.slice_gap``), ``BUSY=1`` (untimed calls through the gaps
instead of sleep).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, sys, threading, time
import numpy as np
import tvm
from tvm import relax
import os
lib_path, inputs_path, rounds, iterations, warmup = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
if os.environ.get("SENS_ORT_MODEL"):  # what the harness's worker does first: ONNX Runtime for reference outputs
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ["TVM_NUM_THREADS"])
    sess = ort.InferenceSession(os.environ["SENS_ORT_MODEL"], opts, providers=["CPUExecutionProvider"])
    feed = dict(zip([i.name for i in sess.get_inputs()], [v for _, v in sorted(np.load(inputs_path).items())]))
    for _ in range(3):
        sess.run(None, feed)
dev = tvm.cpu(0)
vm = relax.VirtualMachine(tvm.runtime.load_module(lib_path), dev)
data = np.load(inputs_path)
args = [tvm.runtime.tensor(data[k], dev) for k in data.files]
main = vm["main"]
if os.environ.get("SENS_PIN_MAIN"):  # the calling thread onto the core TVM's bound worker does not hold
    main(*args)  # the pool exists (and has set its own affinities) after the first call
    mine = str(threading.get_native_id())
    held = set()
    for task in os.listdir("/proc/self/task"):
        if task != mine:
            held |= os.sched_getaffinity(int(task)) if len(os.sched_getaffinity(int(task))) == 1 else set()
    free = sorted(os.sched_getaffinity(0) - held) or sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {free[0]})
rounds = int(os.environ.get("SENS_ROUNDS") or rounds)
slices = max(1, min(int(os.environ.get("SENS_SLICES") or 1), rounds))
gap = float(os.environ.get("SENS_GAP") or 0)
busy = bool(os.environ.get("SENS_BUSY"))
def block():
    for _ in range(warmup * iterations):
        main(*args)
    samples = []
    sizes = [rounds // slices + (i < rounds % slices) for i in range(slices)]
    for index, size in enumerate(sizes):
        if index and busy:  # keep the cores at work through the gap (untimed calls), not asleep
            until = time.perf_counter() + gap
            while time.perf_counter() < until:
                main(*args)
        elif index:
            time.sleep(gap)
            main(*args)
        for _ in range(size):
            start = time.perf_counter()
            for _ in range(iterations):
                main(*args)
            samples.append((time.perf_counter() - start) / iterations)
    print(json.dumps({"samples": samples, "threads": tvm.runtime.num_threads()}), flush=True)
if os.environ.get("SENS_SERVE"):  # one long-lived process: a block per line read
    for _line in sys.stdin:
        block()
else:
    block()
"""


POLLER = r"""
import sys, time, psutil
me = psutil.Process(int(sys.argv[1]))
while True:
    time.sleep(0.1)
    sum(p.memory_info().rss for p in [me, *me.children(recursive=True)])
"""


def _build(suite_path: Path, case_id: str, cache_dir: Path, out: Path) -> tuple[Path, Path, int, Path]:
    from bench.run.session import BenchSession
    from bench.stages import build
    from bench.suite.case import expand
    from bench.suite.schema import load_suite

    cases = {c.id: c for c in expand(load_suite(suite_path))}
    if case_id not in cases:
        raise SystemExit(f"{case_id}: not a case of {suite_path}; cases: {', '.join(cases)}")
    case = cases[case_id]
    session = BenchSession(cache_dir)
    model = session.model(case)
    prepared = session.prepared(case, model)
    if case.variant == "tuned":
        _tuned, compiled = session.tuned_compiled(case, model)
    else:
        compiled = session.untuned_compiled(case, model, prepared)
    lib = build.export_library(compiled, case.target, out / f"{case_id}.so", case.suite.where, case.id)
    inputs = out / "inputs.npz"
    arrays: dict[str, Any] = {f"{i:03d}": v for i, v in enumerate(model.inputs.values())}
    np.savez(inputs, **arrays)
    return lib, inputs, case.target.threads, Path(model.path)


def _setting(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    env = dict(kv.split("=", 1) for kv in rest.split(";") if kv)
    return name, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path)
    parser.add_argument("case")
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=12, help="fresh processes per setting (default 12)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per process (sets iterations)")
    parser.add_argument("--setting", action="append", type=_setting, default=[],
                        help="NAME:VAR=VALUE;VAR=VALUE (environment of the timing processes); repeatable")
    parser.add_argument("--json", type=Path, default=None, help="write every process's samples here")
    args = parser.parse_args(argv)
    settings = args.setting or [("default", {})]

    with tempfile.TemporaryDirectory(prefix="tvm-bench-sensitivity-") as tmp:
        lib, inputs, threads, model_path = _build(args.suite, args.case, args.cache_dir, Path(tmp))
        base_env = {**os.environ, "TVM_NUM_THREADS": str(threads)}

        servers: dict[str, subprocess.Popen[str]] = {}

        def child(env: dict[str, str], iterations: int) -> dict[str, list[float]]:
            env = dict(env)
            if env.pop("PIN", None):
                env["SENS_PIN_MAIN"] = "1"
            for knob in ("ROUNDS", "SLICES", "GAP", "BUSY"):  # the timing layout, as the suite's timing keys
                if knob in env:
                    env[f"SENS_{knob}"] = env.pop(knob)
            if env.pop("LONG", None):  # the same process every time: process state vs periods of the machine
                key = json.dumps(sorted(env.items()))
                if key not in servers:
                    servers[key] = subprocess.Popen(
                        [sys.executable, "-c", CHILD, str(lib), str(inputs), str(args.rounds), str(iterations), "1"],
                        env={**base_env, **env, "SENS_SERVE": "1"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        text=True)
                server = servers[key]
                assert server.stdin is not None and server.stdout is not None
                server.stdin.write("go\n")
                server.stdin.flush()
                block: dict[str, list[float]] = json.loads(server.stdout.readline())
                return block
            if env.pop("ORT", None):
                env["SENS_ORT_MODEL"] = str(model_path)
            poller = None
            if env.pop("POLL", None):  # like the pytest parent watching its worker: wake every 0.1 s
                poller = subprocess.Popen([sys.executable, "-c", POLLER, str(os.getpid())])
            try:
                return _run_child(env, iterations)
            finally:
                if poller is not None:
                    poller.kill()
                    poller.wait()

        def _run_child(env: dict[str, str], iterations: int) -> dict[str, list[float]]:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(lib), str(inputs), str(args.rounds),
                                   str(iterations), "1"], env={**base_env, **env}, capture_output=True, text=True,
                                  check=True)
            out: dict[str, list[float]] = json.loads(proc.stdout.strip().splitlines()[-1])
            return out

        probe = float(np.min(child({}, 3)["samples"]))
        iterations = max(1, round(args.seconds / args.rounds / probe))
        print(f"{args.case}: {probe * 1e3:.3f} ms per call, {args.rounds} rounds x {iterations} iterations, "
              f"{threads} TVM threads, {args.processes} processes per setting", flush=True)
        runs: dict[str, list[list[float]]] = {name: [] for name, _ in settings}
        for i in range(args.processes):
            for name, env in settings:
                samples = child(env, iterations)["samples"]
                runs[name].append(samples)
                print(f"  {i + 1:2d} {name:12s} min {min(samples) * 1e3:8.4f} ms  "
                      f"median {np.median(samples) * 1e3:8.4f} ms", flush=True)
        for server in servers.values():
            server.kill()
            server.wait()
    print(f"\n{'setting':12s} {'median of mins':>15s} {'run SD':>8s} {'round CV':>9s} {'worst':>7s} "
          f"{'SD k=2':>7s} {'SD k=3':>7s}")
    rng = np.random.default_rng(0)
    for name, per_process in runs.items():
        mins = np.array([min(s) for s in per_process])
        logs = np.log(mins / np.median(mins))
        round_cv = float(np.median([np.std(s, ddof=1) / np.mean(s) for s in per_process]))

        def combined(k: int, mins: np.ndarray = mins) -> float:
            draws = rng.choice(mins, size=(4000, k), replace=True).min(axis=1)
            return float(np.std(np.log(draws), ddof=1))

        print(f"{name:12s} {np.median(mins) * 1e3:12.4f} ms {np.std(logs, ddof=1):8.1%} {round_cv:9.1%} "
              f"{np.max(logs):+7.1%} {combined(2):7.1%} {combined(3):7.1%}")
    if args.json is not None:
        args.json.write_text(json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
