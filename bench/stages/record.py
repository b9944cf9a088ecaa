"""Record stage: what goes into pytest-benchmark's ``extra_info`` for each item.

Everything a later reader needs to trust or compare a number: which model
bytes, which resolved target, which TVM, which budget, what the build and the
tuning cost, what the answer was. Keys are flat where possible so pandas can
read them as columns.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from bench.stages.measure import injected_leak_mib, injected_slowdown
from bench.suite.case import ORT, TUNED

if TYPE_CHECKING:
    from bench.stages.build import Built, Prepared
    from bench.stages.measure import TimingPlan
    from bench.stages.model import LoadedModel
    from bench.stages.tune import Tuned
    from bench.suite.case import Case

#: Stamped into every item so readers can refuse records they do not understand.
RECORD_SCHEMA = 1
#: The schemas this version reads (bench.history.load refuses others, naming the file).
KNOWN_SCHEMAS = (1,)


class Record(TypedDict, total=False):
    """Every key the harness writes into an item's ``extra_info``: the one definition.

    Writers (this module, bench.run.session, bench.run.runner) are type-checked
    against it, so a new key is declared here first; readers (bench.history.load,
    the gate, the report) take their columns from ``COLUMNS``.
    """

    bench_schema: int
    suite: str
    suite_file: str
    case: str
    model: str
    model_sha256: str
    input_shapes: dict[str, list[int]]
    #: The checked output's name, or the names when several are checked.
    output: str | list[str]
    target_name: str
    target: dict[str, Any]
    budget: str | None
    runtime: Literal["tvm", "onnxruntime"]
    budget_trials: int
    max_trials_per_task: int | None
    variant: str
    tvm_version: str
    #: The TVM under test (bench.stages.tvm_api.TvmBuild): name, source, version, commit, llvm, path, build_id,
    #: label.
    tvm: dict[str, Any]
    #: How tables, charts and the gate name that TVM: its version, or ``name@commit`` for a build.
    tvm_label: str
    threads_source: str
    import_s: float | None
    compile_s: float
    kernels: int | None
    kernels_scheduled: int | None
    #: Share of the model's kernel FLOPs in tuned kernels (the "is it tuned" rule; see bench.stages.build).
    scheduled_flop_share: float | None
    timing: dict[str, Any]
    #: "host": timed here with time.perf_counter; "device": by TVM's time_evaluator on the remote device.
    clock: Literal["host", "device"]
    timing_requested: dict[str, Any]
    topk: list[dict[str, Any]]
    reference_topk: list[dict[str, Any]]
    gate: dict[str, Any]
    injected_slowdown: float
    #: The MiB the item was made to leak in its measure stage (bench.stages.measure.LEAK_ENV), a test hook.
    injected_leak_mib: float
    # ONNX Runtime peer
    ort_version: str
    ort_threads: int
    ort_graph_optimization: str
    # tuning
    tuning_s: float
    trials: int
    tasks: int
    seconds_per_trial: float | None
    tuning_cached: bool
    tuning_key: str
    tuning_resumed_records: int
    #: The smaller budget's database a warm start began from (budget, trials, tuning_s), else absent.
    tuning_warm_from: dict[str, Any] | None
    tuning_runner_threads: list[int]
    #: The convolution layout of this case's builds (``tuning.layout`` resolved for the target): "NHWC" or "model".
    tuning_layout: str
    #: With a layout conversion: {"converted": [...], "kept": [...], "unlowerable": [...]}, the layout-aware Relax
    #: operators converted, those kept in the model's layout, and those of them TVM cannot lower converted.
    layout_ops: dict[str, list[str]] | None
    #: The model file ONNX Runtime ran (ort items and the reference check): "frozen" (the harness's, shapes
    #: pinned) or "as shipped" (the source file with its free dimensions set, where ORT refused the frozen one).
    ort_model: str
    # where it ran
    tvm_threads: int | None
    device: dict[str, Any]
    device_id: str
    rpc_retried: str | None
    # the measurement and its checks
    samples_s: list[float]
    check: dict[str, str]
    check_ok: bool
    flops: int
    flops_unsupported_ops: list[str]
    gflops_per_s: float | None
    peak_gflops: float
    pct_of_peak: float
    tvm_flops: int
    flops_disagreement: float | None
    flops_warning: str
    # relations to the peers of the same (model, target), made by bench.run.runner
    speedup_median: float | None
    speedup_mean: float | None
    untuned_median_s: float | None
    ort_median_s: float | None
    tuned_vs_ort_median: float | None
    # made by bench.run.session: the tuned build and ONNX Runtime timed in turn (timing.side_by_side)
    tuned_vs_ort_side_by_side: float
    side_by_side: dict[str, Any]
    # made by bench.run.session: the build's library (path, sha256, bytes), kept for `bench baseline accept`, and the
    # build timed against its case's baseline build in interleaved pairs: ratio, low, high (the interval), pairs,
    # decision, visible, identical, the baseline's identity and the per-pair seconds (bench.stages.paired)
    library: dict[str, Any]
    #: Made by bench.run.worker (isolated runs only): the worker tree's resident MiB per stage ("import",
    #: "build", "tune", "measure"), at its start and its peak, sampled every ``sampled_every_s``.
    memory: dict[str, Any]
    #: Bytes of the model's weights (its ONNX initializers), exact.
    weight_bytes: int
    #: What the build allocates by its own plan, in bytes, exact (bench.stages.memory_plan.MemoryPlan); TVM items.
    planned_memory: dict[str, int] | None
    vs_baseline: dict[str, Any] | None
    #: Made by bench.run.runner with several TVMs under test: this item's build against the first TVM's build of
    #: the same case, each in a worker of its own TVM, in interleaved pairs (bench.stages.paired): against (its
    #: TVM), ratio, low, high, pairs, decision, visible, and the per-pair seconds; or ``skipped`` with the reason.
    vs_tvm: dict[str, Any]


#: Record keys that history, report and gate read as columns (missing ones become NaN/None).
COLUMNS: tuple[str, ...] = (
    "suite", "case", "model", "target_name", "budget", "budget_trials", "variant", "tvm_version", "tvm_label",
    "model_sha256",
    "import_s", "compile_s", "kernels", "kernels_scheduled", "scheduled_flop_share", "tuning_s", "trials", "tasks",
    "seconds_per_trial", "tuning_cached", "tuning_key", "speedup_median", "speedup_mean", "check_ok", "samples_s",
    "topk", "gate",
    "runtime", "flops", "gflops_per_s", "pct_of_peak", "peak_gflops", "tuned_vs_ort_median",
    "tuned_vs_ort_side_by_side", "tvm_threads",
    "ort_threads", "vs_baseline", "vs_tvm", "memory", "weight_bytes", "planned_memory", "library")


def library_bytes(info: Any) -> int | None:
    """The build's exported library size in bytes (exact), where the item kept its library."""
    library = info.get("library")
    return library.get("bytes") if isinstance(library, dict) else None


