"""Running the harness's pytest as a user would, from a test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pytest_command(*args: str | Path, cwd: Path) -> list[str]:
    """A pytest run of the harness as a user would start it, from ``cwd``, with this repo's settings."""
    return [sys.executable, "-m", "pytest", "-p", "bench.plugin", "-p", "no:cacheprovider",
            "-c", str(REPO / "pyproject.toml"), "--rootdir", str(cwd), *map(str, args)]


def run_pytest(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pytest_command(*args, cwd=cwd), cwd=cwd, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL, env=env)
