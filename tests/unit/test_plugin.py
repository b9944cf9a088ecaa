"""The pytest layer's mechanics, in-process with pytester and a fake runner: no model is built or timed.

Collection, ids and markers, suites that do not validate, pytest-benchmark's options on suite items, the
benchmark JSON's outcomes and the closing table. Targets are resolved by TVM, hence the marker; the real
pipeline is the integration tests' business.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.tvm
pytest_plugins = ["pytester"]

#: A conftest that replaces the session's runner with one whose worker hands back made-up numbers.
FAKE_RUNNER = '''
import pytest
from bench.plugin import _RUNNER_KEY, cases_in_run
from bench.run.runner import Runner
from bench.run.session import Measured
from bench.run.worker import Options

SEEN = []


class FakeExecutor:
    def run(self, case):
        SEEN.append(case.id)
        seconds = {"untuned": 0.004, "tuned": 0.001, "ort": 0.002}[case.variant]
        info = {"bench_schema": 1, "case": case.id, "model": case.model.name, "variant": case.variant,
                "target_name": case.target.name, "budget": case.budget.id if case.variant == "tuned" else None,
                "check": {}, "check_ok": True, "samples_s": [seconds] * 5}
        return Measured(info, [seconds] * 5, 1, ["made-up failure"] if "fail" in case.model.name else [])

    def stop(self):
        pass


@pytest.fixture(scope="session")
def bench_runner(pytestconfig, request):
    options = Options(pytestconfig.rootpath / "cache", retune=False, max_time=None, use_reference=False,
                      cases=cases_in_run(request.session))
    runner = Runner(options, print, isolate=False)
    runner.executor, runner._threads = FakeExecutor(), 2
    pytestconfig.stash[_RUNNER_KEY] = runner
    yield runner
'''

SUITE = """
models:
  - {name: net, source: {generator: tiny_cnn}}
