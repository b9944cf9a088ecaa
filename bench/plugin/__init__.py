"""The pytest layer: suites become ordinary pytest-benchmark test items.

pytest gives fixtures only to ordinary test functions, so a suite file is
collected as a ``pytest.Module`` whose Python object is ``bench.plugin.testcase``
(one test function) and whose cases parametrize that function. Node ids read
``suites/smoke.yaml::test_case[tiny_cnn-llvm-b32-tuned]``, and every pytest
and pytest-benchmark option works unchanged.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bench.errors import BenchError
from bench.history.gate import DEFAULT_WINDOW
from bench.options import positive_int, positive_seconds, tvm_spec
from bench.suite.case import TUNED

if TYPE_CHECKING:
    import pandas as pd

    from bench.history.gate import Verdict
    from bench.plugin.shard import Shard
    from bench.run.runner import Runner
    from bench.suite.case import Case

_RUNNER_KEY: pytest.StashKey[Runner] = pytest.StashKey()


def _address(value: str) -> str:
    from bench.suite.schema import parse_address

    try:
        parse_address(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


def _shard(value: str) -> Shard:
    from bench.plugin.shard import parse_shard

    try:
        return parse_shard(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tvm-bench", "TVM benchmark suites (bench)")
    group.addoption("--bench-cache-dir", metavar="PATH", default=None,
                    help="cache for generated models, downloads and tuning databases "
                         "(default: $TVM_BENCH_CACHE or ~/.cache/tvm-bench)")
    group.addoption("--bench-baseline-dir", metavar="PATH", default=None,
                    help="accepted baseline builds, each TVM item timed against its case's in interleaved pairs "
                         "(default: CACHE/baselines; fill it with `python -m bench baseline accept RUN.json`)")
    group.addoption("--retune", "--bench-retune", dest="bench_retune", action="store_true",
                    help="tune again even when the tuning cache has a database for the case")
    group.addoption("--bench-max-time", metavar="SECONDS", type=positive_seconds, default=None,
                    help="cap on the timed part of each item, overriding the suites' timing.max_time "
                         "(pytest-benchmark's --benchmark-max-time does the same when this is not given)")
    group.addoption("--bench-no-reference", action="store_true",
                    help="do not compare with ONNX Runtime (the tuned-vs-untuned check still runs) nor time the "
                         "tuned build side by side with it")
    group.addoption("--bench-gate", metavar="HISTORY", action="append", default=[],
                    help="after the run, gate it against earlier runs in HISTORY (files or folders, repeatable) "
                         "and fail the session on a regression, wrong answer, errored or missing case")
    group.addoption("--bench-gate-window", metavar="N", type=positive_int, default=DEFAULT_WINDOW,
                    help=f"runs in the gate's rolling baseline (default {DEFAULT_WINDOW})")
    group.addoption("--bench-confirms", metavar="RUN_ID", default=None,
                    help="mark this run as a re-measurement for `bench gate --confirm` of RUN_ID; history and "
                         "reports leave it out (set by the gate, rarely by hand)")
    group.addoption("--bench-isolation", choices=("process", "none"), default="process",
                    help="'process' (default): run each case in a worker process, so a crash, hang or memory "
                         "blow-up fails that case only (limits: the suites' 'limits'); 'none': in the pytest "
                         "process, for debuggers and profilers")
    group.addoption("--bench-rpc-tracker", metavar="HOST:PORT", type=_address, default=None,
                    help="RPC tracker for every rpc target, overriding the suites' rpc.tracker and "
                         "TVM_TRACKER_HOST/TVM_TRACKER_PORT")
    group.addoption("--bench-shard", metavar="I/N", type=_shard, default=None,
                    help="run only the I-th of N shards of the cases (whole model-on-target groups, split "
                         "deterministically); needs --bench-run-id so history joins the shards into one run")
    group.addoption("--bench-run-id", metavar="ID", default=None,
                    help="the id shared by the shards of one run (e.g. the CI pipeline id), stamped into the JSON")
    group.addoption("--bench-tvm", metavar="SPEC", type=tvm_spec, action="append", default=None,
                    help="the TVM under test, overriding the suites' 'tvm': a release ([NAME=]0.26.0, installed "
                         "once into the cache) or a build's folder ([NAME=]PATH); repeat it to measure several "
                         "side by side (default: the TVM installed with the harness)")
    group.addoption("--bench-all-suites", action="store_true",
                    help="also collect suites marked 'default: false' (e.g. nightly) from directories")
    parser.addini("bench_suite_dirs", type="args", default=["suites"],
                  help="directories whose *.yaml files are suites (others must be named explicitly)")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench_suite: an item generated from a YAML benchmark suite")
    if config.getoption("bench_shard") is not None and not config.getoption("bench_run_id"):
        raise pytest.UsageError("--bench-shard needs --bench-run-id: the id the shards of one run share, so that "
                                "history, report and gate join them (e.g. --bench-run-id $CI_PIPELINE_ID)")
    # pytest-benchmark opens --benchmark-json only at the very end and does not
    # create its folder: a missing folder would throw away the whole run.
    out = config.getoption("benchmark_json", None)
    if isinstance(out, (str, Path)):  # a path; some pytest-benchmark releases (5.2.3) hand an open file instead
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    _atomic_benchmark_json(config)
    _sigterm_ends_the_session()


def _atomic_benchmark_json(config: pytest.Config) -> None:
    """Write --benchmark-json through a temp file and a rename.

    pytest-benchmark opens the file for writing in place, so a reader (or a
    second session writing the same path) could see half a file. Swapping the
    one method keeps its content and hooks exactly as they are.
    """
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or not hasattr(bs, "save_json"):
        return

    def save_json(output_json: dict[str, Any]) -> None:
        from pytest_benchmark.utils import safe_dumps

        from bench.cache import atomic_write

        atomic_write(Path(bs.json), safe_dumps(output_json, ensure_ascii=True, indent=4))  # type: ignore[no-untyped-call]
        bs.logger.info(f"Wrote benchmark data in: {bs.json}", purple=True)

    bs.save_json = save_json


def _sigterm_ends_the_session() -> None:
    """SIGTERM (CI cancelling a job) ends the session like Ctrl-C: workers are stopped and the
    results of finished items are still written."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, interrupt)


