"""Where a command's CPU goes, by kind of process: what the harness's test run spends its two cores on.

The command runs as given while every process on the machine is sampled (psutil, every ``--every`` seconds);
each process's last sample is its CPU time, so a process that lived less than one interval is missed and
one that ended is counted up to its last sample. Kinds follow the command line: bench workers, MetaSchedule's
builder and runner processes (TVM's popen workers), pytest-xdist workers, pytest runs started by tests, RPC
servers. For the test command, from the repository root:

    .venv/bin/python docs/studies/process_cpu.py --top 15 -- .venv/bin/pytest tests/ -n 2 --dist loadgroup

``--stages`` also times the harness's heavy stages in every Python process the command starts (a
``sitecustomize`` on ``PYTHONPATH`` wraps them once their modules have loaded): the MetaSchedule search in the
tuning process (its builder and runner processes are their own kind above), the imports and compiles of
TVM builds, the peak measurement and the timing loops. Each call's wall and process CPU time (all its
threads) goes to a JSON-lines file, summed per stage and per tuned case; a stage called inside another
counts in the outer one.

Write-up: docs/studies/README.md#where-the-test-runs-cpu-goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

#: (kind, a piece of the command line that marks it), first match wins.
KINDS = (
    ("builder and runner (tvm popen_worker)", "tvm.exec.popen_worker"),
    ("bench worker", "bench.run.worker"),
    ("RPC tracker and servers", "tvm.exec.rpc_"),
    ("pytest-xdist worker", "exec(eval(sys.stdin.readline()))"),
    ("pytest run started by a test", "-m pytest"),
    ("chromium", "chromium"),
)


#: What ``--stages`` times: module -> functions.
STAGES = {
    "bench.stages.build": ("prepare", "compile_executable"),
    "bench.stages.tune": ("_search",),
    "bench.stages.peak": ("measure_peak",),
    "bench.stages.measure": ("time_rounds", "side_by_side", "interleaved_blocks", "probe"),
}

#: Installed as sitecustomize.py in the command's processes. It wraps STAGES from the first import statement
#: that finds their module loaded: an import hook on sys.meta_path would be bypassed in pytest processes,
#: whose assertion rewriter loads the plugin's package (``bench``) itself.
HOOK = """
import builtins, functools, json, os, sys, threading, time

STAGES = %r
_depth = threading.local()
_done = set()
_import = builtins.__import__


def _timed(name, fn):
    @functools.wraps(fn)
    def inner(*args, **kwargs):
        if getattr(_depth, "n", 0):
            return fn(*args, **kwargs)
        _depth.n = 1
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _depth.n = 0
            row = {"stage": name, "pid": os.getpid(), "wall": time.perf_counter() - wall,
                   "cpu": time.process_time() - cpu}
            if name == "_search":
                row.update(case=args[0].id, tasks=len(args[2]), trials=args[0].budget.trials)
            with open(os.environ["PROCESS_CPU_STAGES"], "a") as log:
                log.write(json.dumps(row) + "\\n")
    return inner


def _patching_import(*args, **kwargs):
    module = _import(*args, **kwargs)
    if len(_done) < len(STAGES):
        for name, fns in STAGES.items():
            loaded = sys.modules.get(name)
            if name not in _done and loaded is not None and all(hasattr(loaded, fn) for fn in fns):
                for fn in fns:
                    setattr(loaded, fn, _timed(fn, getattr(loaded, fn)))
                _done.add(name)
    return module


builtins.__import__ = _patching_import
"""


def print_stages(log: Path) -> None:
    """CPU and wall per stage, and the searches per tuned case, from the hook's JSON lines."""
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    cases: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0, 0])
    for row in rows:
        total = totals[row["stage"]]
        total[0] += 1
        total[1] += row["cpu"]
        total[2] += row["wall"]
        if row["stage"] == "_search":
            case = cases[row["case"]]
            case[0] += 1
            case[1] += row["cpu"]
            case[2] += row["tasks"]
            case[3] += row["trials"]
    print("\n| stage | calls | CPU s | wall s |\n|---|---|---|---|")
    for name in sorted(totals, key=lambda k: -totals[k][1]):
        calls, cpu, wall = totals[name]
        print(f"| `{name}` | {calls:.0f} | {cpu:.0f} | {wall:.0f} |")
    print("\n| tuned case (searches) | searches | CPU s | tasks | trials |\n|---|---|---|---|---|")
    for name in sorted(cases, key=lambda k: -cases[k][1]):
        searches, cpu, tasks, trials = cases[name]
        print(f"| {name} | {searches:.0f} | {cpu:.1f} | {tasks:.0f} | {trials:.0f} |")


