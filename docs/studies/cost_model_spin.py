"""What the search's cost model costs the rest of the machine when its OpenMP threads spin between predictions.

MetaSchedule's XGBoost cost model runs on OpenMP (XGBoost's own libgomp) with one thread per physical core.
Without ``OMP_WAIT_POLICY`` libgomp lets an idle thread spin for about 300,000 pauses before it sleeps, and the
evolutionary search predicts often enough that the threads hardly sleep. The harness sets
``OMP_WAIT_POLICY=PASSIVE`` before the first tuning of a process (bench.stages.metaschedule.quiet_cost_model);
a policy libgomp cannot read gives its default back, so the two are compared in one session:

    .venv/bin/python docs/studies/cost_model_spin.py --runs 3 --load 0 --load 2

Each run tunes one generator model cold, in a fresh process (libgomp reads its environment once), the
variants interleaved; ``--load N`` runs N busy loops beside it, as another test or job on a shared machine
would. Printed per cell: the tuning's seconds per trial, and the CPU seconds of the whole run (import, the
untuned preparation, the tuning with the builder and runner processes it reaped, the tuned build).
Write-up: docs/studies/README.md#cost-model-threads.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: The variants' environments. libgomp falls back to its default for a policy it cannot read (it prints a
#: warning), and the harness leaves a policy the user set alone: that is the only way back to the spin here.
VARIANTS = {"spin (libgomp default)": {"OMP_WAIT_POLICY": "libgomp-default"}, "passive (harness)": {}}

ONE = """
import json, sys
from pathlib import Path
from bench.run.session import BenchSession
from bench.suite.case import expand
from bench.suite.schema import load_suite
work = Path(sys.argv[1])
(work / "s.yaml").write_text(sys.argv[2])
session = BenchSession(work / "cache", progress=lambda _: None)
[case] = [c for c in expand(load_suite(work / "s.yaml")) if c.variant == "tuned"]
model = session.model(case)
tuned, _ = session.tuned_compiled(case, model)
print(json.dumps({"trials": tuned.trials, "tuning_s": tuned.tuning_s}))
"""


def suite(model: str, trials: int, threads: int) -> str:
    return (f"name: spin\nort: false\nmodels: [{{name: {model}, source: {{generator: {model}}}}}]\n"
            f"targets: [{{name: cpu, target: \"llvm -num-cores={threads}\"}}]\n"
            f"budgets: [{{name: b{trials}, trials: {trials}}}]\n")


def busy() -> None:
    while True:
        pass


def one_run(text: str, extra: dict[str, str], threads: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra, TVM_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.Popen([sys.executable, "-c", ONE, work, text], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"the tuning run failed ({proc.returncode}); run it by hand to see why")
    got = json.loads(out.strip().splitlines()[-1])
    return {"s_per_trial": got["tuning_s"] / got["trials"], "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description="tuning with the cost model's OpenMP threads spinning or "
                                                 "waiting passively, on an idle or a loaded machine")
    parser.add_argument("--model", default="tiny_cnn", help="a generator of bench.generators (default tiny_cnn)")
    parser.add_argument("--trials", type=int, default=64, help="the budget (default 64, the smoke suite's)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="TVM threads (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs per variant and load (default 3)")
    parser.add_argument("--load", type=int, action="append", help="busy loops beside the tuning (repeatable; "
                                                                  "default 0 and 2)")
    args = parser.parse_args()
    text = suite(args.model, args.trials, args.threads)
    cells: dict[tuple[int, str], list[dict[str, float]]] = {}
    for load in args.load or [0, 2]:
        loops = [multiprocessing.Process(target=busy, daemon=True) for _ in range(load)]
        for loop in loops:
            loop.start()
        try:
            for run in range(args.runs):
                for name, extra in VARIANTS.items():
                    got = one_run(text, extra, args.threads)
                    cells.setdefault((load, name), []).append(got)
                    print(f"load {load}, run {run + 1}, {name}: {got['s_per_trial']:.2f} s/trial, "
                          f"{got['cpu_s']:.1f} CPU s", file=sys.stderr, flush=True)
        finally:
            for loop in loops:
                loop.terminate()
    print(f"{args.model}, {args.trials} trials, TVM on {args.threads} threads; {args.runs} cold tunings per cell, "
          "variants interleaved; median (min .. max)")
    print("| busy loops beside | cost model | s / trial | CPU s of the run |")
    print("|---|---|---|---|")
    for (load, name), runs in cells.items():
        def cell(key: str, runs: list[dict[str, float]] = runs) -> str:
            values = [r[key] for r in runs]
            return f"{statistics.median(values):.2f} ({min(values):.2f} .. {max(values):.2f})"
        print(f"| {load} | {name} | {cell('s_per_trial')} | {cell('cpu_s')} |")


if __name__ == "__main__":
    main()
