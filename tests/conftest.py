"""Warnings are errors in the harness's own tests (not in users' suite runs)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests" in item.path.parts:
            item.add_marker(pytest.mark.filterwarnings("error"), append=False)