def _explicit_paths(config: pytest.Config) -> set[Path]:
    return {(config.invocation_params.dir / a.split("::")[0]).resolve() for a in config.args}


def _is_suite(config: pytest.Config, path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    if path.resolve() in _explicit_paths(config):
        return True
    dirs = [(config.rootpath / d).resolve() for d in config.getini("bench_suite_dirs")]
    return path.resolve().parent in dirs


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_suite(parent.config, file_path):
        return SuiteModule.from_parent(parent, path=file_path)
    return None


class SuiteModule(pytest.Module):
    """A YAML suite collected as if it were a test module of ``bench.plugin.testcase``."""

    cases: list[Case]

    def _getobj(self) -> Any:
        import bench.plugin.testcase

        return bench.plugin.testcase

    def collect(self) -> Any:
        from bench.suite.case import expand
        from bench.suite.schema import load_suite

        try:
            suite = load_suite(self.path)
            explicit = self.path.resolve() in _explicit_paths(self.config)
            if not (suite.spec.default or explicit or self.config.getoption("bench_all_suites")):
                self.config.stash.setdefault(_SKIPPED_SUITES, []).append(suite.where)
                return []
            self.cases = expand(suite, _tvms(self.config))
        except BenchError as err:
            return [SuiteErrorItem.from_parent(self, name="suite", error=err)]
        return super().collect()


_SKIPPED_SUITES = pytest.StashKey[list[str]]()


def _tvms(config: pytest.Config) -> tuple[Any, ...] | None:
    """``--bench-tvm``'s TVMs under test, or None for the suites' own."""
    given = config.getoption("bench_tvm")
    return tuple(given) if given else None


class SuiteErrorItem(pytest.Item):
    """Stands in for a suite that does not validate, so the other suites still run."""

    def __init__(self, *, error: BenchError, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"suite {self.path.name}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.definition.parent
    if isinstance(module, SuiteModule) and "bench_case" in metafunc.fixturenames:
        metafunc.parametrize("bench_case", module.cases, ids=[c.id for c in module.cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item.parent, SuiteModule):
            item.add_marker(pytest.mark.bench_suite)
    shard = config.getoption("bench_shard")
    if shard is not None:
        from bench.plugin.shard import select

        def group(item: pytest.Item) -> tuple[str, ...]:
            case = getattr(getattr(item, "callspec", None), "params", {}).get("bench_case")
            if case is None:  # a suite error item: keep it with its suite's first shard
                return (str(item.path), "")
            return (str(case.suite.path), case.model.name, case.target.name)

        suite_items = [i for i in items if isinstance(i.parent, SuiteModule) or isinstance(i, SuiteErrorItem)]
        _, dropped = select(suite_items, [group(i) for i in suite_items], shard)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            gone = set(dropped)
            items[:] = [i for i in items if i not in gone]


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.get_closest_marker("bench_suite") for item in session.items):
        from bench.plugin.benchmark_options import refuse

        refuse(session.config)


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    skipped = config.stash.get(_SKIPPED_SUITES, [])
    return [f"bench: not collected (default: false; name the file or pass --bench-all-suites): {s}"
            for s in skipped]


def cases_in_run(session: pytest.Session) -> int:
    """Suite items this session runs: the share of alpha each paired interval gets is 1 / this."""
    return sum(1 for item in session.items if item.get_closest_marker("bench_suite"))


@pytest.fixture(scope="session")
def bench_runner(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Iterator[Runner]:
    """The session's runner: hands each case to a worker process that keeps models and builds across items."""
    from bench.cache import cache_root
    from bench.plugin import benchmark_options
    from bench.run.runner import Runner
    from bench.run.worker import Options

    benchmark_options.refuse_parallel(pytestconfig)
    tr = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capman = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def progress(message: str) -> None:
        if tr is None or capman is None:
            print(message)
            return
        with capman.global_and_fixture_disabled():
            tr.ensure_newline()
            tr.write_line(message)

    options = Options(cache_root(pytestconfig.getoption("bench_cache_dir")),
                      retune=pytestconfig.getoption("bench_retune"),
                      max_time=benchmark_options.max_time(pytestconfig),
                      use_reference=not pytestconfig.getoption("bench_no_reference"),
                      rpc_tracker=pytestconfig.getoption("bench_rpc_tracker"),
                      baseline_dir=_path(pytestconfig.getoption("bench_baseline_dir")),
                      cases=cases_in_run(request.session), tvms=_tvms(pytestconfig))
    runner = Runner(options, progress, isolate=pytestconfig.getoption("bench_isolation") == "process")
    pytestconfig.stash[_RUNNER_KEY] = runner
    yield runner
    runner.close()


_OUTCOMES = pytest.StashKey[list[dict[str, Any]]]()
#: Version of the ``tvm_bench`` block added to the benchmark JSON.
OUTCOMES_SCHEMA = 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember every suite item's outcome, including failures before timing and skips."""
    report = yield
    if not isinstance(item.parent, SuiteModule):
        return report
    if report.when == "call" or (report.when == "setup" and not report.passed):
        entry: dict[str, Any] = {"nodeid": item.nodeid, "outcome": report.outcome, "when": report.when,
                                 "duration_s": round(report.duration, 3), "suite_file": str(item.path.name)}
        case = getattr(getattr(item, "callspec", None), "params", {}).get("bench_case")
        if case is not None:
            entry.update({"case": case.id, "suite": case.suite.name, "model": case.model.name,
                          "target_name": case.target.name, "variant": case.variant,
                          "budget": case.budget.id if case.variant == TUNED else None})
        else:
            entry.update({"case": item.name, "suite": item.path.stem})
        if not report.passed:
            if report.skipped and isinstance(report.longrepr, tuple):
                message = str(report.longrepr[2])
            else:
                message = str(getattr(report, "longreprtext", "") or report.longrepr)
            entry["message"] = message.removeprefix("Skipped: ")[:4000]
        item.config.stash.setdefault(_OUTCOMES, []).append(entry)
    return report


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    """Add every suite item's outcome to the benchmark JSON, so failures and skips are on record."""
    output_json["tvm_bench"] = {"schema": OUTCOMES_SCHEMA, "outcomes": config.stash.get(_OUTCOMES, [])}
    runner = config.stash.get(_RUNNER_KEY, None)
    if runner is not None:
        for item in output_json.get("benchmarks", []):
            runner.peaks.restate(item.get("extra_info") or {})
    if config.getoption("bench_confirms"):
        output_json["tvm_bench"]["confirms"] = config.getoption("bench_confirms")
    if config.getoption("bench_run_id"):
        shard = config.getoption("bench_shard")
        output_json["tvm_bench"]["run"] = {"id": config.getoption("bench_run_id"),
                                           "shard": [shard.index, shard.count] if shard else [1, 1]}


_VERDICT: pytest.StashKey[Verdict] = pytest.StashKey()


def _current_frames(config: pytest.Config, runner: Runner) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This session's results and outcomes in the history loader's shape."""
    import pandas as pd
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    from bench.history.load import RESULT_COLUMNS, machine_description, machine_fingerprint, result_row

    info = pytest_benchmark_generate_machine_info()  # type: ignore[no-untyped-call]
    runner.settle_peaks()
    host, host_desc = machine_fingerprint(info), machine_description(info)
    rows = [result_row(dict(r.info), r.stats, host, host_desc) for r in runner.results]
    return (pd.DataFrame(rows, columns=list(RESULT_COLUMNS)),
            pd.DataFrame(config.stash.get(_OUTCOMES, []), columns=["case", "variant", "outcome", "message"]))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """--bench-gate: judge this run against the history; a failure sets the exit status."""
    config = session.config
    paths = config.getoption("bench_gate")
    bench = config.stash.get(_RUNNER_KEY, None)
    if not paths or bench is None:
        return
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    from bench.history.gate import GateSettings
    from bench.history.judge import gate_session
    from bench.history.load import machine_description, machine_fingerprint

    info = pytest_benchmark_generate_machine_info()  # type: ignore[no-untyped-call]
    current, outcomes = _current_frames(config, bench)
    own = config.getoption("benchmark_json", None)
    if own is not None and not isinstance(own, (str, Path)):
        own = own.name  # pytest-benchmark 5.2 hands an open file
    verdict = gate_session(current, outcomes, paths, [Path(own)] if own is not None else [],
                           GateSettings(window=config.getoption("bench_gate_window")),
                           f"{machine_description(info)} ({machine_fingerprint(info)})")
    config.stash[_VERDICT] = verdict
    if verdict.failed and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    verdict = config.stash.get(_VERDICT, None)
    if verdict is not None:
        from bench.history.gate import render_text

        terminalreporter.section("tvm-bench gate")
        for line in render_text(verdict).splitlines():
            terminalreporter.write_line(line)
    session = config.stash.get(_RUNNER_KEY, None)
    if session is None or not session.results:
        return
    from bench.plugin.summary import summary_lines

    session.settle_peaks()
    tr = terminalreporter
    tr.section("tvm-bench: untuned / tuned / ONNX Runtime (medians)")
    for line in summary_lines(session.results):
        tr.write_line(line)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record the peak GFLOP/s measured this session next to pytest-benchmark's machine info."""
    session = config.stash.get(_RUNNER_KEY, None)
    if session is None:
        return
    if session.peaks.best:
        machine_info["tvm_bench_peak"] = {str(threads): p for threads, p in session.peaks.best.items()}
