"""Run cases in a child process: a crash, hang or memory blow-up costs one case, not the night.

TVM is native code. A bad schedule can segfault, abort or loop, and tuning can
eat memory; in the pytest process any of these would end the session and
lose every number measured so far. So the pytest process never runs TVM: a
worker (``python -m bench.run.worker``) loads, builds, tunes, times and checks
each case and sends back plain data (``Measured``). The parent watches it:

* the stage clock: the worker announces ``build``, ``tune`` and ``measure``,
  and the suite's ``limits.<stage>_s`` applies from that moment;
* the resident memory of the worker and its children (``limits.memory_mb``);
* the process itself: a signal or exit ends the case.

A case that dies or is killed becomes an error naming the signal or limit,
the stage, and the last lines of the worker's log (also kept on disk); the
next case starts a fresh worker. Tuning records written before the end stay
in the cache, and the next run resumes from them (bench.stages.tune).

The worker lives in its own process group so it can be killed with its
builder and runner children, and it kills that group itself if its parent
disappears (pytest killed with SIGKILL), so nothing is left tuning.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bench.errors import BenchError, CaseFailed
from bench.suite.target import serves, thread_env

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from bench.run.session import Measured
    from bench.suite.case import Case, TvmUnderTest
    from bench.suite.schema import TvmSpec

#: Test hook, never for real runs: ``"<case-id glob>:<fault>:<stage>"`` (several joined by ``,``)
#: makes the worker fail on purpose when a matching case enters the stage. Faults: ``segv``
#: (SIGSEGV), ``abort`` (SIGABRT), ``hang`` (sleeps forever), ``oom`` (allocates until stopped).
FAULT_ENV = "TVM_BENCH_FAULT"
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Options:
    """Session settings every worker needs; plain values so they pickle."""

    cache_dir: Path
    retune: bool
    max_time: float | None
    use_reference: bool
    #: ``--bench-rpc-tracker HOST:PORT``: overrides every rpc target's tracker.
    rpc_tracker: str | None = None
    #: ``--bench-baseline-dir``: accepted baseline builds; None: the cache's baselines/.
    baseline_dir: Path | None = None
    #: Suite items in this session: a paired interval's alpha is split across them, as the gate splits its own.
    cases: int = 1
    #: ``--bench-tvm``: the TVMs under test, overriding the suites' ``tvm``.
    tvms: tuple[TvmSpec, ...] | None = None


#: Seconds between samples of the worker tree's resident memory: the limit's check and the recorded peaks.
MEMORY_SAMPLE_S = 0.25
#: Stages timed against another stage's limit, together with it: ``limits.build_s`` covers the import (loading
#: the model, ONNX to Relax, the layout and fusion passes) and the compilation.
LIMITED_BY = {"import": "build"}


class StageMemory:
    """Resident memory of the worker's process tree in each stage of one item: at the stage's start and its
    peak, sampled every ``MEMORY_SAMPLE_S`` (sampled, not exact: a spike between samples is missed).

    The tree is the worker and what it started (the tuning's builder and runner processes). A worker serves
    several items and keeps their models and builds, so a stage's start is part of its peak: the growth is
    ``peak - start``.
    """

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    def sample(self, stage: str, rss: int) -> None:
        mib = rss / 2**20
        entry = self.stages.setdefault(stage, {"start_mib": mib, "peak_mib": mib})
        entry["peak_mib"] = max(entry["peak_mib"], mib)

    def record(self) -> dict[str, Any]:
        return {"sampled_every_s": MEMORY_SAMPLE_S,
                "stages": {name: {k: round(v, 1) for k, v in e.items()} for name, e in self.stages.items()}}


def default_memory_mb() -> int:
    import psutil

    return int(psutil.virtual_memory().total * 0.8 / 2**20)


def _signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class Worker:
    """The parent's handle on one worker process; restarted after any failure."""

    def __init__(self, options: Options, progress: Callable[[str], None], threads: int,
                 tvm: TvmUnderTest | None = None) -> None:
        from bench.suite.case import INSTALLED

        self.options = options
        self.progress = progress
        self.threads = threads
        self.tvm = tvm or INSTALLED
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self._started = 0

    def _start(self, case: Case) -> None:
        from multiprocessing.connection import Connection

        from bench.run.tvm_env import environment

        tvm_env = environment(self.tvm, self.options.cache_dir, self.progress, case.suite.where)
        logs = self.options.cache_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        _prune_logs(logs)
        self._started += 1
        self.log_path = logs / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self._started}.log"
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.run.worker", str(cmd_r), str(res_w)],
                pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **thread_env(self.threads), **tvm_env})
        os.close(cmd_r)
        os.close(res_w)
        self._send = Connection(cmd_w, readable=False)
        self._recv = Connection(res_r, writable=False)
        self._send.send(self.options)

    def stop(self) -> None:
        """Kill the worker and everything it started (its process group)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()
        self.proc = self._send = self._recv = None

    def run(self, case: Case, memory_mb: int | None = None) -> Measured:
        """Run one case in the worker, enforcing the case's limits; raise CaseFailed if it dies."""
        from bench.errors import CaseSkipped

        if not serves(case.target, self.threads) or case.tvm != self.tvm:
            raise BenchError(f"{case.id}: internal error: a worker with {self.threads} TVM threads on TVM "
                             f"{self.tvm.name} was handed a case that needs {case.target.threads} on "
                             f"{case.tvm.name}", case.suite.where)
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self._start(case)
        assert self._send is not None and self._recv is not None and self.proc is not None
        limits = case.limits
        memory = limits.memory_mb or memory_mb or default_memory_mb()
        started = time.monotonic()
        stage, since, entered = "import", started, False
        stages = StageMemory()
        try:
            self._send.send({"suite": str(case.suite.path.resolve()), "case": case.id})
            next_mem_check = 0.0
            while True:
                if self._recv.poll(0.1):
                    try:
                        msg = self._recv.recv()
                    except (EOFError, OSError):
                        try:
                            self.proc.wait(timeout=5)
                        except subprocess.TimeoutExpired:
                            self.stop()
                        self._fail(case, f"worker died ({_signal_name(self.proc.returncode)})", stage, started)
                    kind = msg["event"]
                    if kind == "stage":
                        # a limit's clock starts when the item enters its first stage (not while a new worker
                        # starts), and runs on through the stages it covers
                        if not entered or LIMITED_BY.get(msg["stage"], msg["stage"]) != LIMITED_BY.get(stage, stage):
                            since = time.monotonic()
                        stage, entered = msg["stage"], True
                        stages.sample(stage, _tree_rss(self.proc.pid))
                    elif kind == "progress":
                        self.progress(msg["message"])
                    elif kind == "result":
                        result: Measured = msg["result"]
                        stages.sample(stage, _tree_rss(self.proc.pid))
                        result.info["memory"] = stages.record()
                        return result
                    elif kind == "skip":
                        raise CaseSkipped(msg["message"])
                    elif kind == "error":
                        if msg.get("internal"):
                            self.stop()  # an unexpected exception may have left the process in a bad state
                        raise BenchError(msg["message"])
                    continue
                returncode = self.proc.poll()
                if returncode is not None:
                    self._fail(case, f"worker died ({_signal_name(returncode)})", stage, started)
                limited = LIMITED_BY.get(stage, stage)
                limit = getattr(limits, f"{limited}_s")
                if time.monotonic() - since > limit:
                    self.stop()
                    self._fail(case, f"timed out: {limited} took longer than limits.{limited}_s = {limit:g} s",
                               stage, started)
                if time.monotonic() >= next_mem_check:
                    next_mem_check = time.monotonic() + MEMORY_SAMPLE_S
                    rss = _tree_rss(self.proc.pid)
                    stages.sample(stage, rss)
                    if rss > memory * 2**20:
                        self.stop()
                        self._fail(case, f"out of memory: the worker reached {rss / 2**20:,.0f} MiB resident, "
                                         f"over limits.memory_mb = {memory:,}", stage, started)
        except (KeyboardInterrupt, SystemExit):
            self.stop()  # Ctrl-C or SIGTERM: take the worker and its tuning processes down too
            raise

    def hold(self, case: Case, library: Path) -> float:
        """Load a build's exported library in the worker, for blocks of calls timed there (two TVMs in pairs);
        returns the seconds of one call."""
        return float(self._ask(case, {"op": "hold", "suite": str(case.suite.path.resolve()), "case": case.id,
                                      "library": str(library)}, "held")["seconds"])

    def block(self, case: Case, calls: int) -> float:
        """Seconds per call of ``calls`` back-to-back calls of the held build, timed in the worker."""
        return float(self._ask(case, {"op": "block", "calls": calls}, "block")["seconds"])

    def release(self, case: Case) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._ask(case, {"op": "release"}, "released")

    def pause(self) -> None:
        """Stop the worker and its threads (SIGSTOP) while the other TVM's worker times a block: an idle TVM's
        thread pool spins on its cores after a parallel region, and two workers' pools share the same cores."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def _ask(self, case: Case, request: dict[str, Any], expect: str) -> dict[str, Any]:
        """One request outside an item's pipeline, answered within the case's ``limits.measure_s``."""
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self._start(case)
        assert self._send is not None and self._recv is not None and self.proc is not None
        started = time.monotonic()
        self._send.send(request)
        while True:
            if self._recv.poll(0.1):
                try:
                    msg = self._recv.recv()
                except (EOFError, OSError):
                    self.proc.wait()
                    self._fail(case, f"worker died ({_signal_name(self.proc.returncode)})", "measure", started)
                if msg["event"] == expect:
                    return dict(msg)
                if msg["event"] == "progress":
                    self.progress(msg["message"])
                elif msg["event"] == "error":
                    raise BenchError(msg["message"])
                continue
            if self.proc.poll() is not None:
                self._fail(case, f"worker died ({_signal_name(self.proc.returncode)})", "measure", started)
            if time.monotonic() - started > case.limits.measure_s:
                self.stop()
                self._fail(case, f"timed out: a block took longer than limits.measure_s = {case.limits.measure_s:g} s",
                           "measure", started)

    def _fail(self, case: Case, what: str, stage: str, started: float) -> NoReturn:
        returncode = self.proc.returncode if self.proc is not None else None
        if returncode == -signal.SIGKILL and "out of memory" not in what and "timed out" not in what:
            what += "; SIGKILL from outside usually means the kernel's OOM killer"
        self.stop()
        tail = _tail(self.log_path, LOG_TAIL_LINES) if self.log_path else ""
        message = (f"{case.id}: {what} during {stage}, {time.monotonic() - started:.1f} s into the case "
                   f"(log: {self.log_path})")
        if tail:
            message += "\nlast lines of the worker log:\n" + tail
        raise CaseFailed(message, case.suite.where)


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


#: Lines that start the story of a crash; the excerpt shown starts at the last of them.
_CRASH_MARKERS = ("Segfault encountered", "Fatal Python error", "Traceback (most recent call last)",
                  "[fault hook]", "terminate called", "Check failed", "InternalError", "MemoryError")


def _tail(path: Path, lines: int) -> str:
    """The log's last lines, or the crash report near its end when there is one (native stacks are long)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace").splitlines()[-400:]
    except OSError:
        return ""
    starts = [i for i, line in enumerate(text) if any(m in line for m in _CRASH_MARKERS)]
    chosen = text[starts[-1]:starts[-1] + lines] if starts else text[-lines:]
    return "\n".join("  " + line for line in chosen)


