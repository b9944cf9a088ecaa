"""Per-session state: each model, build and tuning happens once, whatever the item count.

This is the harness core without pytest: ``BenchSession.run`` takes a case and
a ``timer`` (pytest-benchmark's pedantic in the plugin, anything in tests)
and returns what was measured and what the checks said. Failures are cached
too, so a model that fails to import fails its untuned and tuned items with
the same message instead of being imported twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench import build, check, reference
from bench.case import Case
from bench.errors import BenchError, BuildError
from bench.flops import FlopCount, count_flops, tvm_task_flops
from bench.measure import TimingPlan, plan_timing, probe, with_injected_slowdown
from bench.model import LoadedModel, load_model
from bench.peak import Peak, measure_peak
from bench.record import extra_info
from bench.tune import Progress, Tuned, tune

T = TypeVar("T")
#: Times ``run`` with the plan; returns stats with at least ``median`` and ``mean`` in seconds,
#: and optionally ``data``: the per-round times.
Timer = Callable[[Callable[[], Any], TimingPlan], dict[str, Any]]


class CaseSkipped(BenchError):
    """The case cannot run here (e.g. its device is absent); not a failure."""


@dataclass
class CaseResult:
    case: Case
    info: dict[str, Any]
    stats: dict[str, Any]
    failures: list[str] = field(default_factory=list)


class BenchSession:
    def __init__(self, cache_dir: Path, *, retune: bool = False, max_time: float | None = None,
                 use_reference: bool = True, progress: Progress = print) -> None:
        self.cache_dir = cache_dir
        self.retune = retune
        self.max_time = max_time
        self.use_reference = use_reference
        self.progress = progress
        self._memo_store: dict[tuple[Any, ...], Any] = {}
        #: (suite, model, target JSON, variant) -> stats of the untuned and ort items measured so far.
        self.peer_stats: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.results: list[CaseResult] = []

    def _memo(self, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        if key in self._memo_store:
            value = self._memo_store[key]
            if isinstance(value, BenchError):
                raise value
            return value  # type: ignore[no-any-return]
        try:
            value = make()
        except BenchError as err:
            self._memo_store[key] = err
            raise
        self._memo_store[key] = value
        return value

    def model(self, case: Case) -> LoadedModel:
        return self._memo(("model", *case.model_key), lambda: load_model(case, self.cache_dir))

    def prepared(self, case: Case, model: LoadedModel) -> build.Prepared:
        key = f"models[{case.model_index}]"
        return self._memo(("prepared", *case.untuned_key),
                          lambda: build.prepare(model, case.target, case.suite.where, key))

    def untuned(self, case: Case, model: LoadedModel, prepared: build.Prepared) -> build.Built:
        key = f"models[{case.model_index}]"
        return self._memo(("untuned", *case.untuned_key),
                          lambda: build.compile_module(prepared, model, case.target, case.suite.where, key))

    def tuned(self, case: Case, model: LoadedModel, prepared: build.Prepared) -> tuple[Tuned, build.Built]:
        def make() -> tuple[Tuned, build.Built]:
            tuned = tune(prepared, case, model, self.cache_dir, retune=self.retune, progress=self.progress)
            built = build.compile_module(prepared, model, case.target, case.suite.where,
                                         f"models[{case.model_index}]", work_dir=tuned.work_dir)
            if built.scheduled * 2 <= built.kernels:
                raise BuildError(
                    f"tuning records applied to only {built.scheduled} of {built.kernels} kernels "
                    f"({tuned.tasks} tuning tasks, {tuned.trials} trials): this build is not tuned. "
                    f"Raise the budget to at least {tuned.tasks * 4} trials or rerun with --retune",
                    case.suite.where, f"budgets ({case.budget.id})")
            return tuned, built

        return self._memo(("tuned", *case.tuned_key), make)

    def ort_build(self, case: Case, model: LoadedModel) -> build.Built:
        """ONNX Runtime as a peer variant: same frozen model, same inputs, the target's cores."""
        def make() -> build.Built:
            import time

            start = time.perf_counter()
            sess = reference.session(model, case.target.spec.get("num-cores"))
            create_s = time.perf_counter() - start
            inputs = model.inputs

            def run() -> Any:
                return sess.run(None, inputs)

            return build.Built(run, list(run()), create_s, 0, 0)

        return self._memo(("ort", *case.untuned_key), make)

    def flops(self, case: Case, model: LoadedModel) -> FlopCount:
        return self._memo(("flops", *case.model_key), lambda: count_flops(model.path))

    def peak(self, threads: int) -> Peak:
        return self._memo(("peak", threads), lambda: measure_peak(threads))

    def peaks(self) -> dict[int, Peak]:
        """Peaks measured so far this session, by thread count."""
        return {k[1]: v for k, v in self._memo_store.items() if k[0] == "peak" and isinstance(v, Peak)}

    def tvm_flops(self, case: Case, prepared: build.Prepared) -> int:
        return self._memo(("tvm_flops", *case.untuned_key), lambda: tvm_task_flops(prepared.mod, case.target.tvm()))

    def reference_output(self, case: Case, model: LoadedModel) -> Any:
        threads = case.target.spec.get("num-cores")
        return self._memo(("reference", *case.model_key), lambda: reference.run_reference(model, threads))

    def run(self, case: Case, timer: Timer) -> CaseResult:
        if case.target.is_gpu and not build.device_present(case.target):
            raise CaseSkipped(f"no {case.target.kind} device on this machine", case.suite.where)
        model = self.model(case)
        tuned: Tuned | None = None
        prepared: build.Prepared | None = None
        untuned: build.Built | None = None
        if case.variant == "ort":
            built = self.ort_build(case, model)
        else:
            prepared = self.prepared(case, model)
            untuned = built = self.untuned(case, model, prepared)
            if case.variant == "tuned":
                tuned, built = self.tuned(case, model, prepared)

        run = with_injected_slowdown(built.run)
        plan = plan_timing(case.timing, probe(run), self.max_time)
        output = built.outputs[model.output_index]
        info = extra_info(case, model, prepared, built, plan,
                          check.summary_topk(output, case.check, model.labels), tuned)
        stats = timer(run, plan)
        # Per-round seconds: the gate's significance test needs the samples, not just the summary.
        info["samples_s"] = [float(x) for x in stats.pop("data", [])]
        failures = self._check(case, model, output, untuned, info) if untuned is not None else []
        if case.variant == "ort":
            info.update(check={}, check_ok=True)  # the reference does not check itself
        self._work(case, model, prepared, stats, info)
        if case.variant in ("untuned", "ort"):
            self.peer_stats[(*case.untuned_key, case.variant)] = stats
        else:
            base = self.peer_stats.get((*case.untuned_key, "untuned"))
            info["speedup_median"] = round(base["median"] / stats["median"], 4) if base else None
            info["speedup_mean"] = round(base["mean"] / stats["mean"], 4) if base else None
            info["untuned_median_s"] = base["median"] if base else None
            ort = self.peer_stats.get((*case.untuned_key, "ort"))
            info["ort_median_s"] = ort["median"] if ort else None
            info["tuned_vs_ort_median"] = round(stats["median"] / ort["median"], 4) if ort else None
        result = CaseResult(case, info, stats, failures)
        self.results.append(result)
        return result

    def _work(self, case: Case, model: LoadedModel, prepared: build.Prepared | None, stats: dict[str, Any],
              info: dict[str, Any]) -> None:
        """FLOPs per inference, achieved GFLOP/s, and the share of the measured peak."""
        flops = self.flops(case, model)
        info["flops"] = flops.total
        info["flops_unsupported_ops"] = flops.unsupported
        info["gflops_per_s"] = round(flops.total / stats["median"] / 1e9, 3) if stats["median"] else None
        if case.target.kind == "llvm":
            peak = self.peak(int(case.target.spec.get("num-cores") or 1))
            info["peak_gflops"] = peak.measured_gflops
            info["pct_of_peak"] = round(100 * info["gflops_per_s"] / peak.measured_gflops, 2)
        if case.variant == "tuned" and prepared is not None:
            tvm = self.tvm_flops(case, prepared)
            info["tvm_flops"] = tvm
            diff = abs(tvm - flops.total) / flops.total if flops.total else None
            info["flops_disagreement"] = round(diff, 4) if diff is not None else None
            if diff is not None and diff > 0.05:
                info["flops_warning"] = (f"ONNX-graph count {flops.total:,} and MetaSchedule's task FLOPs {tvm:,} "
                                         f"differ by {diff:.1%}")
                self.progress(f"[flops] {case.id}: {info['flops_warning']}")

    def _check(self, case: Case, model: LoadedModel, output: Any, untuned: build.Built,
               info: dict[str, Any]) -> list[str]:
        verdicts: dict[str, check.Verdict] = {}
        if case.variant == "tuned":
            verdicts["untuned"] = check.compare(output, untuned.outputs[model.output_index], case.check,
                                                ("tuned", "untuned"), model.labels)
        if self.use_reference and case.check.reference == "onnxruntime" and reference.available():
            ref = self.reference_output(case, model)[model.output_index]
            verdicts["onnxruntime"] = check.compare(output, ref, case.check, (case.variant, "onnxruntime"),
                                                    model.labels)
            info["reference_topk"] = check.summary_topk(ref, case.check, model.labels)
        info["check"] = {name: ("pass" if v.ok else "fail") for name, v in verdicts.items()}
        info["check_ok"] = all(v.ok for v in verdicts.values())
        return [v.message for v in verdicts.values() if not v.ok]
