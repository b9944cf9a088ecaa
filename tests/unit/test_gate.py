"""The regression gate's decisions on synthetic samples, its exit codes and its outputs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.__main__ import main
from bench.errors import GateError
from bench.history import gate
from bench.history.confirm import confirm
from bench.history.gate import CaseVerdict, decide, ratio_interval
from bench.history.load import load_history
from bench.testing.results import CPU_A, CPU_B, bench_entry, run_file

START = datetime(2026, 11, 1)


def noisy_run(rng: np.random.Generator, level: float, n: int = 10, run_sd: float = 0.01,
              round_sd: float = 0.01) -> list[float]:
    """Rounds of one run: a run-level shift (machine state) plus per-round noise."""
    shift = 1 + run_sd * rng.standard_normal()
    return list(level * shift * (1 + round_sd * rng.standard_normal(n)))


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def row(case: str, samples: list[float], run: str = "cur", **extra: object) -> dict:
    return {"run_id": run, "case": case, "variant": "tuned", "median": float(np.median(samples)),
            "samples_s": samples, "check_ok": True, "check_failed": [], "speedup_median": 3.0, "gate": None,
            **extra}


def baseline(rng: np.random.Generator, case: str = "m-native-b64-tuned", runs: int = 10,
             level: float = 1e-3) -> pd.DataFrame:
    return frame([row(case, noisy_run(rng, level), run=f"r{i:02d}") for i in range(runs)])


NO_OUTCOMES = pd.DataFrame(columns=["case", "variant", "outcome", "message"])


def status_of(current: pd.DataFrame, base: pd.DataFrame, outcomes: pd.DataFrame = NO_OUTCOMES) -> dict[str, str]:
    return {c.case: c.status for c in decide(current, outcomes, base).cases}


def test_clear_regression() -> None:
    """A 15% slower run fails, with the change and its interval."""
    rng = np.random.default_rng(1)
    v = decide(frame([row("m-native-b64-tuned", noisy_run(rng, 1.15e-3))]), NO_OUTCOMES, baseline(rng))
    case = v.cases[0]
    assert case.status == "regression" and v.exit_code == 1
    assert case.ci_low is not None and case.ci_low > 1.0
    assert case.ratio is not None and 1.10 < case.ratio < 1.20
    assert "slower by +1" in case.reason


def test_clear_improvement() -> None:
    """A 15% faster run is an improvement and passes."""
    rng = np.random.default_rng(2)
    v = decide(frame([row("m-native-b64-tuned", noisy_run(rng, 0.85e-3))]), NO_OUTCOMES, baseline(rng))
    assert v.cases[0].status == "improvement" and v.exit_code == 0


def test_pure_noise_never_fails() -> None:
    """A/A: 200 unchanged runs with 1% run-to-run and 1% round noise raise no alarm."""
    rng = np.random.default_rng(3)
    statuses = []
    for _ in range(200):
        base = baseline(rng)
        statuses.append(decide(frame([row("m-native-b64-tuned", noisy_run(rng, 1e-3))]), NO_OUTCOMES,
                               base).cases[0].status)
    assert statuses.count("regression") == 0 and statuses.count("improvement") == 0


def test_small_slowdown_below_threshold_passes() -> None:
    """A real but small (1%) slowdown with tight noise stays below the 5% threshold."""
    rng = np.random.default_rng(4)
    base = frame([row("c", noisy_run(rng, 1e-3, run_sd=0.001, round_sd=0.001), run=f"r{i}") for i in range(10)])
    cur = frame([row("c", noisy_run(rng, 1.01e-3, run_sd=0.001, round_sd=0.001))])
    assert status_of(cur, base) == {"c": "unchanged"}


def test_too_few_rounds_and_missing_baseline() -> None:
    """Two rounds cannot be judged; a case with no history is new; neither fails."""
    rng = np.random.default_rng(5)
    cur = frame([row("m-native-b64-tuned", [1e-3, 1.1e-3]), row("new-case", noisy_run(rng, 1e-3))])
    v = decide(cur, NO_OUTCOMES, baseline(rng))
    assert {c.case: c.status for c in v.cases} == {"m-native-b64-tuned": "too-few-rounds", "new-case": "new"}
    assert v.exit_code == 0


def test_topk_mismatch_errored_missing_and_not_faster_always_fail() -> None:
    """Wrong answers, errors, vanished cases and too-slow tuning fail whatever the timing says."""
    rng = np.random.default_rng(6)
    base = pd.concat([baseline(rng, "wrong"), baseline(rng, "gone"), baseline(rng, "slow-tuning")])
    cur = frame([row("wrong", noisy_run(rng, 1e-3), check_ok=False, check_failed=["onnxruntime"]),
                 row("slow-tuning", noisy_run(rng, 1e-3), speedup_median=0.9, gate={"min_speedup": 1.0})])
    outcomes = pd.DataFrame([{"case": "crashed", "variant": "tuned", "outcome": "failed",
                              "message": "BuildError: tuning failed\nmore"}])
    v = decide(cur, outcomes, base)
    got = {c.case: (c.status, c.reason) for c in v.cases}
    assert got["wrong"] == ("wrong-answer", "top-k check failed against onnxruntime")
    assert got["crashed"] == ("errored", "BuildError: tuning failed")
    assert got["gone"][0] == "missing"
    assert got["slow-tuning"] == ("not-faster", "tuned is 0.90x untuned; the suite requires 1x")
    assert v.exit_code == 1


def test_per_case_threshold_from_the_suite() -> None:
    """A case whose suite sets a 20% threshold tolerates a 12% slowdown."""
    rng = np.random.default_rng(7)
    cur = frame([row("m-native-b64-tuned", noisy_run(rng, 1.12e-3), gate={"threshold": 0.2})])
    assert status_of(cur, baseline(rng)) == {"m-native-b64-tuned": "unchanged"}


def test_interval_brackets_the_true_ratio() -> None:
    """The bootstrap interval of a 1.10 ratio contains 1.10 and excludes 1."""
    rng = np.random.default_rng(8)
    runs = [np.asarray(noisy_run(rng, 1.0)) for _ in range(10)]
    ci = ratio_interval(np.asarray(noisy_run(rng, 1.10)), runs, 0.01, rng)
    assert ci.low < 1.10 < ci.high and ci.low > 1.0


def write_history(folder: Path, runs: int, rng: np.random.Generator, level: float = 1e-3, cpu=None) -> None:
    for i in range(runs):
        kwargs = {"cpu": cpu} if cpu else {}
        run_file(folder / f"run{i:02d}.json", START + timedelta(days=i),
                 [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, level), speedup=3.0, tuning_s=1)],
                 **kwargs)


def test_cli_exit_codes_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0 on an unchanged run, 1 on a regression (with Markdown and JSON verdicts), 2 on bad input."""
    rng = np.random.default_rng(9)
    write_history(tmp_path / "hist", 10, rng)
    same = run_file(tmp_path / "same.json", START + timedelta(days=20),
                    [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0)])
    slow = run_file(tmp_path / "slow.json", START + timedelta(days=21),
                    [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1.2e-3), speedup=3.0)])
    assert main(["gate", "--current", str(same), "--history", str(tmp_path / "hist")]) == 0
    assert "gate passed" in capsys.readouterr().out
    code = main(["gate", "--current", str(slow), "--history", str(tmp_path / "hist"),
                 "--json", str(tmp_path / "v.json"), "--markdown", str(tmp_path / "v.md")])
    assert code == 1
    assert "regression" in capsys.readouterr().out
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["schema"] == 2 and verdict["passed"] is False and verdict["exit_code"] == 1
    assert verdict["cases"][0]["status"] == "regression" and verdict["cases"][0]["baseline_runs"] == 10
    md = (tmp_path / "v.md").read_text()
    assert md.startswith("### :x: Benchmark gate failed") and "| `m-native-b64-tuned` | **regression** |" in md
    (tmp_path / "broken.json").write_text("{")
    assert main(["gate", "--current", str(tmp_path / "broken.json"), "--history", str(tmp_path / "hist")]) == 2
    assert "error: --current" in capsys.readouterr().err
    assert main(["gate", "--current", str(same)]) == 2


