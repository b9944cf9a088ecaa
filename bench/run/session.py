"""The harness core without pytest: load, build, tune, time and check one case.

``BenchSession.run`` takes a case and returns plain data (``Measured``); it
runs inside a worker process (bench.run.worker) so that TVM crashing takes one
case down, not the session. Within a process each model, build and tuning
happens once, whatever the item count. Failures are cached too, so a model
that fails to import fails its untuned and tuned items with the same message
instead of being imported twice.
"""

from __future__ import annotations

import math
import os
import statistics
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.errors import BenchError, BuildError, CaseSkipped, RemoteError
from bench.history import baseline
from bench.stages import build, check, paired, reference, remote
from bench.stages.flops import FlopCount, count_flops, tvm_task_flops
from bench.stages.measure import (
    TimingPlan,
    interleaved_pairs,
    plan_timing,
    probe,
    side_by_side,
    summarize,
    time_rounds,
    with_injected_leak,
    with_injected_slowdown,
)
from bench.stages.model import LoadedModel, load_model
from bench.stages.peak import SessionPeaks
from bench.stages.record import Record, extra_info
from bench.stages.tune import Progress, Tuned, tune
from bench.stages.tvm_api import current as current_tvm
from bench.suite.case import ORT, TUNED, UNTUNED, Case
from bench.suite.target import THREADS_ENV, serves, tvm_threads

T = TypeVar("T")
#: Called with "build", "tune" or "measure" as a case enters that stage; the worker's parent
#: applies the suite's time limit for the stage from that moment.
Phase = Callable[[str], None]


def release_sessions() -> None:
    """Hand finished RPC sessions back to the pool now.

    A session ends when its last reference goes, and TVM's remote objects
    sit in reference cycles: without a collection a finished session kept
    its device busy for a minute, and an item waiting for the same device
    timed out in the queue.
    """
    import gc

    gc.collect()


#: A tuned build must run at least this share of the model's kernel FLOPs in tuned kernels.
MIN_TUNED_FLOP_SHARE = 0.5


@dataclass
class Measured:
    """One case's numbers and verdicts as plain data, so they can cross a process boundary."""

    info: Record
    #: Seconds per call, one per round.
    samples: list[float]
    iterations: int
    failures: list[str] = field(default_factory=list)
    #: Peak GFLOP/s measured so far in this process, by thread count.
    peaks: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Made:
    """What a case's variant was built from and into (all None for ONNX Runtime, which builds nothing here)."""

    prepared: build.Prepared | None = None
    #: The variant's own build: untuned, or tuned from its database.
    compiled: build.Compiled | None = None
    #: The untuned build, whose answer the tuned one is checked against.
    untuned: build.Compiled | None = None
    tuned: Tuned | None = None


