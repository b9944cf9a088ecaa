"""MetaSchedule plumbing that needs no TVM: the environment the search's cost model runs in."""

from __future__ import annotations

import os
import sys
import types

import pytest

from bench.stages import metaschedule


def test_the_cost_model_sleeps_when_idle_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before XGBoost loads, its OpenMP threads are set to wait passively; a user's own OMP_WAIT_POLICY stands;
    once XGBoost is loaded nothing can change, and the returned policy says so (None)."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "unset below")  # so that the test's own changes are undone
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.delitem(sys.modules, "xgboost", raising=False)
    monkeypatch.setattr(metaschedule, "_IN_FORCE", None)
    assert metaschedule.quiet_cost_model() == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert metaschedule.quiet_cost_model() == {"OMP_WAIT_POLICY": "ACTIVE"}

    # XGBoost loaded after that call: a later tuning in the process reports what it loaded with
    monkeypatch.setitem(sys.modules, "xgboost", types.ModuleType("xgboost"))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert metaschedule.quiet_cost_model() == {"OMP_WAIT_POLICY": "ACTIVE"}

    # loaded by something else first: unknown, and the environment is left alone
    monkeypatch.setattr(metaschedule, "_IN_FORCE", None)
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert metaschedule.quiet_cost_model() == {"OMP_WAIT_POLICY": None}
    assert "OMP_WAIT_POLICY" not in os.environ
