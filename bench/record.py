"""Record stage: what goes into pytest-benchmark's ``extra_info`` for each item.

Everything a later reader needs to trust or compare a number: which model
bytes, which resolved target, which TVM, which budget, what the build and the
tuning cost, what the answer was. Keys are flat where possible so pandas can
read them as columns.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from bench.measure import SLOWDOWN_ENV

if TYPE_CHECKING:
    from bench.build import Built, Prepared
    from bench.case import Case
    from bench.measure import TimingPlan
    from bench.model import LoadedModel
    from bench.tune import Tuned

#: Stamped into every item so readers can refuse records they do not understand.
RECORD_SCHEMA = 1


def extra_info(case: Case, model: LoadedModel, prepared: Prepared | None, built: Built, plan: TimingPlan,
               topk: list[dict[str, Any]], tuned: Tuned | None) -> dict[str, Any]:
    import tvm

    info: dict[str, Any] = {
        "bench_schema": RECORD_SCHEMA,
        "suite": case.suite.name,
        "suite_file": case.suite.where,
        "case": case.id,
        "model": case.model.name,
        "model_sha256": model.sha256,
        "input_shapes": model.shapes,
        "output": model.output_names[0] if len(model.outputs) == 1 else model.output_names,
        "target_name": case.target.name,
        "target": json.loads(case.target.json),
        "budget": case.budget.id if case.variant == "tuned" else None,
        "runtime": "onnxruntime" if case.variant == "ort" else "tvm",
        "budget_trials": case.budget.trials if case.variant == "tuned" else 0,
        "max_trials_per_task": case.budget.max_trials_per_task if case.variant == "tuned" else None,
        "variant": case.variant,
        "tvm_version": tvm.__version__,
        "threads_source": case.target.threads_source,
        "import_s": round(prepared.import_s, 4) if prepared is not None else None,
        "compile_s": round(built.compile_s, 4),
        "kernels": built.kernels,
        "kernels_scheduled": built.scheduled,
        "timing": plan.as_dict(),
        #: "host": timed here with time.perf_counter; "device": by TVM's time_evaluator on the remote device.
        "clock": "device" if case.target.is_remote else "host",
        "timing_requested": case.timing.model_dump(),
        "topk": topk,
        "gate": case.suite.model_gate(case.model_index).model_dump(),
    }
    if os.environ.get(SLOWDOWN_ENV):
        info["injected_slowdown"] = float(os.environ[SLOWDOWN_ENV])
    if case.variant == "ort":
        import onnxruntime

        info.update({"ort_version": onnxruntime.__version__, "ort_threads": case.target.threads,
                     "ort_graph_optimization": "ORT_ENABLE_ALL", "kernels": None, "kernels_scheduled": None})
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
        })
    return info
