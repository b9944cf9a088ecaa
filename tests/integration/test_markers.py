"""``pytest -m "not tvm"`` runs the harness's tests that do not need TVM, and only those."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


def test_not_tvm_selection_runs_without_touching_tvm() -> None:
    """tests/conftest.py makes `import tvm` fail under -m "not tvm", so an unmarked TVM test would fail here."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/unit", "-m", "not tvm", "-q", "-p",
                           "no:cacheprovider"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and " deselected" in proc.stdout