def test_machine_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pinned baseline from another CPU is refused; another CPU's history gives no baseline."""
    rng = np.random.default_rng(10)
    write_history(tmp_path / "other", 5, rng, cpu=CPU_B)
    cur = run_file(tmp_path / "cur.json", START + timedelta(days=30),
                   [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0)])
    assert main(["gate", "--current", str(cur), "--baseline", str(tmp_path / "other" / "run00.json")]) == 2
    assert "timings from different machines are not comparable" in capsys.readouterr().err
    assert main(["gate", "--current", str(cur), "--history", str(tmp_path / "other")]) == 0
    out = capsys.readouterr().out
    assert "no baseline runs for machine" in out and "new" in out


def test_pinned_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--baseline compares with one pinned run on the same machine."""
    rng = np.random.default_rng(11)
    pinned = run_file(tmp_path / "pinned.json", START,
                      [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0)])
    slow = run_file(tmp_path / "slow.json", START + timedelta(days=1),
                    [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1.3e-3), speedup=3.0)])
    assert main(["gate", "--current", str(slow), "--baseline", str(pinned)]) == 1
    assert "regression" in capsys.readouterr().out


def test_ten_percent_slowdown_is_caught_under_one_percent_noise() -> None:
    """Power: with 1% run and round noise, a 10% slowdown is caught in 20 of 20 runs."""
    rng = np.random.default_rng(12)
    caught = sum(
        decide(frame([row("c", noisy_run(rng, 1.10e-3))]), NO_OUTCOMES, baseline(rng, "c")).cases[0].status
        == "regression" for _ in range(20))
    assert caught == 20


def test_onnx_runtime_peer_is_reported_not_gated() -> None:
    """A slower ORT peer is a note about the machine, not a failure, unless the suite says gate.ort: fail."""
    rng = np.random.default_rng(7)
    case = "m-native-ort"
    base = frame([row(case, noisy_run(rng, 1e-3), run=f"r{i:02d}", variant="ort") for i in range(10)])
    slow = noisy_run(rng, 1.3e-3)
    v = decide(frame([row(case, slow, variant="ort")]), NO_OUTCOMES, base)
    assert v.cases[0].status == "reference-slower" and v.exit_code == 0
    assert "ONNX Runtime is the control" in v.cases[0].reason
    strict = decide(frame([row(case, slow, variant="ort", gate={"ort": "fail"})]), NO_OUTCOMES, base)
    assert strict.cases[0].status == "regression" and strict.exit_code == 1


def test_repeats_average_out_run_to_run_noise() -> None:
    """Under 4% run-to-run noise, three repeats of a 10%-slower build are caught far more often than one run
    (seeded: 11 of 20 against 5 of 20)."""
    rng = np.random.default_rng(13)

    def base() -> pd.DataFrame:
        return frame([row("c", noisy_run(rng, 1e-3, run_sd=0.04), run=f"r{i:02d}") for i in range(20)])

    def caught(repeats: int) -> int:
        hits = 0
        for trial in range(20):
            cur = frame([row("c", noisy_run(rng, 1.10e-3, run_sd=0.04), run=f"cur{trial}-{j}")
                         for j in range(repeats)])
            hits += decide(cur, NO_OUTCOMES, base()).cases[0].status == "regression"
        return hits

    single, triple = caught(1), caught(3)
    assert triple >= 2 * single and triple >= single + 5


def test_cli_judges_repeats_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gate --current A B C` pools repeats of one build; repeats from different machines are refused."""
    rng = np.random.default_rng(14)
    write_history(tmp_path / "hist", 10, rng)
    repeats = [run_file(tmp_path / f"rep{j}.json", START + timedelta(days=20, hours=j),
                        [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1.2e-3), speedup=3.0)])
               for j in range(3)]
    assert main(["gate", "--current", *map(str, repeats), "--history", str(tmp_path / "hist"),
                 "--json", str(tmp_path / "v.json")]) == 1
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["current"].startswith("3 repeats: ") and verdict["cases"][0]["status"] == "regression"
    capsys.readouterr()
    other = run_file(tmp_path / "other.json", START + timedelta(days=21),
                     [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0)], cpu=CPU_B)
    assert main(["gate", "--current", str(repeats[0]), str(other), "--history", str(tmp_path / "hist")]) == 2
    assert "repeats must come from one machine" in capsys.readouterr().err


