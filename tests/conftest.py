"""Warnings are errors in the harness's own tests (not in users' suite runs); ``-m "not tvm"`` is honest;
the tests run under pytest-xdist (``-n 2``), the pytest runs they start do not.

Every test that needs Apache TVM carries the ``tvm`` marker, so ``pytest tests/ -m "not tvm"`` runs the
rest on a machine without it. To keep that true, ``import tvm`` fails inside every unmarked test, in
every run: a run that deselects ``tvm`` blocks it for the whole process, and a full run hides TVM from
each unmarked test while it runs (setup, call and teardown). An unmarked test that reaches TVM fails
loudly in the full run too, instead of passing by luck, without running the tests twice.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

#: Modules whose tests read one costly run made by a session fixture (the e2e suite, the RPC fleet): under
#: ``-n 2 --dist loadgroup`` each goes to one worker whole, so the run is made once.
ONE_WORKER = {"tests/integration/test_e2e.py": "e2e", "tests/integration/test_rpc.py": "fleet"}


def work_unit(nodeid: str) -> str | None:
    """The unit a test is scheduled in: its module's group, or None for xdist's own rule (one test a unit)."""
    return ONE_WORKER.get(nodeid.split("::", 1)[0])


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with groups by module path. xdist's ``xdist_group`` mark travels as an ``@group``
    suffix it writes into node ids, which pytest 9.2's structured ids drop without a word (pytest-xdist#1386):
    every test became its own unit and the shared runs were made once per worker."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ByModule(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid) or super()._split_scope(nodeid)

    return ByModule(config, log)


def _is_tvm(name: str) -> bool:
    return name == "tvm" or name.startswith("tvm.")


class _NoTvm(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if _is_tvm(name):
            raise ImportError(f"test imports {name} but is not marked 'tvm' (pytest -m 'not tvm' deselects "
                              "TVM tests): add @pytest.mark.tvm")
        return None


def pytest_configure(config: pytest.Config) -> None:
    if "not tvm" in (config.option.markexpr or "") and "tvm" not in sys.modules:
        sys.meta_path.insert(0, _NoTvm())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """An unmarked test runs as it would under ``-m "not tvm"``: TVM's modules are out of ``sys.modules``
    (the harness imports TVM inside functions, so every way in goes through the import system) and
    importing them fails; both are put back after the test."""
    if item.get_closest_marker("tvm") is not None:
        yield
        return
    hidden = {name: sys.modules.pop(name) for name in [n for n in sys.modules if _is_tvm(n)]}
    blocker = _NoTvm()
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)
        for name in [n for n in sys.modules if _is_tvm(n)]:  # half-imported by the failing test
            del sys.modules[name]
        sys.modules.update(hidden)


@pytest.fixture(scope="session", autouse=True)
def _not_an_xdist_worker_below() -> Iterator[None]:
    """Under ``-n``, the pytest runs a test starts (pytester's or a subprocess) would inherit xdist's worker
    variables, and pytest-benchmark disables itself where it sees them: they are this process's, not theirs.
    Session-scoped, so module fixtures that start pytest runs come after it."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            patch.delenv(name, raising=False)
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests" in item.path.parts:
            item.add_marker(pytest.mark.filterwarnings("error"), append=False)
