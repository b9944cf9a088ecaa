"""Tuned latency against the trials and seconds spent, for search configurations side by side.

For each configuration (a set of the suite's ``tuning`` settings) and seed,
the model is tuned once through the harness (bench.stages.tune, the same code and
cache key a suite run uses) up to the largest budget; each smaller budget
is a snapshot: the database's first N records, in the order they were
measured, applied to the same module and timed like a suite item. Once every
task has had its first iteration MetaSchedule measures in the same order
whatever the total budget (the gradient scheduler's choices do not depend on
it), so a snapshot at N stands for a run with budget N. Below
``trials_per_iter x tasks`` they differ (the budget sets the trials per
iteration), so those budgets are tuned as runs of their own. Seconds come
from the trajectory tune() records after each measured batch.

ONNX Runtime is timed in the same process, and the last snapshot of each
configuration gets a per-kernel profile (VM instrumentation) that says which
kernels hold the remaining time, next to what the tuning records said each
would take (a search that measured kernels unlike the network runs them shows
as a gap between the two). Output: a table on stdout, ``curve.csv``,
``profile.csv`` and a PNG. Run one at a time on an idle machine:

    .venv/bin/python docs/studies/tuning_curve.py --model resnet50 --at 256,512,1000 \\
        --config harness --config nchw:layout=model \\
        --config "convs:ops=[conv2d, matmul]" --ab 5 --workdir results/curve-resnet50

``harness`` is the suite defaults (NHWC, prepacked weights on CPU); a
config changes some of them, as the suite's ``tuning`` keys.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SUITE = """
name: curve
models:
  - name: {model}
    source: {{generator: {model}}}
targets:
  - {{name: cpu, target: native}}
budgets: [{{name: b{trials}, trials: {trials}}}]
tuning: {tuning}
timing: {{rounds: 10, iterations: 10, min_rounds: 5, min_time: 1.0, max_time: 10}}
"""


Row = dict[str, Any]
#: (config, seed, kernel, ms per inference, calls per inference, ms per inference by the tuning records)
ProfileRow = tuple[str, int, str, float, int, float | None]


@dataclass(frozen=True)
class Config:
    name: str
    tuning: dict[str, Any]
    #: The cache folder under --workdir (default "cache"): a warm start finds its source entries there.
    cache: str = "cache"


def parse_config(text: str) -> Config:
    """``name`` or ``name:key=value;key=value`` (values in YAML: true, 32, [conv2d, matmul]).

    ``cache=FOLDER`` is not a tuning setting: it gives the configuration its own cache under --workdir.
    """
    import yaml

    name, _, rest = text.partition(":")
    tuning: dict[str, Any] = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        tuning[key.strip()] = yaml.safe_load(value)
    cache = tuning.pop("cache", "cache")
    return Config(name, tuning, str(cache))


def snapshot(work: Path, trials: int, into: Path) -> Path:
    """The database as it stood after its first ``trials`` records."""
    from bench.stages.tune import RECORDS, WORKLOADS

    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    shutil.copy(work / WORKLOADS, into / WORKLOADS)
    lines = (work / RECORDS).read_text().splitlines(keepends=True)[:trials]
    (into / RECORDS).write_text("".join(lines))
    return into


def seconds_at(trajectory: list[list[float]], trials: int) -> float | None:
    """Tuning seconds when ``trials`` had been measured (the first batch reaching it)."""
    for done, secs in trajectory:
        if done >= trials:
            return float(secs)
    return float(trajectory[-1][1]) if trajectory else None


def time_build(built: Any, case: Any, repeats: int = 1) -> dict[str, float]:
    """Median of ``repeats`` timed runs' medians, and the smallest round: one run moved by 20% here."""
    import statistics

    from bench.stages.measure import plan_timing, probe, summarize, time_rounds

    plan = plan_timing(case.timing, probe(built.run))
    runs = [summarize(time_rounds(built.run, plan)) for _ in range(repeats)]
    return {"median": statistics.median(r["median"] for r in runs), "min": min(r["min"] for r in runs)}


