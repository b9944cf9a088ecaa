"""Under ``-n 2 --dist loadgroup`` the modules that share one costly run go to one worker whole
(tests/conftest.py), on the installed pytest and pytest-xdist."""

from __future__ import annotations

import re

import pytest

from tests.helpers import REPO

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow


def test_each_shared_run_module_goes_to_one_worker(pytester: pytest.Pytester) -> None:
    """Six tests of each ONE_WORKER module run on one worker each, beside a module whose tests go where xdist
    sends them (without the scheduler, each test goes alone and both workers take some of a module's)."""
    from tests.conftest import ONE_WORKER

    pytester.makeconftest((REPO / "tests" / "conftest.py").read_text())
    tests = "import pytest, time\n@pytest.mark.parametrize('i', range(6))\ndef test_t(i):\n    time.sleep(0.2)\n"
    for module in (*ONE_WORKER, "tests/unit/test_other.py"):
        path = pytester.path / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tests)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6 * (len(ONE_WORKER) + 1))
    workers: dict[str, set[str]] = {}
    for worker, module in re.findall(r"\[(gw\d)\] .*PASSED (\S+?)::", result.stdout.str()):
        workers.setdefault(module, set()).add(worker)
    assert all(len(workers[module]) == 1 for module in ONE_WORKER), workers


def test_every_one_worker_module_exists() -> None:
    """A renamed module would silently lose its group."""
    from tests.conftest import ONE_WORKER, work_unit

    for module, group in ONE_WORKER.items():
        assert (REPO / module).is_file(), module
        assert work_unit(f"{module}::test_a") == work_unit(f"{module}::test_b[x@y]") == group
    assert work_unit("tests/unit/test_gate.py::test_x") is None