def test_min_sees_through_a_burst_that_moves_the_median() -> None:
    """A burst of interference over 8 of 10 rounds (+30%) moves the median, not the min; a real 10% slowdown
    moves both, and the default min statistic catches it."""
    rng = np.random.default_rng(15)
    base = baseline(rng, "c")
    quiet = noisy_run(rng, 1e-3)
    burst = [x * 1.3 if i < 8 else x for i, x in enumerate(quiet)]
    assert status_of(frame([row("c", burst)]), base) == {"c": "unchanged"}
    by_median = decide(frame([row("c", burst, gate={"statistic": "median"})]), NO_OUTCOMES, base).cases[0]
    assert by_median.status == "regression" and by_median.statistic == "median"
    slower = decide(frame([row("c", [x * 1.10 for x in quiet])]), NO_OUTCOMES, base).cases[0]
    assert slower.status == "regression" and slower.statistic == "min" and "in min" in slower.reason


def _rerun_writing(tmp_path: Path, levels: dict[str, float], rng: np.random.Generator, calls: list):
    """A fake Rerun: writes a confirmation JSON with the flagged cases at the given levels."""
    def rerun(nodes: list[str], attempt: int) -> Path:
        calls.append(nodes)
        cases = [n.split("[")[1].rstrip("]") for n in nodes]
        return run_file(tmp_path / f"confirm-{attempt}.json", START + timedelta(days=40, hours=attempt),
                        [bench_entry(c, "m", "tuned", noisy_run(rng, levels[c]), speedup=3.0) for c in cases],
                        confirms="cur")
    return rerun


def test_confirm_keeps_a_persistent_slowdown_and_drops_a_burst(tmp_path: Path) -> None:
    """Both cases look 20% slower in the run; re-measured twice, only the real one still is: it fails,
    the burst becomes 'unconfirmed' and passes; unflagged cases are not re-measured."""
    rng = np.random.default_rng(16)
    base = pd.concat([baseline(rng, c) for c in ("real", "burst", "fine")])
    cur = frame([row(c, noisy_run(rng, level), fullname=f"s.yaml::test_case[{c}]")
                 for c, level in (("real", 1.2e-3), ("burst", 1.2e-3), ("fine", 1e-3))])
    verdict = decide(cur, NO_OUTCOMES, base)
    assert {c.case: c.status for c in verdict.cases} == {"real": "regression", "burst": "regression",
                                                        "fine": "unchanged"}
    calls: list = []
    confirm(verdict, cur, NO_OUTCOMES, base, _rerun_writing(tmp_path, {"real": 1.2e-3, "burst": 1e-3}, rng, calls), 2)
    got = {c.case: c for c in verdict.cases}
    assert got["real"].status == "regression" and "confirmed by 2 re-measurements" in got["real"].reason
    assert got["burst"].status == "unconfirmed" and "re-measured 2x" in got["burst"].reason
    assert got["fine"].status == "unchanged"
    assert calls == [["s.yaml::test_case[real]", "s.yaml::test_case[burst]"]] * 2
    assert verdict.exit_code == 1 and "2 flagged case(s) 2 time(s): 1 confirmed" in verdict.notes[-1]