def kernel_profile(compiled: Any, model: Any, calls: int = 20) -> list[tuple[str, float, int]]:
    """(kernel, seconds per inference, calls per inference), slowest first, from VM instrumentation."""
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    args = [tvm.runtime.tensor(v) for v in model.inputs.values()]
    spent: dict[str, float] = {}
    count: dict[str, int] = {}
    started: dict[str, float] = {}

    def instrument(func: Any, name: str, before: bool, ret: Any, *rest: Any) -> int:
        if before:
            started[name] = time.perf_counter()
        else:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started.pop(name, time.perf_counter())
            count[name] = count.get(name, 0) + 1
        return 0

    vm["main"](*args)
    vm.set_instrument(instrument)
    for _ in range(calls):
        vm["main"](*args)
    rows = [(name, spent[name] / calls, count[name] // calls) for name in spent if not name.startswith("vm.")]
    return sorted(rows, key=lambda r: -r[1])


def recorded_ms(prepared: Any, case: Any, work: Path) -> dict[str, float]:
    """Each task's best tuning record in ms per call: what the search believed the kernel costs, to set
    against what it costs inside the network (docs/studies/README.md#measuring-candidates)."""
    from tvm.s_tir import meta_schedule as ms

    from bench.stages import build

    target = case.target.tvm()
    database = ms.database.JSONDatabase(work_dir=str(work))
    out = {}
    for task in ms.relax_integration.extract_tasks(build.tuning_module(prepared, case.weight_prepack), target, {}):
        record = database.query_tuning_record(task.dispatched[0], target, task.task_name)
        if record is not None and record.run_secs:
            out[task.task_name] = 1e3 * sum(float(x) for x in record.run_secs) / len(record.run_secs)
    return out


def run_config(config: Config, seed: int, args: argparse.Namespace) -> tuple[list[Row], list[ProfileRow], Any]:
    import yaml

    from bench.run.session import BenchSession
    from bench.stages import build, check
    from bench.stages.tune import Tuned, tune
    from bench.suite.case import expand
    from bench.suite.schema import load_suite

    folder = args.workdir / f"{config.name}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    tuning = yaml.safe_dump({**config.tuning, "seed": seed}, default_flow_style=True)
    session = BenchSession(args.workdir / config.cache, progress=lambda m: print(m, flush=True)
                           if not m.startswith("[tune]") or "trials (" in m or "tasks, budget" in m
                           or "warm start" in m else None)

    def tuned_at(trials: int) -> tuple[Any, Any, Any, Tuned]:
        """Tune (or reuse from the cache) a run with this budget, exactly as a suite with it would."""
        path = folder / f"suite-b{trials}.yaml"
        path.write_text(SUITE.format(model=args.model, trials=trials, tuning=tuning))
        [case] = [c for c in expand(load_suite(path)) if c.variant == "tuned"]
        model = session.model(case)
        prepared = session.prepared(case, model)
        tuned = tune(build.tuning_module(prepared, case.weight_prepack), case, model,
                     args.workdir / config.cache, retune=False, progress=session.progress)
        return case, model, prepared, tuned

    case, model, prepared, full = tuned_at(max(args.at))
    meta = json.loads((full.work_dir.parent / "meta.json").read_text())
    # Until every task has had its first iteration the order of measurement depends on the budget
    # (it sets trials per iteration): smaller budgets are tuned as runs of their own.
    warm = meta["trials_per_iter"] * meta["tasks"]
    rows: list[Row] = []
    profile: list[ProfileRow] = []
    for trials in sorted(args.at):
        if trials >= warm or trials == max(args.at):
            work, how, secs = snapshot(full.work_dir, trials, folder / f"snap{trials}"), "snapshot", \
                seconds_at(meta.get("trajectory") or [], trials)
            tasks = full.tasks
        else:
            _, _, _, own = tuned_at(trials)
            work, how, secs, tasks = own.work_dir, "own run", own.tuning_s, own.tasks
        compiled = build.compile_executable(prepared, model, case.target, "curve", "tuned", work_dir=work,
                                            prepack=case.weight_prepack)
        built = build.load_local(compiled, model, case.target)
        # Every point of the curve must still give the right answer (top-k against ONNX Runtime).
        verdict = check.compare_outputs(built.outputs, session.reference_output(case, model), model.outputs,
                                        case.check, ("tuned", "onnxruntime"), model.labels)
        stats = time_build(built, case, args.repeats)
        rows.append({"config": config.name, "seed": seed, "trials": trials, "tuning_s": secs, "from": how,
                     "median_ms": stats["median"] * 1e3, "min_ms": stats["min"] * 1e3,
                     "flop_share": compiled.scheduled_flop_share, "tasks": tasks,
                     "check": "pass" if verdict.ok else f"FAIL: {verdict.message.splitlines()[0]}"})
        print(f"{config.name} seed {seed}: {trials} trials ({how}) -> median {stats['median'] * 1e3:.3f} ms "
              f"(min {stats['min'] * 1e3:.3f}), {compiled.scheduled_flop_share:.1%} of FLOPs tuned, "
              f"top-k check {'pass' if verdict.ok else 'FAIL'}", flush=True)
        if trials == max(args.at):
            records = recorded_ms(prepared, case, work)
            profile = []
            for name, s, n in kernel_profile(compiled, model):
                said = records.get(name.removesuffix("_prepacked"))
                profile.append((config.name, seed, name, s * 1e3, n, said * n if said is not None else None))
            largest = (built, case)
    return rows, profile, largest


def main() -> int:
    from bench.suite.target import physical_cores

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v2", help="a built-in generator (default mobilenet_v2)")
    parser.add_argument("--at", type=lambda s: [int(x) for x in s.split(",")], default=[64, 256, 500],
                        help="budgets to report, comma-separated; the largest is tuned (default 64,256,500)")
    parser.add_argument("--config", action="append", type=parse_config, default=[],
                        help="NAME or NAME:key=value;key=value (suite tuning settings); repeatable "
                             "(default: harness, the shipped defaults)")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0])
    parser.add_argument("--ab", type=int, default=0, metavar="N",
                        help="then time the largest build of each configuration and ONNX Runtime in turn, N times "
                             "each: the side-by-side comparison (default 0: off)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each build; the table shows the median of their medians (default 3)")
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "tuning-curve")
    parser.add_argument("--png", type=Path, default=None, help="default: WORKDIR/curve.png")
    args = parser.parse_args()
    threads = physical_cores()
    os.environ["TVM_NUM_THREADS"] = str(threads)  # before TVM starts its pool (bench/suite/target.py)
    configs = args.config or [Config("harness", {})]
    args.workdir.mkdir(parents=True, exist_ok=True)

    # ONNX Runtime first, in a process where TVM has not run yet: timed after many TVM builds in the same
    # process it came out 2x slower (8.1 vs 4.2 ms on MobileNetV2), which no suite run sees.
    ort_ms, ort_build = time_ort(args)
    rows: list[Row] = []
    profile: list[ProfileRow] = []
    largest: dict[str, Any] = {}
    for config in configs:
        for seed in args.seeds:
            more, kernels, largest[f"{config.name} s{seed}"] = run_config(config, seed, args)
            rows += more
            profile += kernels
    for row in rows:
        row["vs_ort"] = row["median_ms"] / ort_ms
    with (args.workdir / "curve.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (args.workdir / "profile.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("config", "seed", "kernel", "ms_per_inference", "calls", "records_ms"), *profile])
    print(f"\n{args.model}, {threads} threads, ONNX Runtime median {ort_ms:.3f} ms")
    print(f"{'config':<14} {'seed':>4} {'trials':>6} {'from':>8} {'tuning s':>9} {'s/trial':>7} {'median ms':>10} "
          f"{'min ms':>8} {'x ORT':>6} {'FLOPs tuned':>11} check")
    for r in rows:
        secs = f"{r['tuning_s']:.0f}" if r["tuning_s"] is not None else "-"
        per = f"{r['tuning_s'] / r['trials']:.2f}" if r["tuning_s"] else "-"
        print(f"{r['config']:<14} {r['seed']:>4} {r['trials']:>6} {r['from']:>8} {secs:>9} {per:>7} "
              f"{r['median_ms']:>10.3f} {r['min_ms']:>8.3f} {r['vs_ort']:>6.2f} {r['flop_share']:>11.1%} {r['check']}")
    for config in configs:
        top = [p for p in profile if p[0] == config.name][:8]
        total = sum(p[3] for p in profile if p[0] == config.name and p[1] == args.seeds[0])
        first = [p for p in profile if p[0] == config.name and p[1] == args.seeds[0]]
        predicted = sum(p[5] for p in first if p[5] is not None)
        matched = sum(p[3] for p in first if p[5] is not None)
        print(f"\nslowest kernels, {config.name}, {max(args.at)} trials (of {total:.2f} ms in kernels; the "
              f"tuning records put the tuned ones at {predicted:.2f} ms, the network ran them in {matched:.2f}):")
        for _, _, name, ms, calls, recorded in top:
            said = f"records {recorded:7.3f} ms" if recorded is not None else "no record"
            print(f"  {ms:8.3f} ms {ms / total:6.1%}  x{calls:<3} {said}  {name}")
    if args.ab:
        interleaved(largest, ort_build, args)
    plot(rows, ort_ms, args)
    return 0


