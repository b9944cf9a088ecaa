"""The one test function every suite item is an instance of (see plugin.SuiteModule)."""

from __future__ import annotations

from typing import Any

from bench.plugin import run_case


def test_case(bench_case: Any, benchmark: Any, bench_session: Any) -> None:
    run_case(bench_case, benchmark, bench_session)