def kind(cmdline: str) -> str:
    return next((name for name, mark in KINDS if mark in cmdline), "other")


def sample(seen: dict[tuple[int, float], tuple[str, float]], stop: threading.Event, every: float) -> None:
    me = psutil.Process().pid
    while not stop.is_set():
        for proc in psutil.process_iter(["pid", "cmdline", "create_time", "cpu_times"]):
            info = proc.info
            if info["pid"] == me or info["cpu_times"] is None:
                continue
            times = info["cpu_times"]
            key = (info["pid"], info["create_time"])
            # a process that has exited but not been reaped has no command line: keep the one seen before
            cmdline = " ".join(info["cmdline"] or []) or seen.get(key, ("", 0.0))[0]
            seen[key] = (cmdline, times.user + times.system)
        stop.wait(every)


def print_other(seen: dict[tuple[int, float], tuple[str, float]], started: float, top: int) -> None:
    """The programs behind kind 'other', by their first two words (interpreter and script or module)."""
    cpu: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for (_, created), (cmdline, seconds) in seen.items():
        if created >= started - 1 and kind(cmdline) == "other":
            program = " ".join(cmdline.split()[:3])[:100] or "(no command line)"
            cpu[program] += seconds
            count[program] += 1
    print("\n| other: program (first words) | CPU s | processes |\n|---|---|---|")
    for program in sorted(cpu, key=lambda k: -cpu[k])[:top]:
        print(f"| `{program}` | {cpu[program]:.1f} | {count[program]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description="a command's CPU seconds by kind of process, sampled")
    parser.add_argument("--every", type=float, default=0.3, help="seconds between samples (default 0.3)")
    parser.add_argument("--top", type=int, default=0, metavar="N",
                        help="also list the N programs of kind 'other' that used the most CPU (default 0)")
    parser.add_argument("--stages", action="store_true",
                        help="also time the harness's heavy stages in every process (see the module's docstring)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    hook_dir = Path(tempfile.mkdtemp(prefix="process_cpu-")) if args.stages else None
    env = None
    if hook_dir is not None:
        log = hook_dir / "stages.jsonl"
        (hook_dir / "sitecustomize.py").write_text(HOOK % (STAGES,))
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PROCESS_CPU_STAGES": str(log),
               "PYTHONPATH": f"{hook_dir}{os.pathsep}{path}" if path else str(hook_dir)}
    started = time.time()
    seen: dict[tuple[int, float], tuple[str, float]] = {}
    stop = threading.Event()
    thread = threading.Thread(target=sample, args=(seen, stop, args.every), daemon=True)
    thread.start()
    code = subprocess.call(command, env=env)
    stop.set()
    thread.join()
    wall = time.time() - started
    cpu: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for (_, created), (cmdline, seconds) in seen.items():
        if created < started - 1:  # running before the command: not its
            continue
        cpu[kind(cmdline)] += seconds
        count[kind(cmdline)] += 1
    print(f"exit {code}, {wall:.0f} s wall, {sum(cpu.values()):.0f} CPU s in processes started by then, "
          f"sampled every {args.every} s", file=sys.stderr)
    print("| kind | CPU s | processes | CPU s each |")
    print("|---|---|---|---|")
    for name in sorted(cpu, key=lambda k: -cpu[k]):
        print(f"| {name} | {cpu[name]:.0f} | {count[name]} | {cpu[name] / count[name]:.1f} |")
    if args.top:
        print_other(seen, started, args.top)
    if hook_dir is not None:
        print_stages(log)
        shutil.rmtree(hook_dir, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