def interleaved(largest: dict[str, Any], ort: tuple[Any, Any], args: argparse.Namespace) -> None:
    """Side by side: the largest build of each configuration and ONNX Runtime, timed in turn ``--ab`` times.

    Timed one after another, the same ResNet-50 build came out 64.6 and 73.1 ms here: drift between
    configurations timed minutes apart is as large as the effects compared. Taking turns spreads it evenly.
    """
    import statistics

    from bench.stages.measure import plan_timing, probe, summarize, time_rounds

    contenders = {**largest, "onnxruntime": ort}
    plans = {k: plan_timing(case.timing, probe(built.run)) for k, (built, case) in contenders.items()}
    medians: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.ab):
        for k, (built, _case) in contenders.items():
            medians[k].append(summarize(time_rounds(built.run, plans[k]))["median"] * 1e3)
    ort_ms = statistics.median(medians["onnxruntime"])
    print(f"\ninterleaved, {args.ab} turns each, {max(args.at)} trials: median of medians (spread of the turns)")
    for k, values in medians.items():
        mid = statistics.median(values)
        print(f"  {k:<16} {mid:9.3f} ms  ({min(values):.3f} .. {max(values):.3f})  {mid / ort_ms:5.2f}x ORT")


def time_ort(args: argparse.Namespace) -> tuple[float, tuple[Any, Any]]:
    """ONNX Runtime on the same frozen model and inputs, timed like the TVM builds."""
    from bench.run.session import BenchSession
    from bench.stages import build
    from bench.suite.case import expand
    from bench.suite.schema import load_suite

    path = args.workdir / "ort.yaml"
    path.write_text(SUITE.format(model=args.model, trials=0, tuning="{}"))
    [case] = [c for c in expand(load_suite(path)) if c.variant == "ort"]
    session = BenchSession(args.workdir / "cache", progress=print)
    built: build.Built = session.ort_build(case, session.model(case))
    return time_build(built, case, args.repeats)["median"] * 1e3, (built, case)


def plot(rows: list[Row], ort_ms: float, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for key in dict.fromkeys((r["config"], r["seed"]) for r in rows):
        mine = [r for r in rows if (r["config"], r["seed"]) == key]
        label = f"{key[0]} (seed {key[1]})" if len(args.seeds) > 1 else key[0]
        axes[0].plot([r["trials"] for r in mine], [r["median_ms"] for r in mine], marker="o", label=label)
        axes[1].plot([r["tuning_s"] or 0 for r in mine], [r["median_ms"] for r in mine], marker="o", label=label)
    for ax, xlabel in zip(axes, ("trials", "tuning seconds"), strict=True):
        ax.axhline(ort_ms, color="grey", linestyle="--", label="ONNX Runtime")
        ax.set_xlabel(xlabel)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("tuned median latency (ms)")
    axes[1].legend()
    fig.suptitle(f"{args.model}: tuned latency vs tuning budget")
    fig.tight_layout()
    out = args.png or args.workdir / "curve.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}, {args.workdir / 'curve.csv'} and {args.workdir / 'profile.csv'}")


if __name__ == "__main__":
    sys.exit(main())
