"""``pytest -m "not tvm"`` runs the harness's tests that do not need TVM, and only those.

The guard is tests/conftest.py's: every unmarked test runs with TVM out of reach, in the full run as under
``-m "not tvm"``, so the full run itself proves each unmarked test needs no TVM. What is left to check here
is that the guard bites, and that the selection collects (a test module that imports TVM at its top fails
there, before any test runs).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

pytest_plugins = ["pytester"]

GUARDED = """
import sys

import pytest


def test_unmarked_reaches_tvm():
    import tvm  # noqa: F401


@pytest.mark.tvm
def test_marked_reaches_tvm():
    import tvm

    assert tvm.__version__


def test_unmarked_after_a_marked_one():
    assert "tvm" not in sys.modules
    import tvm.runtime  # noqa: F401
"""


@pytest.mark.tvm
def test_unmarked_tests_cannot_reach_tvm_in_a_full_run(pytester: pytest.Pytester) -> None:
    """Without -m, an unmarked test that imports TVM fails with the fix in its message, a marked one gets it,
    and the next unmarked one is blocked again."""
    pytester.makeconftest((REPO / "tests" / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    tvm: needs TVM\n")
    pytester.makepyfile(test_guarded=GUARDED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*test imports tvm but is not marked 'tvm'*add @pytest.mark.tvm*",
                                 "FAILED test_guarded.py::test_unmarked_reaches_tvm - ImportError: test*",
                                 "FAILED test_guarded.py::test_unmarked_after_a_marked_one - ImportError: test*"])


def test_not_tvm_selection_collects_without_touching_tvm() -> None:
    """Under -m "not tvm" importing TVM fails in the whole process: every test module still collects."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests", "-m", "not tvm", "--collect-only", "-q", "-p",
                           "no:cacheprovider"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " tests collected" in proc.stdout and " deselected" in proc.stdout, proc.stdout[-500:]