def _prune_logs(folder: Path, keep_days: float = 7.0) -> None:
    cutoff = time.time() - keep_days * 86400
    for path in folder.glob("worker-*.log"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            continue


# --- the worker process -------------------------------------------------------------------------


def inject_fault(case_id: str, stage: str) -> None:
    """Apply the FAULT_ENV test hook if it names this case and stage."""
    import fnmatch

    for spec in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        pattern, _, rest = spec.partition(":")
        fault, _, when = rest.partition(":")
        if not fnmatch.fnmatchcase(case_id, pattern) or when != stage:
            continue
        print(f"[fault hook] {FAULT_ENV}: injecting {fault} into {case_id} at {stage}", flush=True)
        if fault == "segv":
            import ctypes

            ctypes.string_at(0)  # a real invalid read, as a broken kernel would do
        elif fault == "abort":
            os.abort()
        elif fault == "hang":
            while True:
                time.sleep(60)
        elif fault == "oom":
            hoard = []
            while True:
                hoard.append(bytearray(64 * 2**20))  # zero-filled, so the pages are really resident
        else:
            raise ValueError(f"{FAULT_ENV}: unknown fault {fault!r} (segv, abort, hang, oom)")


def _watch_parent(parent: int) -> None:
    """If pytest dies without telling us, take the whole worker group down with it."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _tvm_problem() -> str | None:
    """Why this worker's TVM cannot be measured (it does not import, or its version is out of range), in one
    line; None when it can."""
    import json

    from bench.stages.tvm_api import ENV, unsupported

    under_test = json.loads(os.environ.get(ENV, "{}") or "{}")
    what = f"TVM {under_test.get('name', 'installed')}" + (f" at {under_test['path']}" if under_test.get("path")
                                                             else "")
    try:
        import tvm
    except Exception as err:  # a broken build fails its items, not the session
        last = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        return f"{what} does not import: {type(err).__name__}: {last}"
    return unsupported(tvm.__version__)


def _held_op(op: str, request: dict[str, Any], held: list[Callable[[], Any]]) -> dict[str, Any]:
    """A block of calls of the held build, timed here (seconds per call), or its release."""
    if op == "release":
        held.clear()
        return {"event": "released"}
    if not held:
        raise BenchError("internal error: a block of calls was asked of a worker holding no build")
    run, calls = held[0], int(request["calls"])
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return {"event": "block", "seconds": (time.perf_counter() - start) / calls}


def serve(cmd_fd: int, res_fd: int) -> None:
    import faulthandler
    import traceback
    from multiprocessing.connection import Connection

    from bench.errors import CaseSkipped
    from bench.run.session import BenchSession
    from bench.suite.case import expand
    from bench.suite.schema import load_suite

    faulthandler.enable()  # a segfault prints the Python stack into the log the parent shows
    _watch_parent(os.getppid())
    recv, send = Connection(cmd_fd, writable=False), Connection(res_fd, readable=False)
    options: Options = recv.recv()
    refused = _tvm_problem()
    while refused:  # every item of this worker fails with the one line
        try:
            recv.recv()
        except EOFError:
            return
        send.send({"event": "error", "message": refused})
    cases: dict[tuple[str, float], dict[str, Case]] = {}
    current = [""]
    held: list[Callable[[], Any]] = []  # the build a "hold" request loaded, for "block" requests

    def stage(name: str) -> None:
        send.send({"event": "stage", "stage": name})
        inject_fault(current[0], name)

    session = BenchSession(options.cache_dir, retune=options.retune, max_time=options.max_time,
                           use_reference=options.use_reference, rpc_tracker=options.rpc_tracker,
                           progress=lambda m: send.send({"event": "progress", "message": m}), phase=stage,
                           baseline_dir=options.baseline_dir, cases=options.cases)
    while True:
        try:
            request = recv.recv()
        except EOFError:
            return
        op = request.get("op", "run")
        try:
            if op in ("block", "release"):
                send.send(_held_op(op, request, held))
                continue
            current[0] = request["case"]
            path = Path(request["suite"])
            key = (str(path), path.stat().st_mtime)
            if key not in cases:
                cases[key] = {c.id: c for c in expand(load_suite(path), options.tvms)}
            if request["case"] not in cases[key]:
                raise BenchError(f"case {request['case']} is no longer in the suite (edited during the run?)",
                                 str(path))
            case = cases[key][request["case"]]
            if op == "hold":
                held[:] = [session.exported(case, Path(request["library"])).run]
                send.send(_held_op("block", {"calls": 1}, held) | {"event": "held"})
                continue
            send.send({"event": "result", "result": session.run(case)})
        except CaseSkipped as err:
            send.send({"event": "skip", "message": str(err)})
        except BenchError as err:
            send.send({"event": "error", "message": str(err)})
        except Exception:
            send.send({"event": "error", "internal": True,
                       "message": f"internal error in the worker:\n{traceback.format_exc()}"})
        sys.stdout.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