def test_failed_remeasurement_keeps_the_regression() -> None:
    """If the re-run cannot measure, the regression stands and the verdict says why."""
    rng = np.random.default_rng(17)
    base = baseline(rng, "c")
    cur = frame([row("c", noisy_run(rng, 1.2e-3), fullname="s.yaml::test_case[c]")])
    verdict = decide(cur, NO_OUTCOMES, base)

    def broken(nodes: list[str], attempt: int) -> Path:
        raise GateError("pytest exited 4 without writing out.json: ERROR: file or directory not found")

    confirm(verdict, cur, NO_OUTCOMES, base, broken, 2)
    assert verdict.cases[0].status == "regression" and verdict.exit_code == 1
    assert verdict.notes == ["re-measurement 1 of 2 failed (pytest exited 4 without writing out.json: ERROR: file "
                             "or directory not found); the regressions stand"]


def test_history_leaves_out_confirmation_runs(tmp_path: Path) -> None:
    """Re-measurements cover a few cases only: history, reports and baselines skip them unless asked."""
    rng = np.random.default_rng(18)
    write_history(tmp_path, 3, rng)
    run_file(tmp_path / "run02.confirm-1.json", START + timedelta(days=2, hours=1),
             [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0)], confirms="run02")
    assert load_history([tmp_path]).runs["run_id"].nunique() == 3
    assert load_history([tmp_path], confirmations=True).runs["run_id"].nunique() == 4