class BenchSession:
    def __init__(self, cache_dir: Path, *, retune: bool = False, max_time: float | None = None,
                 use_reference: bool = True, progress: Progress = print, phase: Phase | None = None,
                 rpc_tracker: str | None = None, baseline_dir: Path | None = None, cases: int = 1) -> None:
        self.cache_dir = cache_dir
        #: Cases in this run: each paired interval is taken at ``timing.paired.alpha`` / cases, the share the
        #: gate gives each case of its own alpha, so the pairs stop when the gate's interval is narrow enough.
        self.cases = max(1, cases)
        #: Where accepted baseline builds live (bench.history.baseline); ``--bench-baseline-dir``.
        self.baseline_dir = baseline_dir if baseline_dir is not None else baseline.default_dir(cache_dir)
        #: ``--bench-rpc-tracker``: overrides every rpc target's tracker address.
        self.rpc_tracker = rpc_tracker
        self.retune = retune
        self.max_time = max_time
        self.use_reference = use_reference
        self.progress = progress
        self.phase = phase or (lambda _: None)
        self._memo_store: dict[tuple[Any, ...], Any] = {}
        #: The peaks this worker measured, by thread count (bench.stages.peak owns the policy).
        self.peaks = SessionPeaks(progress=progress)

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
        return self._memo(("model", *case.model_key), lambda: load_model(case, self.cache_dir, self.progress))

    def prepared(self, case: Case, model: LoadedModel) -> build.Prepared:
        """The module both variants build from, convolutions in the case's layout (one import per model)."""
        def make() -> build.Prepared:
            prepared = build.prepare(model, case.target, case.suite.where, f"models[{case.model_index}]",
                                     case.conv_layout)
            if prepared.layout_ops and prepared.layout_ops["unlowerable"]:
                self.progress(f"[build] {case.id}: kept in the model's layout, as TVM cannot lower them in "
                              f"{case.conv_layout}: {', '.join(prepared.layout_ops['unlowerable'])}")
            return prepared

        return self._memo(("prepared", *case.untuned_key, case.conv_layout), make)

    def untuned_compiled(self, case: Case, model: LoadedModel, prepared: build.Prepared) -> build.Compiled:
        key = f"models[{case.model_index}]"
        return self._memo(("untuned_compiled", *case.untuned_key),
                          lambda: build.compile_executable(prepared, model, case.target, case.suite.where, key))

    def untuned(self, case: Case, model: LoadedModel, prepared: build.Prepared) -> build.Built:
        return self._memo((UNTUNED, *case.untuned_key),
                          lambda: build.load_local(self.untuned_compiled(case, model, prepared), model, case.target))

    def tuned_compiled(self, case: Case, model: LoadedModel) -> tuple[Tuned, build.Compiled]:
        def make() -> tuple[Tuned, build.Compiled]:
            prepared = self.prepared(case, model)
            self.phase("tune")
            tracker = self.tracker(case) if case.target.is_remote else None
            prepack = case.weight_prepack
            tuned = tune(build.tuning_module(prepared, prepack), case, model, self.cache_dir, retune=self.retune,
                         progress=self.progress, tracker=tracker)
            self.phase("build")
            compiled = build.compile_executable(prepared, model, case.target, case.suite.where,
                                                f"models[{case.model_index}]", work_dir=tuned.work_dir,
                                                prepack=prepack)
            share = compiled.scheduled_flop_share
            if share is None or share < MIN_TUNED_FLOP_SHARE:
                raise BuildError(
                    f"tuning records applied to kernels holding {share or 0:.0%} of the model's FLOPs "
                    f"({compiled.scheduled} of {compiled.kernels} kernels; {tuned.tasks} tuning tasks, "
                    f"{tuned.trials} trials): this build is not tuned. Raise the budget to at least "
                    f"{tuned.tasks * 4} trials, widen tuning.ops, or rerun with --retune",
                    case.suite.where, f"budgets ({case.budget.id})")
            return tuned, compiled

        return self._memo((TUNED, *case.tuned_key), make)

    def tuned(self, case: Case, model: LoadedModel) -> tuple[Tuned, build.Built]:
        tuned, compiled = self.tuned_compiled(case, model)
        return tuned, self._memo(("tuned_local", *case.tuned_key),
                                 lambda: build.load_local(compiled, model, case.target))

    # --- remote devices -------------------------------------------------------------------------------

    def tracker(self, case: Case) -> remote.Tracker:
        return remote.tracker_address(case.target.rpc, self.rpc_tracker, case.suite.where,
                                      f"{case.target.key_path}.rpc")

    def device(self, case: Case) -> remote.Device:
        """A fresh session on a free device of the target's pool, for one item.

        One library per session: TVM 0.27's RPC server segfaulted here (in
        dlsym) when a session that had run one model loaded a second, so
        sessions are not reused across builds. It also spreads items over
        the pool.
        """
        tracker = self.tracker(case)
        device = remote.request(case.target, tracker, case.suite.where)
        self.progress(f"[rpc] {case.id}: measuring on a device with key {case.target.rpc.key!r} from {tracker} "
                      f"({device.info.get('threads')} TVM threads)")
        return device

    def library(self, case: Case, variant: str, compiled: build.Compiled) -> Path:
        """The shared library a device loads, linked once per build with the target's compiler."""
        def folder() -> str:
            import atexit
            import shutil
            import tempfile

            path = tempfile.mkdtemp(prefix="tvm-bench-libs-")
            atexit.register(shutil.rmtree, path, ignore_errors=True)
            return path

        def make() -> Path:
            name = f"{case.model.name}-{case.target.name}-{variant}-{len(self._memo_store)}.so"
            return build.export_library(compiled, case.target, Path(self._memo(("libdir",), folder)) / name,
                                        case.suite.where, case.target.key_path)

        key = case.untuned_key if variant == UNTUNED else case.tuned_key
        return self._memo(("library", *key, variant), make)

    def exported(self, case: Case, library: Path) -> build.Built:
        """A build's exported library loaded here and run once (its answer checked by its own item)."""
        return build.load_exported(library, self.model(case), case.target)

    def ort(self, case: Case, model: LoadedModel) -> reference.Reference:
        """ONNX Runtime on the case's model (frozen, or as shipped where it refuses the frozen file)."""
        return self._memo(("ort_session", *case.untuned_key),
                          lambda: reference.open_reference(model, case.target.threads, case.suite.where,
                                                           f"models[{case.model_index}]", self.progress))

    def ort_build(self, case: Case, model: LoadedModel) -> build.Built:
        """ONNX Runtime as a peer variant: same model, same inputs, the target's cores."""
        def make() -> build.Built:
            import time

            start = time.perf_counter()
            ref = self.ort(case, model)
            return build.Built(ref.run, ref.run(), time.perf_counter() - start, 0, 0)

        return self._memo((ORT, *case.untuned_key), make)

    def flops(self, case: Case, model: LoadedModel) -> FlopCount:
        return self._memo(("flops", *case.model_key), lambda: count_flops(model.path))

    def tvm_flops(self, case: Case, prepared: build.Prepared) -> int:
        return self._memo(("tvm_flops", *case.untuned_key), lambda: tvm_task_flops(prepared.mod, case.target.tvm()))

    def reference_output(self, case: Case, model: LoadedModel) -> Any:
        return self._memo(("reference", *case.model_key), lambda: self.ort(case, model).run())

    def run(self, case: Case) -> Measured:
        """One pipeline for every item: check it can run here, build its variant, then time and check it on
        this host or on a device of its pool."""
        self.phase("import")
        self._can_run(case)
        model = self.model(case)
        made = self._make(case, model)
        if case.target.is_remote:
            self.phase("measure")
            return self._on_device(case, model, made)
        built, untuned_outputs = self._load(case, model, made)
        self.phase("measure")
        return self._on_host(case, model, made, built, untuned_outputs)

    def _can_run(self, case: Case) -> None:
        """Skip or refuse, with the reason, an item this machine cannot time."""
        if case.target.is_remote:
            if case.variant == ORT:
                raise CaseSkipped(f"ONNX Runtime has no remote form: target {case.target.name!r} runs on the device "
                                  f"pool {case.target.rpc.key!r}, the ort peer only on this host", case.suite.where)
            return
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if case.target.threads > usable:
            raise BenchError(f"{case.id}: target {case.target.name!r} needs {case.target.threads} threads "
                             f"({case.target.threads_source}) but this machine lets TVM use {usable} cores, and "
                             f"TVM caps its threads there: lower num-cores, or measure on a device with that many",
                             case.suite.where)
        if case.target.is_gpu and not build.device_present(case.target):
            raise CaseSkipped(f"no {case.target.kind} device on this machine", case.suite.where)

    def _make(self, case: Case, model: LoadedModel) -> Made:
        """The variant's build (none for ONNX Runtime), and the untuned build its answer is checked against."""
        if case.variant == ORT:
            self.phase("build")  # its session
            return Made()
        prepared = self.prepared(case, model)
        self.phase("build")
        untuned = self.untuned_compiled(case, model, prepared)
        if case.variant == TUNED:
            tuned, compiled = self.tuned_compiled(case, model)
            return Made(prepared, compiled, untuned, tuned)
        return Made(prepared, untuned, untuned)

    def _time(self, case: Case, model: LoadedModel, made: Made, built: build.Built, untuned_outputs: list[Any] | None,
              timer: Any = None) -> tuple[Record, list[str], list[float], TimingPlan]:
        """Time the loaded build as the suite says, record it, and check its answer."""
        run = built.run if timer is not None else with_injected_leak(with_injected_slowdown(built.run, case.id),
                                                                       case.id)
        plan = plan_timing(case.timing, probe(run, timer), self.max_time)
        samples = time_rounds(run, plan, timer)
        info, failures = self._info(case, model, made.prepared, built, plan, samples, made.tuned, untuned_outputs)
        return info, failures, samples, plan

    def _load(self, case: Case, model: LoadedModel, made: Made) -> tuple[build.Built, list[Any] | None]:
        """The variant loaded in this process and run once, and the untuned answer it is checked against."""
        if case.variant == ORT:
            return self.ort_build(case, model), None
        assert made.prepared is not None
        untuned = self.untuned(case, model, made.prepared)
        return (self.tuned(case, model)[1] if case.variant == TUNED else untuned), untuned.outputs

    def _on_host(self, case: Case, model: LoadedModel, made: Made, built: build.Built,
                 untuned_outputs: list[Any] | None) -> Measured:
        """Time here on TVM's threads (checked), then the side-by-side turns and the baseline pairs."""
        if case.variant != ORT:
            threads = tvm_threads()
            if not serves(case.target, threads):
                raise BenchError(f"{case.id}: TVM runs with {threads} threads in this process but the target "
                                 f"needs {case.target.threads} ({case.target.threads_source}); a figure from the "
                                 f"wrong thread count would be wrong. Was {THREADS_ENV} changed after TVM started?",
                                 case.suite.where)
        info, failures, samples, plan = self._time(case, model, made, built, untuned_outputs)
        if case.variant != ORT:
            info["tvm_threads"] = tvm_threads()
        if (case.variant == TUNED and case.ort_peer and case.timing.side_by_side and self.use_reference
                and reference.available()):
            info.update(self._side_by_side(case, model, with_injected_slowdown(built.run, case.id), plan))
        if made.compiled is not None and not case.target.is_gpu:
            failures += self._vs_baseline(case, model, made.compiled, built.outputs, samples, info)
        return self._measured(info, failures, samples, plan)

    def _vs_baseline(self, case: Case, model: LoadedModel, compiled: build.Compiled, outputs: list[Any],
                     samples: list[float], info: Record) -> list[str]:
        """Keep this build's library; if the case has a baseline build, time the two in interleaved pairs
        (``timing.paired``) and check the baseline gives the same answer. Returns the failures."""
        try:
            library, sha = baseline.keep_library(compiled, case, self.cache_dir)
        except BenchError as err:  # the item's figures stand without it
            self.progress(f"[paired] {case.id}: the build's library could not be kept ({err}); not timed against "
                          "a baseline build")
            return []
        info["library"] = {"path": str(library), "sha256": sha, "bytes": library.stat().st_size}
        spec = case.timing.paired
        base = baseline.find(self.baseline_dir, case.id, case.target.json, self.progress) \
            if spec.enabled else None
        if base is None:
            return []
        record: dict[str, Any] = {"baseline": base.identity(), "identical": sha == base.sha256}
        info["vs_baseline"] = record
        if base.meta.get("model_sha256") != model.sha256:
            # another model (new weights, shapes or export): its answer may differ, its time is not the build's
            record["skipped"] = "the model changed since the baseline was accepted; accept a run of this model"
            self.progress(f"[paired] {case.id}: not timed against its baseline build: {record['skipped']}")
            return []
        under_test = current_tvm()
        built_with = base.meta.get("tvm_build_id") or base.meta.get("tvm_version")
        if built_with not in (under_test.build_id, None):
            record["skipped"] = (f"the baseline was built with TVM {base.meta.get('tvm_label') or built_with} and "
                                 f"this item runs {under_test.label}: one process cannot load both runtimes, so "
                                 "the gate compares it on its history, across the TVM change")
            self.progress(f"[paired] {case.id}: not timed against its baseline build: {record['skipped']}")
            return []
        if record["identical"]:
            record.update({"ratio": 1.0, "low": 1.0, "high": 1.0, "pairs": 0, "decision": "within"})
            self.progress(f"[paired] {case.id}: byte-identical to its baseline build: no pairs needed")
            return []
        current = build.load_exported(library, model, case.target)
        against = build.load_exported(base.library, model, case.target)
        verdict = check.compare_outputs(current.outputs, against.outputs, model.outputs, case.check,
                                        (case.variant, "baseline"), model.labels)
        info["check"] = {**info.get("check", {}), "baseline": "pass" if verdict.ok else "fail"}
        info["check_ok"] = bool(info.get("check_ok", True)) and verdict.ok
        threshold = case.suite.model_gate(case.model_index).threshold
        alpha = spec.alpha / self.cases
        block_calls = max(1, math.ceil(spec.block_time / max(statistics.median(samples), 1e-9)))
        run = with_injected_slowdown(current.run, case.id)
        pairs, capped = interleaved_pairs(
            run, against.run, block_calls, min_pairs=spec.min_pairs, max_pairs=spec.max_pairs,
            max_time=spec.max_time, seed=zlib.crc32(case.id.encode()),
            settled=lambda logs: paired.settled(paired.estimate(logs, alpha), threshold))
        timed = paired.summary(pairs, alpha, threshold, capped=capped, block_calls=block_calls)
        timed["baseline_s"] = timed.pop("other_s")
        record.update(timed)
        self.progress(f"[paired] {case.id}: {timed['ratio'] - 1:+.2%} against its baseline build (CI "
                      f"{timed['low'] - 1:+.2%} .. {timed['high'] - 1:+.2%}, {timed['pairs']} pairs of {block_calls} "
                      f"calls): {timed['decision']}")
        return [] if verdict.ok else [f"the baseline build answers differently: {verdict.message}"]

    def _side_by_side(self, case: Case, model: LoadedModel, run: Callable[[], Any], plan: TimingPlan) -> Record:
        """The tuned build and ONNX Runtime timed in turn (``timing.side_by_side``): a ratio that drift spares.

        If ONNX Runtime cannot run the model (its own ``ort`` item fails and says why), the tuned item keeps its
        figures and records the reason instead of the ratio."""

        try:
            ort = self.ort_build(case, model).run
        except Exception as err:  # any ORT failure: the tuned figures must survive it
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            self.progress(f"[bench] {case.id}: not timed side by side with ONNX Runtime: {reason}")
            return {"side_by_side": {"turns": 0, "error": reason}}
        ort_plan = plan_timing(case.timing, probe(ort), self.max_time)
        turn_s = min(case.timing.min_time, case.timing.max_time if self.max_time is None else self.max_time)
        turns = side_by_side({TUNED: (run, plan), ORT: (ort, ort_plan)}, case.timing.side_by_side, turn_s)
        ratios = [t / o for t, o in zip(turns[TUNED], turns[ORT], strict=True)]
        return {"tuned_vs_ort_side_by_side": round(statistics.median(ratios), 4),
                "side_by_side": {"turns": len(ratios), "tuned_s": turns[TUNED], "ort_s": turns[ORT],
                                 "ratios": [round(r, 4) for r in ratios]}}

    def _on_device(self, case: Case, model: LoadedModel, made: Made) -> Measured:
        """Built here, run and timed on a device of the pool; if the device is lost, once more on another."""
        assert made.compiled is not None and made.untuned is not None
        library = self.library(case, case.variant, made.compiled)
        where, key = case.suite.where, case.target.key_path
        retried: str | None = None
        for attempt in (1, 2):
            failure: str | None = None
            try:
                untuned_outputs = self._remote_untuned_outputs(case, model, made.untuned) \
                    if case.variant == TUNED else None
                device = self.device(case)
                built = build.load_remote(library, device.session, model, case.target, made.compiled, where, key)
                info, failures, samples, plan = self._time(
                    case, model, made, built, built.outputs if case.variant == UNTUNED else untuned_outputs,
                    built.timer)
                info.update({"clock": "device", "tvm_threads": device.info.get("threads"), "device": device.info,
                             "device_id": remote.device_fingerprint(device.info), "rpc_retried": retried})
                del built, device
            except RemoteError:
                raise
            except Exception as err:  # a device that dies mid-call surfaces as any TVM or socket error
                failure = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
                if "cudaErrorInitializationError" in failure:
                    failure += " (a forking rpc_server cannot use CUDA: start it with --no-fork)"
            # Out of the except block the traceback no longer holds the session: hand it back to the pool.
            release_sessions()
            if failure is None:
                return self._measured(info, failures, samples, plan)
            if attempt == 2:
                raise BenchError(f"{case.id}: the device with key {case.target.rpc.key!r} failed again after a "
                                 f"retry: {failure} (first: {retried})", where, key)
            retried = failure
            self.progress(f"[rpc] {case.id}: lost the device ({failure}); retrying once on another device")
        raise AssertionError("unreachable")

    def _remote_untuned_outputs(self, case: Case, model: LoadedModel, untuned: build.Compiled) -> list[Any]:
        """The untuned answer the tuned item is checked against, computed on a device once per session."""
        memo = ("untuned_outputs", *case.untuned_key)
        if memo not in self._memo_store:
            library = self.library(case, UNTUNED, untuned)
            self._memo_store[memo] = build.load_remote(library, self.device(case).session, model, case.target,
                                                       untuned, case.suite.where, case.target.key_path).outputs
            release_sessions()
        return self._memo_store[memo]  # type: ignore[no-any-return]

    def _info(self, case: Case, model: LoadedModel, prepared: build.Prepared | None, built: build.Built,
              plan: TimingPlan, samples: list[float], tuned: Tuned | None,
              untuned_outputs: list[Any] | None) -> tuple[Record, list[str]]:
        output = built.outputs[model.output_index]
        info = extra_info(case, model, prepared, built, plan,
                          check.summary_topk(output, case.check, model.labels), tuned)
        # Per-round seconds: the gate's significance test needs the samples, not just the summary.
        info["samples_s"] = [float(x) for x in samples]
        failures = self._check(case, model, built.outputs, untuned_outputs, info) \
            if untuned_outputs is not None else []
        if case.variant == ORT:
            info.update({"check": {}, "check_ok": True,  # the reference does not check itself
                         "ort_model": self.ort(case, model).model})
        self._work(case, model, prepared, summarize(samples), info)
        return info, failures

    def _measured(self, info: Record, failures: list[str], samples: list[float], plan: TimingPlan) -> Measured:
        return Measured(info, samples, plan.iterations, failures,
                        dict(self.peaks.best))

    def _work(self, case: Case, model: LoadedModel, prepared: build.Prepared | None, stats: dict[str, Any],
              info: Record) -> None:
        """FLOPs per inference, achieved GFLOP/s, and the share of the measured peak."""
        flops = self.flops(case, model)
        info["flops"] = flops.total
        info["flops_unsupported_ops"] = flops.unsupported
        gflops = round(flops.total / stats["median"] / 1e9, 3) if stats["median"] else None
        info["gflops_per_s"] = gflops
        if gflops is not None and case.target.kind == "llvm" and not case.target.is_remote:  # not a device's
            peak = self.peaks.for_item(case.id, case.target.threads, gflops)
            info["peak_gflops"] = peak["measured_gflops"]
            info["pct_of_peak"] = round(100 * gflops / peak["measured_gflops"], 2)
        if case.variant == TUNED and prepared is not None:
            tvm = self.tvm_flops(case, prepared)
            info["tvm_flops"] = tvm
            diff = abs(tvm - flops.total) / flops.total if flops.total else None
            info["flops_disagreement"] = round(diff, 4) if diff is not None else None
            if diff is not None and diff > 0.05:
                info["flops_warning"] = (f"ONNX-graph count {flops.total:,} and MetaSchedule's task FLOPs {tvm:,} "
                                         f"differ by {diff:.1%}")
                self.progress(f"[flops] {case.id}: {info['flops_warning']}")

    def _check(self, case: Case, model: LoadedModel, outputs: list[Any], untuned_outputs: list[Any],
               info: Record) -> list[str]:
        verdicts: dict[str, check.CheckResult] = {}
        if case.variant == TUNED:
            verdicts[UNTUNED] = check.compare_outputs(outputs, untuned_outputs, model.outputs, case.check,
                                                        (TUNED, UNTUNED), model.labels)
        if self.use_reference and case.check.reference == "onnxruntime" and reference.available():
            try:
                ref = self.reference_output(case, model)
            except BenchError as err:  # the build's figures stand; the item fails on the check it could not make
                verdicts["onnxruntime"] = check.CheckResult(False, f"{err.message} (check.reference: none skips this "
                                                               "check)")
            else:
                verdicts["onnxruntime"] = check.compare_outputs(outputs, ref, model.outputs, case.check,
                                                                (case.variant, "onnxruntime"), model.labels)
                info["reference_topk"] = check.summary_topk(ref[model.output_index], case.check, model.labels)
                info["ort_model"] = self.ort(case, model).model
        info["check"] = {name: ("pass" if v.ok else "fail") for name, v in verdicts.items()}
        info["check_ok"] = all(v.ok for v in verdicts.values())
        return [v.message for v in verdicts.values() if not v.ok]
