"""Where a command's CPU goes, by kind of process: what the harness's test run spends its two cores on.

The command runs as given while every process on the machine is sampled (psutil, every ``--every`` seconds);
each process's last sample is its CPU time, so a process that lived less than one interval is missed and
one that ended is counted up to its last sample. Kinds follow the command line: bench workers, MetaSchedule's
builder and runner processes (TVM's popen workers), pytest-xdist workers, pytest runs started by tests, RPC
servers. For the test command, from the repository root:

    .venv/bin/python docs/studies/process_cpu.py --top 15 -- .venv/bin/pytest tests/ -n 2 --dist loadgroup

Write-up: docs/studies/README.md#where-the-test-runs-cpu-goes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections import defaultdict

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
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    started = time.time()
    seen: dict[tuple[int, float], tuple[str, float]] = {}
    stop = threading.Event()
    thread = threading.Thread(target=sample, args=(seen, stop, args.every), daemon=True)
    thread.start()
    code = subprocess.call(command)
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
    sys.exit(code)


if __name__ == "__main__":
    main()