def test_cli_confirm_wires_the_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`gate --confirm 2 --confirm-args ...` re-measures through pytest_rerun and passes on a burst."""
    import bench.history.confirm

    rng = np.random.default_rng(19)
    write_history(tmp_path / "hist", 20, rng)
    slow = run_file(tmp_path / "slow.json", START + timedelta(days=30),
                    [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1.3e-3), speedup=3.0)])
    seen: dict = {}
    calls: list = []

    def fake_pytest_rerun(current, run_id, out_dir, pytest_args, log=None, env=None):
        seen.update(current=current, run_id=run_id, out_dir=out_dir, pytest_args=pytest_args)
        return _rerun_writing(tmp_path, {"m-native-b64-tuned": 1e-3}, rng, calls)

    monkeypatch.setattr(bench.history.confirm, "pytest_rerun", fake_pytest_rerun)
    code = main(["gate", "--current", str(slow), "--history", str(tmp_path / "hist"), "--confirm", "2",
                 "--confirm-args", "--bench-cache-dir /c", "--json", str(tmp_path / "v.json")])
    assert code == 0 and len(calls) == 2
    assert seen["current"] == slow and seen["run_id"].endswith("-slow")
    assert seen["pytest_args"] == "--bench-cache-dir /c"
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["cases"][0]["status"] == "unconfirmed" and verdict["passed"] is True
    assert "unconfirmed" in capsys.readouterr().out


def test_case_missing_from_the_remeasurement_keeps_its_regression(tmp_path: Path) -> None:
    """A flagged case the re-run did not measure (it errored there) is not called confirmed or unconfirmed."""
    rng = np.random.default_rng(20)
    base = pd.concat([baseline(rng, c) for c in ("a", "b")])
    cur = frame([row(c, noisy_run(rng, 1.2e-3), fullname=f"s.yaml::test_case[{c}]") for c in ("a", "b")])
    verdict = decide(cur, NO_OUTCOMES, base)

    def only_a(nodes: list[str], attempt: int) -> Path:
        return run_file(tmp_path / f"c{attempt}.json", START + timedelta(days=40, hours=attempt),
                        [bench_entry("a", "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0)], confirms="cur")

    confirm(verdict, cur, NO_OUTCOMES, base, only_a, 2)
    got = {c.case: c for c in verdict.cases}
    assert got["a"].status == "unconfirmed"
    assert got["b"].status == "regression" and "did not measure it" in got["b"].reason


def test_runs_before_the_thread_fix_are_not_a_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs whose TVM items ran on one thread (no tvm_threads) do not judge runs on two: the first run after
    the fix is 'new', not an improvement; a later slowdown is judged against post-fix runs only."""
    rng = np.random.default_rng(21)
    case = "m-native-b64-tuned"
    for i in range(20):  # before: one thread, twice as slow
        run_file(tmp_path / "hist" / f"old{i:02d}.json", START + timedelta(days=i),
                 [bench_entry(case, "m", "tuned", noisy_run(rng, 2e-3), speedup=3.0)])
    first = run_file(tmp_path / "first.json", START + timedelta(days=30),
                     [bench_entry(case, "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0, threads=2)])
    assert main(["gate", "--current", str(first), "--history", str(tmp_path / "hist")]) == 0
    assert "new" in capsys.readouterr().out
    for i in range(20):  # after the fix
        run_file(tmp_path / "hist" / f"new{i:02d}.json", START + timedelta(days=31 + i),
                 [bench_entry(case, "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0, threads=2)])
    slow = run_file(tmp_path / "slow.json", START + timedelta(days=60),
                    [bench_entry(case, "m", "tuned", noisy_run(rng, 1.15e-3), speedup=3.0, threads=2)])
    assert main(["gate", "--current", str(slow), "--history", str(tmp_path / "hist"), "--json",
                 str(tmp_path / "v.json")]) == 1
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["cases"][0]["status"] == "regression" and verdict["cases"][0]["baseline_runs"] == 20


def test_a_shard_that_never_reported_fails_as_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Shards of one run are judged as one run (not repeats); the cases of a shard that did not report
    are missing, and the verdict says how many shards came in."""
    rng = np.random.default_rng(22)

    def sharded(folder: Path, name: str, day: int, shards: list[int]) -> list[Path]:
        paths = []
        for index in shards:
            case = f"m{index}-native-b64-tuned"
            path = run_file(folder / f"{name}-{index}.json", START + timedelta(days=day, minutes=index),
                            [bench_entry(case, f"m{index}", "tuned", noisy_run(rng, 1e-3), speedup=3.0, threads=2)],
                            cpu=CPU_B if index == 2 else CPU_A)
            data = json.loads(path.read_text())
            data["tvm_bench"] = {"schema": 1, "outcomes": [], "run": {"id": f"{name}", "shard": [index, 2]}}
            path.write_text(json.dumps(data))
            paths.append(path)
        return paths

    for day in range(5):
        sharded(tmp_path / "hist", f"night{day}", day, [1, 2])
    whole = sharded(tmp_path, "tonight", 10, [1, 2])
    assert main(["gate", "--current", *map(str, whole), "--history", str(tmp_path / "hist")]) == 0
    assert "shards 1, 2 of 2" in capsys.readouterr().out
    partial = sharded(tmp_path, "tomorrow", 11, [1])
    assert main(["gate", "--current", *map(str, partial), "--history", str(tmp_path / "hist"), "--json",
                 str(tmp_path / "v.json")]) == 1
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert {c["case"]: c["status"] for c in verdict["cases"]} == {"m1-native-b64-tuned": "unchanged",
                                                                 "m2-native-b64-tuned": "missing"}
    assert any("only 1 of 2 shards of run tomorrow reported" in n for n in verdict["notes"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"window": 0}, "the baseline window must hold at least 1 run (got 0)"),
     ({"alpha": 1.5}, "alpha must be between 0 and 1 (got 1.5)"),
     ({"statistic": "mean"}, "statistic must be one of min, median (got 'mean')")],
)
def test_settings_refuse_what_cannot_be_decided(kwargs: dict, message: str) -> None:
    from bench.history.gate import GateSettings

    with pytest.raises(GateError) as info:
        GateSettings(**kwargs)
    assert str(info.value) == message


def test_settings_override_each_cases_suite_settings() -> None:
    """A frozen settings object carries the overrides: a 15% slowdown passes a 20% threshold."""
    from bench.history.gate import GateSettings

    rng = np.random.default_rng(1)
    cur = frame([row("m-native-b64-tuned", noisy_run(rng, 1.15e-3), gate={"threshold": 0.05})])
    base = baseline(rng)
    assert decide(cur, NO_OUTCOMES, base).cases[0].status == "regression"
    assert decide(cur, NO_OUTCOMES, base, GateSettings(threshold=0.20)).cases[0].status == "unchanged"


def test_statuses_are_one_closed_set() -> None:
    from bench.history.gate import _ICON, FAILING, STATUSES

    assert {"regression", "wrong-answer", "errored", "missing", "not-faster", "memory-grew"} == FAILING
    assert set(_ICON) == set(STATUSES)


def test_gate_has_no_import_cycle_with_confirm() -> None:
    """bench.history.gate is statistics only: importing it loads neither the confirm stage nor the judge."""
    import subprocess
    import sys

    code = ("import sys, bench.history.gate; "
            "print(sorted(m for m in sys.modules if m in ('bench.history.confirm', 'bench.history.judge')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_require_history_stops_on_lost_damaged_or_foreign_history(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--require-history: a nightly job whose history vanished, is damaged or belongs to another machine stops
    with exit 2 and says which; without the flag the same run passes with every case new."""
    rng = np.random.default_rng(3)
    cur = run_file(tmp_path / "cur.json", START + timedelta(days=30),
                   [bench_entry("m-native-b64-tuned", "m", "tuned", noisy_run(rng, 1e-3), speedup=3.0)])
    args = ["gate", "--current", str(cur), "--require-history", "--history"]
    assert main([*args, str(tmp_path / "gone")]) == 2
    assert "the history is lost" in capsys.readouterr().err
    write_history(tmp_path / "other", 5, rng, cpu=CPU_B)
    assert main([*args, str(tmp_path / "other")]) == 2
    assert "no earlier run of these cases on this machine" in capsys.readouterr().err
    assert main(["gate", "--current", str(cur), "--history", str(tmp_path / "other")]) == 0
    write_history(tmp_path / "hist", 5, rng)
    (tmp_path / "hist" / "run03.json").write_text('{"benchmarks": [')
    assert main([*args, str(tmp_path / "hist")]) == 2
    err = capsys.readouterr().err
    assert "1 damaged file(s)" in err and "run03.json" in err and "quarantine" in err
    assert main([*args, str(tmp_path / "hist")]) == 0  # the damaged file is set aside; 4 runs remain


def test_each_case_says_the_smallest_slowdown_its_history_can_show() -> None:
    """A case whose runs spread 10% cannot show a slowdown of half its smallest visible one (not flagged;
    named in a note) but shows 1.5x of it; a quiet case's smallest visible slowdown is under its 5% threshold
    and it is not named."""
    rng = np.random.default_rng(5)
    base = pd.concat([
        frame([row("noisy", noisy_run(rng, 1e-3, run_sd=0.10), run=f"r{i:02d}") for i in range(20)]),
        frame([row("quiet", noisy_run(rng, 1e-3, run_sd=0.005), run=f"r{i:02d}") for i in range(20)]),
    ])

    def judge(slower: float) -> tuple[dict[str, gate.CaseVerdict], list[str]]:
        level = float(np.median([min(s) for s in base.loc[base["case"] == "noisy", "samples_s"]])) * (1 + slower)
        cur = frame([row("noisy", [level] * 10), row("quiet", noisy_run(rng, 1e-3))])
        verdict = decide(cur, NO_OUTCOMES, base)
        return {c.case: c for c in verdict.cases}, verdict.notes

    cases, notes = judge(0.0)
    noisy, quiet = cases["noisy"], cases["quiet"]
    assert noisy.visible is not None and 0.2 < noisy.visible < 0.8  # about exp(t(0.0025, 19) * 10%) - 1
    assert quiet.visible is not None and quiet.visible < 0.05
    assert noisy.status == "unchanged" and f"cannot see under {noisy.visible:+.1%} here" in noisy.reason
    assert quiet.status == "unchanged" and "cannot see" not in quiet.reason
    assert len(notes) == 1 and f"noisy {noisy.visible:+.1%}" in notes[0] and "quiet" not in notes[0]
    assert judge(noisy.visible / 2)[0]["noisy"].status == "unchanged"
    assert judge(noisy.visible * 1.5)[0]["noisy"].status == "regression"
    md = gate.render_markdown(decide(frame([row("quiet", noisy_run(rng, 1e-3))]), NO_OUTCOMES, base))
    assert "| smallest visible |" in md and "| +" in md


def _paired(ratio: float, low: float, high: float, pairs: int = 40, identical: bool = False) -> dict:
    return {"ratio": ratio, "low": low, "high": high, "pairs": pairs, "identical": identical,
            "baseline": {"run_id": "20261201T020000-night", "commit": "abcdef0123456"}}


def test_a_case_timed_against_its_baseline_build_is_decided_by_its_pairs() -> None:
    """A paired ratio decides the case whatever its history says, and the verdict says so (basis "paired"):
    +6% (CI +4..+8%) regresses although no earlier run exists; an identical build cannot be slower; a case
    without pairs falls back to its history, or is new without one."""
    rng = np.random.default_rng(0)
    current = frame([
        row("slow-native-b64-tuned", noisy_run(rng, 1e-3), vs_baseline=_paired(1.06, 1.04, 1.08)),
        row("same-native-b64-tuned", noisy_run(rng, 1e-3), vs_baseline=_paired(1.0, 1.0, 1.0, 0, identical=True)),
        row("calm-native-b64-tuned", noisy_run(rng, 1e-3), vs_baseline=_paired(1.004, 0.995, 1.012)),
        row("m-native-b64-tuned", noisy_run(rng, 1e-3), vs_baseline=None),
        row("new-native-b64-tuned", noisy_run(rng, 1e-3)),
    ])
    verdict = decide(current, NO_OUTCOMES, baseline(rng))
    cases = {c.case: c for c in verdict.cases}
    assert {k: (c.status, c.basis) for k, c in cases.items()} == {
        "slow-native-b64-tuned": ("regression", "paired"), "same-native-b64-tuned": ("unchanged", "paired"),
        "calm-native-b64-tuned": ("unchanged", "paired"), "m-native-b64-tuned": ("unchanged", "history"),
        "new-native-b64-tuned": ("new", None)}
    assert cases["slow-native-b64-tuned"].reason == (
        "slower by +6.0% against its baseline build (run 20261201T020000-night, commit abcdef0123) (CI +4.0% .. "
        "+8.0%, 40 pairs, threshold 5%)")
    assert cases["same-native-b64-tuned"].reason.startswith("byte-identical to its baseline build")
    assert cases["calm-native-b64-tuned"].visible == pytest.approx(0.0085, abs=5e-4)
    markdown = gate.render_markdown(verdict)
    assert "| `slow-native-b64-tuned` | **regression** | paired (40 pairs) |" in markdown


def test_a_paired_interval_is_recomputed_at_the_cases_share_of_alpha() -> None:
    """With the per-pair seconds on record, the gate recomputes the interval at alpha / cases (as the history
    path splits it): pairs whose worker-side 1% interval just clears 1 (slower: +3.1%, CI +0.4 .. +5.7%, like an
    A/A false alarm seen once in 20 tiny-CNN processes) are within once the run's four cases share alpha."""
    from bench.stages import paired

    rng = np.random.default_rng(1)
    logs = rng.normal(0.033, 0.09, 60)
    cur = [float(1e-4 * np.exp(x)) for x in logs]
    base = [1e-4] * 60
    worker = paired.estimate(logs, 0.01)
    split = paired.estimate(logs, 0.01 / 4)
    assert worker.low > 1 > split.low and paired.decide(worker, 0.05) == "slower"
    record = {"ratio": worker.ratio, "low": worker.low, "high": worker.high, "pairs": 60, "identical": False,
              "current_s": cur, "baseline_s": base, "baseline": {}}
    current = frame([row(f"m{i}-native-b64-tuned", noisy_run(rng, 1e-3), vs_baseline=record) for i in range(4)])
    [first, *_] = decide(current, NO_OUTCOMES, current.iloc[:0]).cases
    assert (first.ci_low, first.ci_high) == pytest.approx((split.low, split.high))
    assert first.status == "unchanged" and first.basis == "paired"


def test_a_run_on_a_machine_of_another_speed_behind_the_same_identity_is_noted() -> None:
    """A Zen 4 and a Zen 5 VM that report one CPU identity differ by 1.5x in their measured peak: the verdict
    says so; a few percent between one VM's probes is nothing to note."""
    rng = np.random.default_rng(3)
    base = baseline(rng)
    base["peak_gflops"] = [215.0 + i for i in range(len(base))]
    for peak, noted in ((340.0, True), (228.0, False), (None, False)):
        current = frame([row("m-native-b64-tuned", noisy_run(rng, 1e-3), peak_gflops=peak)])
        notes = decide(current, NO_OUTCOMES, base).notes
        assert any("measured peak (340 GFLOP/s) is +55% off its baseline runs' (220)" in n for n in notes) == noted, \
            notes


def test_exact_memory_growth_fails_and_names_the_figure() -> None:
    """A build's library or the model's weights growing past gate.memory_threshold (1% by default) over the
    latest baseline run fails the case, naming the figure; a slower case keeps its status and gets the reason."""
    rng = np.random.default_rng(3)
    case = "m-native-b64-tuned"
    base = baseline(rng, case)
    base["library"] = [{"bytes": 100_000}] * len(base)
    base["weight_bytes"] = 4_000
    base["tuning_cached"], base["tuning_key"] = True, "k1"

    def run(level: float, library: int, gate: dict[str, float] | None = None, cached: bool = True,
            key: str = "k1") -> pd.DataFrame:
        return frame([row(case, noisy_run(rng, level), library={"bytes": library}, weight_bytes=4_000, gate=gate,
                          tuning_cached=cached, tuning_key=key)])

    assert status_of(run(1e-3, 100_500), base) == {case: "unchanged"}  # +0.5%
    grown = decide(run(1e-3, 103_000), NO_OUTCOMES, base)
    assert grown.cases[0].status == "memory-grew" and grown.exit_code == 1
    assert grown.cases[0].reason == "memory grew: library 100,000 -> 103,000 bytes (+3.0%; exact, " \
                                    "gate.memory_threshold 1%)"
    assert status_of(run(1e-3, 103_000, gate={"memory_threshold": 0.05}), base) == {case: "unchanged"}
    slower = decide(run(1.3e-3, 103_000), NO_OUTCOMES, base).cases[0]
    assert slower.status == "regression" and slower.reason.endswith("library 100,000 -> 103,000 bytes (+3.0%; "
                                                                    "exact, gate.memory_threshold 1%)")
    # a tuned build made from other records (tuned again, or other tuning settings) has other code
    assert status_of(run(1e-3, 103_000, cached=False), base) == {case: "unchanged"}
    assert status_of(run(1e-3, 103_000, key="k2"), base) == {case: "unchanged"}


def test_planned_memory_growth_fails_and_a_tuned_build_is_compared_on_the_same_records() -> None:
    """The build's planned memory, constants and kernel workspace are exact: an untuned build's are always
    compared; a tuned build's only when its kernels come from the baseline's tuning records (its schedules
    rewrite weight layouts and make the workspaces)."""
    rng = np.random.default_rng(4)
    plan = {"planned_bytes": 8_000_000, "constant_bytes": 1_000, "workspace_bytes": 50_000}

    def run(variant: str, cached: bool, **changed: int) -> CaseVerdict:
        case = f"m-native-{'b64-' if variant == 'tuned' else ''}{variant}"
        base = frame([row(case, noisy_run(rng, 1e-3), run=f"r{i}", variant=variant) for i in range(10)])
        base["planned_memory"] = [plan] * len(base)
        base["tuning_cached"], base["tuning_key"] = True, "k1"
        return decide(frame([row(case, noisy_run(rng, 1e-3), planned_memory={**plan, **changed}, tuning_key="k1",
                                 tuning_cached=cached, variant=variant)]), NO_OUTCOMES, base).cases[0]

    assert run("untuned", False).status == "unchanged"
    grown = run("untuned", False, planned_bytes=8_200_000)
    assert grown.status == "memory-grew"
    assert grown.reason == "memory grew: planned memory 8,000,000 -> 8,200,000 bytes (+2.5%; exact, " \
                           "gate.memory_threshold 1%)"
    assert run("tuned", False, planned_bytes=8_200_000, workspace_bytes=80_000).status == "unchanged"
    both = run("tuned", True, planned_bytes=8_200_000, workspace_bytes=80_000).reason
    assert "planned memory 8,000,000 -> 8,200,000 bytes" in both and "kernel workspace 50,000 -> 80,000" in both


def test_a_stage_peak_grown_past_its_spread_fails_and_names_the_stage() -> None:
    """Sampled peaks are judged against the median of the baseline runs' peaks in the same stage, with
    gate.peak_memory_threshold (10% by default). A run in which an item tuned is compared only with runs that
    also tuned, and a run that tuned nothing only with those that did not: the tuning's processes double the
    tune stage's peak and leave the worker bigger for every later item of the run, untuned ones too."""
    rng = np.random.default_rng(5)
    tuned, untuned = "m-native-b64-tuned", "n-native-untuned"

    def memory(build: float, tune: float | None, measure: float) -> dict:
        stages = {"build": build, "tune": tune, "measure": measure}
        return {"sampled_every_s": 0.25, "stages": {n: {"start_mib": 300.0, "peak_mib": p} for n, p in
                                                    stages.items() if p is not None}}

    rows = []
    for i in range(10):  # the first run tuned, the others reused its records
        rows.append(row(tuned, noisy_run(rng, 1e-3), run=f"r{i:02d}", tuning_cached=i > 0,
                        memory=memory(360, 1150, 420) if i == 0 else memory(360 + i, 370 + i, 420 + i)))
        rows.append(row(untuned, noisy_run(rng, 1e-3), run=f"r{i:02d}", variant="untuned",
                        memory=memory(600 if i == 0 else 500, None, 640 if i == 0 else 540)))
    base = frame(rows)

    def run(cached: bool, mem: dict, untuned_measure: float = 540, gate: dict | None = None) -> dict[str, CaseVerdict]:
        current = frame([row(tuned, noisy_run(rng, 1e-3), memory=mem, tuning_cached=cached, gate=gate),
                         row(untuned, noisy_run(rng, 1e-3), variant="untuned",
                             memory=memory(500 if cached else 600, None, untuned_measure))])
        # as a session gates itself at its end: its rows have no run id yet
        return {v.case: v for v in decide(current.drop(columns="run_id"), NO_OUTCOMES, base).cases}

    assert {c: v.status for c, v in run(True, memory(370, 380, 430)).items()} == \
        {tuned: "unchanged", untuned: "unchanged"}
    # a cold run, against the cold run: the tune stage and the untuned item's stages after it are higher
    assert {c: v.status for c, v in run(False, memory(370, 1160, 430), 640).items()} == \
        {tuned: "unchanged", untuned: "unchanged"}
    grown = run(True, memory(370, 380, 520))[tuned]
    assert grown.status == "memory-grew"
    assert grown.reason == ("memory grew: measure stage's peak 425 -> 520 MiB (+22.4% over the median of 9 run(s); "
                            "sampled, gate.peak_memory_threshold 10%)")
    assert run(True, memory(370, 380, 520), gate={"peak_memory_threshold": 0.3})[tuned].status == "unchanged"
    leaked = run(True, memory(370, 380, 430), untuned_measure=640)[untuned]
    assert leaked.status == "memory-grew" and leaked.reason.startswith("memory grew: measure stage's peak 540 -> 640")


def test_a_comparison_across_a_tvm_change_says_so() -> None:
    """The case's baseline runs ran TVM 0.26.0 and this run 0.27.0: the verdict and a note name the change;
    the ONNX Runtime item runs no TVM and is not marked; a run on the same TVM gets no note."""
    rng = np.random.default_rng(7)
    base = frame([row(c, noisy_run(rng, 1e-3), run=f"r{i:02d}", tvm_label="0.26.0", variant=v)
                  for i in range(8) for c, v in (("m-native-b64-tuned", "tuned"), ("m-native-ort", "ort"))])
    cur = frame([row(c, noisy_run(rng, 1e-3), tvm_label="0.27.0", variant=v)
                 for c, v in (("m-native-b64-tuned", "tuned"), ("m-native-ort", "ort"))])
    verdict = decide(cur, NO_OUTCOMES, base)
    by_case = {c.case: c for c in verdict.cases}
    assert by_case["m-native-b64-tuned"].tvm_change == "0.26.0 -> 0.27.0"
    assert by_case["m-native-b64-tuned"].reason.endswith("across a TVM change (0.26.0 -> 0.27.0)")
    assert by_case["m-native-ort"].tvm_change is None
    assert any(n.startswith("1 case(s) are compared across a TVM change (0.26.0 -> 0.27.0)") for n in verdict.notes)
    same = decide(cur.assign(tvm_label="0.26.0"), NO_OUTCOMES, base)
    assert all(c.tvm_change is None for c in same.cases) and not any("TVM" in n for n in same.notes)


def test_the_verdict_names_the_tvm_under_test() -> None:
    rng = np.random.default_rng(8)
    cur = frame([row("m-native-b64-tuned", noisy_run(rng, 1e-3), tvm_label="0.26.0"),
                 row("m-native-ort", noisy_run(rng, 1e-3), tvm_label="0.26.0", variant="ort")])
    verdict = decide(cur, NO_OUTCOMES, baseline(rng))
    assert verdict.tvms == ["0.26.0"] and json.loads(verdict.to_json())["tvms"] == ["0.26.0"]
    assert "TVM under test `0.26.0`" in gate.render_markdown(verdict)
    assert gate.render_text(verdict).splitlines()[0].endswith(", TVM 0.26.0")