targets: [{name: cpu, target: "llvm -num-cores=2"}]
budgets: [0, {name: b8, trials: 8}]
"""


@pytest.fixture(scope="session")
def tvm_loaded() -> None:
    """pytester drops the modules a test imports; TVM's native extensions cannot be imported twice, so they
    are imported once, before any pytester fixture takes its snapshot, and kept."""
    import tvm.target.codegen  # noqa: F401


@pytest.fixture
def project(tvm_loaded: None, pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(FAKE_RUNNER)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "main.yaml").write_text(SUITE)
    (pytester.path / "suites" / "later.yaml").write_text("default: false\n" + SUITE)
    return pytester


def test_suites_become_items_with_ids_markers_and_the_default_flag(project: pytest.Pytester) -> None:
    result = project.runpytest_inprocess("suites", "--collect-only", "-q", "-m", "bench_suite")
    lines = [line for line in result.outlines if "::" in line]
    assert lines == ["suites/main.yaml::test_case[net-cpu-untuned]", "suites/main.yaml::test_case[net-cpu-ort]",
                     "suites/main.yaml::test_case[net-cpu-b8-tuned]"]
    result.stdout.fnmatch_lines(["*not collected (default: false; name the file or pass --bench-all-suites)*"
                                 "later.yaml*"])
    named = project.runpytest_inprocess("suites/later.yaml", "--collect-only", "-q", "-k", "b8")
    assert [line for line in named.outlines if "::" in line] == ["suites/later.yaml::test_case[net-cpu-b8-tuned]"]


def test_a_run_records_json_outcomes_and_prints_the_closing_table(project: pytest.Pytester) -> None:
    (project.path / "suites" / "bad.yaml").write_text(SUITE.replace("trials: 8", "trials: -1"))
    (project.path / "suites" / "fails.yaml").write_text(SUITE.replace("name: net", "name: fail_net"))
    result = project.runpytest_inprocess("suites", "--benchmark-json", "out/run.json")
    result.assert_outcomes(passed=3, failed=4)
    assert ("suites/bad.yaml: budgets[1].trials: Input should be greater than or equal to 0 (got -1)"
            in result.outlines)  # one line naming the file and the key; the other suites ran
    result.stdout.fnmatch_lines(["*tvm-bench: untuned / tuned / ONNX Runtime (medians)*",
                                 "net *cpu *b8 *4.000 *1.000 *2.000 *4.00x*ok"])
    data = json.loads((project.path / "out" / "run.json").read_text())  # the folder did not exist: made
    cases = {b["extra_info"]["case"]: b for b in data["benchmarks"]}
    assert cases["net-cpu-b8-tuned"]["extra_info"]["speedup_median"] == 4.0
    assert cases["net-cpu-b8-tuned"]["stats"]["rounds"] == 5
    outcomes = {o["case"]: o["outcome"] for o in data["tvm_bench"]["outcomes"]}
    assert outcomes["net-cpu-untuned"] == "passed" and outcomes["fail_net-cpu-b8-tuned"] == "failed"


@pytest.mark.parametrize(("option", "instead"), [
    ("--benchmark-min-rounds=3", "the suite's timing.min_rounds and timing.rounds"),
    ("--benchmark-warmup=on", "the suite's timing.warmup_rounds"),
    ("--benchmark-disable-gc", "nothing: the timed calls are TVM's and ONNX Runtime's native code"),
    ("--benchmark-cprofile=tottime", "--bench-isolation=none with a profiler of your own")])
def test_pytest_benchmark_timing_options_are_refused_on_suite_items(project: pytest.Pytester, option: str,
                                                                    instead: str) -> None:
    result = project.runpytest_inprocess("suites", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    name = option.split("=")[0]
    assert f"{name} does not apply (use {instead}" in "\n".join(result.errlines), result.errlines
    # ... and left alone when no suite item runs
    project.makepyfile(test_plain="def test_plain():\n    pass\n")
    assert project.runpytest_inprocess("test_plain.py", option).ret == pytest.ExitCode.OK


def test_benchmark_max_time_is_applied_as_the_harness_max_time(project: pytest.Pytester) -> None:
    from bench.plugin import benchmark_options

    config = project.parseconfig("suites", "--benchmark-max-time=2.5")
    assert benchmark_options.max_time(config) == 2.5
    assert benchmark_options.max_time(project.parseconfig("suites", "--benchmark-max-time=2.5",
                                                          "--bench-max-time=7")) == 7.0
    assert benchmark_options.max_time(project.parseconfig("suites")) is None  # pytest-benchmark's 1 s default
    assert benchmark_options.REFUSED.keys().isdisjoint(benchmark_options.APPLIED)


def test_help_lists_the_harness_options(project: pytest.Pytester) -> None:
    """`pytest --help` documents the options the harness adds."""
    result = project.runpytest_inprocess("--help")
    for option in ("--bench-cache-dir", "--retune", "--bench-max-time", "--bench-no-reference",
                   "--bench-all-suites", "--bench-isolation", "--bench-gate", "--bench-baseline-dir"):
        assert option in result.stdout.str()


def test_shards_split_whole_groups_and_need_a_run_id(project: pytest.Pytester) -> None:
    """--bench-shard 1/2 and 2/2 collect disjoint halves made of whole (model, target) groups; without
    --bench-run-id it is a usage error."""
    models = "\n".join(f"  - {{name: m{i}, source: {{generator: tiny_cnn, seed: {i}}}}}" for i in range(3))
    (project.path / "s.yaml").write_text(f"models:\n{models}\ntargets: ['llvm -num-cores=2']\nbudgets: [0, 8]\n")
    collected = []
    for shard in ("1/2", "2/2"):
        result = project.runpytest_inprocess("s.yaml", "--collect-only", "-q", "--bench-shard", shard,
                                             "--bench-run-id", "n1")
        assert result.ret == pytest.ExitCode.OK, result.outlines
        ids = [line for line in result.outlines if "test_case[" in line]
        collected.append({line.split("[")[1].split("-")[0] for line in ids})
        assert len(ids) == 3 * len(collected[-1])
    assert collected == [{"m0", "m2"}, {"m1"}]
    result = project.runpytest_inprocess("s.yaml", "--collect-only", "--bench-shard", "1/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--bench-shard needs --bench-run-id" in "\n".join(result.errlines)


def test_the_runner_is_told_how_many_cases_the_run_has(project: pytest.Pytester) -> None:
    """Each paired interval gets the run's alpha / its cases, as the gate splits its own: the suite items are
    counted, other tests are not."""
    project.makepyfile(test_count="""
def test_count(bench_runner):
    assert bench_runner.options.cases == 3
""")
    project.runpytest_inprocess("suites/main.yaml", "test_count.py").assert_outcomes(passed=4)


def test_suite_items_refuse_to_be_timed_in_parallel(tvm_loaded: None, pytester: pytest.Pytester) -> None:
    """Under pytest-xdist's -n every suite item fails with the reason (its timing would be another worker's
    noise); the harness's own tests are what -n is for."""
    (pytester.path / "main.yaml").write_text(SUITE)
    result = pytester.runpytest_subprocess("main.yaml", "-n", "1", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*suite items are timed one at a time: run them without pytest-xdist's -n*"])