def planned(info: Any, figure: str = "planned_bytes") -> int | None:
    """One figure of the build's plan (exact; bench.stages.memory_plan), where it was recorded."""
    plan = info.get("planned_memory")
    return plan.get(figure) if isinstance(plan, dict) else None


def planned_bytes(info: Any) -> int | None:
    """The bytes a build's plan allocates per call."""
    return planned(info)


def stage_peaks(info: Any) -> dict[str, float]:
    """Each stage's highest sampled resident memory of the worker tree, in MiB (docs/guide.md#memory)."""
    memory = info.get("memory")
    stages = memory.get("stages") if isinstance(memory, dict) else None
    return {name: float(s["peak_mib"]) for name, s in (stages or {}).items() if s.get("peak_mib") is not None}


def peak_mib(info: Any) -> float | None:
    """The item's highest sampled resident memory over its stages, in MiB."""
    return max(stage_peaks(info).values(), default=None)


def extra_info(case: Case, model: LoadedModel, prepared: Prepared | None, built: Built, plan: TimingPlan,
               topk: list[dict[str, Any]], tuned: Tuned | None) -> Record:
    import tvm

    from bench.stages.tvm_api import current

    under_test = current()
    info: Record = {
        "bench_schema": RECORD_SCHEMA,
        "suite": case.suite.name,
        "suite_file": case.suite.where,
        "case": case.id,
        "model": case.model.name,
        "model_sha256": model.sha256,
        "input_shapes": model.shapes,
        "weight_bytes": model.weight_bytes,
        "planned_memory": built.memory_plan.as_dict() if built.memory_plan is not None else None,
        "output": model.output_names[0] if len(model.outputs) == 1 else model.output_names,
        "target_name": case.target.name,
        "target": json.loads(case.target.json),
        "budget": case.budget.id if case.variant == TUNED else None,
        "runtime": "onnxruntime" if case.variant == ORT else "tvm",
        "budget_trials": case.budget.trials if case.variant == TUNED else 0,
        "max_trials_per_task": case.budget.max_trials_per_task if case.variant == TUNED else None,
        "variant": case.variant,
        "tvm_version": tvm.__version__,
        "tvm": under_test.as_dict(),
        "tvm_label": under_test.label,
        "threads_source": case.target.threads_source,
        "import_s": round(prepared.import_s, 4) if prepared is not None else None,
        "layout_ops": prepared.layout_ops if prepared is not None else None,
        "compile_s": round(built.compile_s, 4),
        "kernels": built.kernels,
        "kernels_scheduled": built.scheduled,
        "scheduled_flop_share": built.scheduled_flop_share,
        "timing": plan.as_dict(),
        "clock": "device" if case.target.is_remote else "host",
        "timing_requested": case.timing.model_dump(),
        "topk": topk,
        "gate": case.suite.model_gate(case.model_index).model_dump(),
    }
    if injected_slowdown(case.id):
        info["injected_slowdown"] = injected_slowdown(case.id)
    if injected_leak_mib(case.id):
        info["injected_leak_mib"] = injected_leak_mib(case.id)
    if case.variant == ORT:
        import onnxruntime

        info.update({"ort_version": onnxruntime.__version__, "ort_threads": case.target.threads,
                     "ort_graph_optimization": "ORT_ENABLE_ALL", "kernels": None, "kernels_scheduled": None,
                     "scheduled_flop_share": None})
    if tuned is not None:
        info.update({
            "tuning_s": round(tuned.tuning_s, 3),
            "trials": tuned.trials,
            "tasks": tuned.tasks,
            "seconds_per_trial": round(tuned.seconds_per_trial, 4) if tuned.seconds_per_trial else None,
            "tuning_cached": tuned.cached,
            "tuning_key": tuned.key,
            "tuning_resumed_records": tuned.resumed,
            "tuning_runner_threads": list(tuned.runner_threads),
            "tuning_warm_from": tuned.warm_from,
            "tuning_layout": case.conv_layout or "model",
        })
    return info
