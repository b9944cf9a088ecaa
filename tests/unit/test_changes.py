"""Change points: steps found where they are, none in steady noise, with runs and commits around them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.__main__ import main
from bench.errors import ChangesError
from bench.history.changes import detect, find_changes
from bench.history.gate import GateSettings
from bench.history.judge import gate_files
from bench.history.load import load_history
from bench.testing.results import bench_entry, run_file


def noisy(n: int, sd: float, seed: int, step_at: int | None = None, step: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = 0.01 * np.exp(rng.normal(0, sd, n))
    if step_at is not None:
        y[step_at:] *= 1 + step
    return y


@pytest.mark.parametrize("seed", range(5))
def test_a_five_percent_step_is_found_at_its_run(seed: int) -> None:
    at = 20 + 3 * seed
    shifts = detect(noisy(60, 0.01, seed, at, 0.05))
    assert len(shifts) == 1
    assert abs(shifts[0].index - at) <= 1
    assert 0.03 < shifts[0].change < 0.07 and shifts[0].pvalue < 0.01


def test_steady_noise_and_bursts_have_no_change_points() -> None:
    """A/A: 1% noise plus a few runs slowed 30% by interference is not a step."""
    y = noisy(60, 0.01, 7)
    y[[10, 11, 33, 50]] *= 1.3
    assert detect(y) == []


def test_small_steps_are_ignored_and_settings_checked() -> None:
    assert detect(noisy(60, 0.002, 1, 30, 0.01)) == []  # 1%: significant, but under min_change
    assert [s.index for s in detect(noisy(60, 0.002, 1, 30, 0.01), min_change=0.005)] == [30]
    assert detect([0.01] * 5) == []  # too short to show a step
    with pytest.raises(ChangesError, match="positive"):
        detect([0.01] * 10 + [0.0])
    with pytest.raises(ChangesError, match="p-value"):
        detect(noisy(20, 0.01, 0), max_pvalue=1.5)


def history(folder: Path, runs: int = 40, step_at: int = 25, step: float = 0.10, seed: int = 0) -> None:
    """One tuned case that steps at ``step_at`` and an untuned one that does not; commit c<run>."""
    tuned, untuned = noisy(runs, 0.01, seed, step_at, step), noisy(runs, 0.01, seed + 1)
    rng = np.random.default_rng(seed)
    for r in range(runs):
        rounds_t = list(tuned[r] * (1 + 0.01 * rng.random(5)))
        rounds_u = list(untuned[r] * 5 * (1 + 0.01 * rng.random(5)))
        run_file(folder / f"run{r:03d}.json", datetime(2026, 10, 1) + timedelta(days=r),
                 [bench_entry("m-native-b64-tuned", "m", "tuned", rounds_t),
                  bench_entry("m-native-untuned", "m", "untuned", rounds_u)], commit=f"c{r:03d}")


def test_find_changes_names_runs_and_commits(tmp_path: Path) -> None:
    history(tmp_path)
    points = find_changes(load_history([tmp_path]).results)
    assert len(points) == 1
    p = points[0]
    assert p.case == "m-native-b64-tuned" and p.direction == "slower" and p.statistic == "min"
    assert (p.commit_before, p.commit_after, p.commit_range) == ("c024", "c025", "c024..c025")
    assert p.run_before.endswith("run024") and p.run_after.endswith("run025")
    assert p.runs_after == 15 and 0.08 < p.change < 0.12
    assert find_changes(load_history([tmp_path]).results, since=datetime(2026, 10, 27)) == []


def test_changes_command_table_json_since_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history(tmp_path / "h")
    assert main(["changes", str(tmp_path / "h")]) == 0
    out = capsys.readouterr().out
    assert "1 change point(s) in 2 case(s) over 40 run(s)" in out and "c024..c025" in out and "+1" in out
    assert main(["changes", str(tmp_path / "h"), "--json", "-k", "tuned"]) == 0
    [point] = json.loads(capsys.readouterr().out)
    assert point["run_after"].endswith("run025") and point["confidence"] > 0.99
    assert main(["changes", str(tmp_path / "h"), "--since", "2026-10-27"]) == 0
    assert "no change points in 2 case(s)" in capsys.readouterr().out
    assert main(["changes", str(tmp_path / "empty")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["changes", str(tmp_path / "h"), "--since", "last tuesday"])
    assert "expected a date like 2026-11-25" in capsys.readouterr().err


def test_gate_names_the_step_a_regression_belongs_to(tmp_path: Path) -> None:
    """The second night of a 10% slowdown fails the gate, which says where the step began."""
    history(tmp_path / "h", runs=34, step_at=32)
    current = tmp_path / "h" / "run033.json"
    verdict = gate_files(current, [tmp_path / "h"], settings=GateSettings(window=20))
    case = {c.case: c for c in verdict.cases}["m-native-b64-tuned"]
    assert case.status == "regression"
    assert case.change_point is not None and case.change_point["commit_range"] == "c031..c032"
    assert case.change_point["run_after"].endswith("run032") and case.change_point["runs_after"] == 2
    assert '"change_point"' in verdict.to_json()
    from bench.history.gate import render_markdown, render_text

    assert "c031..c032" in render_text(verdict) and "c031..c032" in render_markdown(verdict)


def test_a_step_names_the_tvm_on_both_sides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs 0-24 on TVM 0.26.0, 25-39 on 0.27.0, with the step at 25: the point names both TVMs."""
    rng = np.random.default_rng(3)
    for r in range(40):
        tvm = "0.26.0" if r < 25 else "0.27.0"
        level = 1e-3 * (1.1 if r >= 25 else 1.0)
        run_file(tmp_path / f"run{r:03d}.json", datetime(2026, 10, 1) + timedelta(days=r),
                 [bench_entry("m-native-b64-tuned", "m", "tuned", list(level * (1 + 0.01 * rng.random(5))),
                              tvm=tvm)], commit=f"c{r:03d}")
    [point] = find_changes(load_history([tmp_path]).results)
    assert (point.tvm_before, point.tvm_after, point.tvm_range) == ("0.26.0", "0.27.0", "0.26.0 -> 0.27.0")
    assert point.tvm_changed and point.to_dict()["tvm_range"] == "0.26.0 -> 0.27.0"
    assert main(["changes", str(tmp_path)]) == 0
    assert "0.26.0 -> 0.27.0" in capsys.readouterr().out
