"""The parent side of a session: hand cases to a worker, relate the variants, keep the results.

bench.run.session measures one case on its own. Relations between the items of
one (model, target) - speedup over untuned, ratio to ONNX Runtime - are made
here from the statistics pytest-benchmark recorded, so they hold even when the
worker was restarted between the items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from bench.run.tvm_pairs import TvmPairs
from bench.run.worker import Options, Worker
from bench.stages.peak import SessionPeaks
from bench.suite.case import ORT, UNTUNED
from bench.suite.target import physical_cores, serves, thread_env

if TYPE_CHECKING:
    from bench.run.session import Measured
    from bench.stages.record import Record
    from bench.suite.case import Case, TvmUnderTest


@dataclass
class CaseResult:
    case: Case
    info: Record
    stats: dict[str, Any]
    failures: list[str] = field(default_factory=list)


class Executor(Protocol):
    def run(self, case: Case) -> Measured: ...

    def stop(self) -> None: ...


class InProcess:
    """Runs cases in the pytest process (``--bench-isolation=none``): for debuggers and profilers only,
    since a crash in TVM then ends the session.

    TVM fixes its thread count at its pool's first use, so this process can
    serve only one thread count: the first case's. A case needing another is
    refused (bench.run.session checks the count TVM really uses).
    """

    def __init__(self, options: Options, progress: Callable[[str], None], threads: int) -> None:
        import os

        from bench.run.session import BenchSession

        os.environ.update(thread_env(threads))
        self.threads = threads
        self.session = BenchSession(options.cache_dir, retune=options.retune, max_time=options.max_time,
                                    use_reference=options.use_reference, progress=progress,
                                    rpc_tracker=options.rpc_tracker, baseline_dir=options.baseline_dir,
                                    cases=options.cases)

    def run(self, case: Case) -> Measured:
        from bench.errors import BenchError

        if case.tvm.source != "installed":
            raise BenchError(f"{case.id}: --bench-isolation=none runs the harness's own TVM; TVM {case.tvm.name} "
                             "runs in a worker of its own: use --bench-isolation=process", case.suite.where)
        if not serves(case.target, self.threads):
            raise BenchError(f"{case.id}: --bench-isolation=none runs TVM with one thread count per session "
                             f"({self.threads}, from the first case); this target needs {case.target.threads}: "
                             "run it in its own session or with --bench-isolation=process", case.suite.where)
        return self.session.run(case)

    def stop(self) -> None:
        pass


class Runner:
    def __init__(self, options: Options, progress: Callable[[str], None], *, isolate: bool = True) -> None:
        self.options = options
        self.progress = progress
        self.isolate = isolate
        self.executor: Executor | None = None
        self._threads: int | None = None
        self._tvm: TvmUnderTest | None = None
        self.results: list[CaseResult] = []
        #: Case.untuned_key (or ort_key) + variant -> stats of the untuned and ort items measured so far.
        self.peer_stats: dict[tuple[str, ...], dict[str, Any]] = {}
        #: The best peak any worker measured, by thread count (bench.stages.peak owns the policy).
        self.peaks = SessionPeaks()
        #: With several TVMs under test, the later TVMs' items timed against the first's in pairs.
        self.tvm_pairs = TvmPairs(options, progress)

    def _executor_for(self, case: Case) -> Executor:
        """A worker started with the case's TVM and thread count; a new one when either changes."""
        # A remote target runs nothing here, so any worker serves it.
        threads = case.target.local_threads or self._threads or physical_cores()
        if self.executor is None or (self.isolate and (not serves(case.target, self._threads)
                                                       or case.tvm != self._tvm)):
            if self.executor is not None:
                self.executor.stop()
                self.progress(f"[bench] starting a worker with {threads} TVM threads for {case.target.name}"
                              + (f" on TVM {case.tvm.name}" if case.tvm.source != "installed" else ""))
            self.executor = (Worker(self.options, self.progress, threads, case.tvm) if self.isolate
                             else InProcess(self.options, self.progress, threads))
            self._threads, self._tvm = threads, case.tvm
        return self.executor

    def measure(self, case: Case) -> Measured:
        measured = self._executor_for(case).run(case)
        self.peaks.merge(measured.peaks)
        if isinstance(self.executor, Worker):
            self.tvm_pairs.against_reference(case, measured, self.executor)
        return measured

    def finish(self, case: Case, measured: Measured, stats: dict[str, Any]) -> CaseResult:
        """Attach the ratios to this case's peers and keep the result for the summary and the gate."""
        info = measured.info.copy()
        if case.variant == UNTUNED:
            self.peer_stats[(*case.untuned_key, UNTUNED)] = stats
        elif case.variant == ORT:
            self.peer_stats[(*case.ort_key, ORT)] = stats
        else:
            base = self.peer_stats.get((*case.untuned_key, UNTUNED))
            info["speedup_median"] = round(base["median"] / stats["median"], 4) if base else None
            info["speedup_mean"] = round(base["mean"] / stats["mean"], 4) if base else None
            info["untuned_median_s"] = base["median"] if base else None
            ort = self.peer_stats.get((*case.ort_key, ORT))
            info["ort_median_s"] = ort["median"] if ort else None
            info["tuned_vs_ort_median"] = round(stats["median"] / ort["median"], 4) if ort else None
        result = CaseResult(case, info, stats, measured.failures)
        self.results.append(result)
        return result

    def settle_peaks(self) -> None:
        """Every result's % of peak against the session's best peak (``SessionPeaks.restate``)."""
        for result in self.results:
            self.peaks.restate(cast("dict[str, Any]", result.info))

    def close(self) -> None:
        if self.executor is not None:
            self.executor.stop()
        self.tvm_pairs.close()
