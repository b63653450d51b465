"""The ``soak`` marker for the whole suite: long runs (repeated kills, link faults over
thousands of tasks, more schedulers than the contract needs) are skipped unless ``-m soak``
selects them (``make soak``, ``make chaos-soak``), so ``make test`` stays within CI's time.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long run, only with -m soak (make soak)")


def soak_selected(config: pytest.Config) -> bool:
    """True when ``-m`` asks for soak tests (``-m soak``, not ``-m "not soak"``)."""
    expr = str(config.getoption("markexpr") or "")
    return "soak" in expr and "not soak" not in expr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if soak_selected(config):
        return
    skip = pytest.mark.skip(reason="soak test: run with -m soak (make soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
