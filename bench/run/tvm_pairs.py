"""TVM against TVM: with several TVMs under test, each later TVM's build is timed against the first TVM's build
of the same case in interleaved pairs, as a build against its baseline build (bench.stages.paired), but each
build in a worker of its own TVM, since one process cannot load two TVM runtimes.

The parent asks one worker, then the other, for a block of calls, in random order; the worker that is not timing
is stopped (SIGSTOP) meanwhile. An idle TVM's thread pool keeps spinning on the cores after a parallel region, and
both workers' pools are pinned to the same cores: unstopped, it made the other worker's tuned MobileNetV2 2.1 times
slower (docs/studies/README.md#two-tvms-in-pairs).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.run.worker import Options, Worker
from bench.stages import paired
from bench.stages.measure import interleaved_blocks
from bench.suite.case import ORT, TUNED

if TYPE_CHECKING:
    from bench.run.session import Measured
    from bench.suite.case import Case


def pair_key(case: Case) -> tuple[Any, ...]:
    """Items of different TVMs that measure the same thing: model, target, variant and budget."""
    budget = (case.budget.trials, case.budget.max_trials_per_task) if case.variant == TUNED else None
    return (*case.ort_key, case.variant, budget)


def alone(worker: Worker, held: Case, other: Worker) -> Callable[[int], float]:
    """A block of the worker's held build, timed while the other worker is stopped."""
    def block(calls: int) -> float:
        other.pause()
        try:
            return worker.block(held, calls)
        finally:
            other.resume()
    return block


class TvmPairs:
    """The first TVM's items (the reference) and a worker on that TVM, kept across the session."""

    def __init__(self, options: Options, progress: Callable[[str], None]) -> None:
        self.options = options
        self.progress = progress
        #: Each item of the first TVM that kept its library, by ``pair_key``: (case, library, TVM label).
        self.reference_items: dict[tuple[Any, ...], tuple[Case, Path, str]] = {}
        #: A worker on the reference TVM, kept while its TVM and thread count serve.
        self.reference_worker: Worker | None = None

    def against_reference(self, case: Case, measured: Measured, current: Worker) -> None:
        """Record ``vs_tvm`` on a later TVM's item; remember a first TVM's item as the reference."""
        library = (measured.info.get("library") or {}).get("path")
        if case.variant == ORT or library is None or not case.timing.paired.enabled:
            return
        label = str(measured.info.get("tvm_label", case.tvm.name))
        reference = self.reference_items.setdefault(pair_key(case), (case, Path(library), label))
        if reference[0].tvm == case.tvm:
            return
        try:
            measured.info["vs_tvm"] = self._pairs(case, Path(library), current, *reference, measured.samples)
        except BenchError as err:  # the item's own figures stand without the pairs
            reason = str(err).strip().splitlines()[0]
            measured.info["vs_tvm"] = {"against": reference[2], "skipped": reason}
            self.progress(f"[paired] {case.id}: not timed against TVM {reference[2]}: {reason}")

    def _worker_for(self, ref_case: Case, threads: int) -> Worker:
        worker = self.reference_worker
        if worker is None or worker.tvm != ref_case.tvm or worker.threads != threads:
            if worker is not None:
                worker.stop()
            worker = self.reference_worker = Worker(self.options, self.progress, threads, ref_case.tvm)
        return worker

    def _pairs(self, case: Case, library: Path, current: Worker, ref_case: Case, ref_library: Path,
               ref_label: str, samples: list[float]) -> dict[str, Any]:
        reference = self._worker_for(ref_case, current.threads)
        spec = case.timing.paired
        threshold = case.suite.model_gate(case.model_index).threshold
        alpha = spec.alpha / self.options.cases
        block_calls = max(1, math.ceil(spec.block_time / max(statistics.median(samples), 1e-9)))
        try:
            current.hold(case, library)
            reference.hold(ref_case, ref_library)
            pairs, capped = interleaved_blocks(
                alone(current, case, reference), alone(reference, ref_case, current), block_calls,
                min_pairs=spec.min_pairs, max_pairs=spec.max_pairs, max_time=spec.max_time,
                seed=zlib.crc32(case.id.encode()),
                settled=lambda logs: paired.settled(paired.estimate(logs, alpha), threshold))
        finally:
            for worker, held in ((current, case), (reference, ref_case)):
                with contextlib.suppress(BenchError):
                    worker.release(held)
        timed = paired.summary(pairs, alpha, threshold, capped=capped, block_calls=block_calls)
        self.progress(f"[paired] {case.id}: {timed['ratio'] - 1:+.2%} against TVM {ref_label} (CI "
                      f"{timed['low'] - 1:+.2%} .. {timed['high'] - 1:+.2%}, {timed['pairs']} pairs of {block_calls} "
                      f"calls, each TVM in its own worker): {timed['decision']}")
        timed["reference_s"] = timed.pop("other_s")
        return {"against": ref_label, "against_case": ref_case.id, **timed}

    def close(self) -> None:
        if self.reference_worker is not None:
            self.reference_worker.stop()
