"""worker_redirect_stdouts / worker_redirect_stdouts_level through the CLI: print() in a
task is a log record of celery.redirected at the level (WARNING by default), in the
prefork child and on threads; off, it is the bare line; the banner stays plain."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Harness


def _line(log: str, text: str) -> str:
    found = [line for line in log.splitlines() if text in line]
    assert found, f"{text!r} not in the worker's output:\n{log}"
    return found[0]


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_print_in_a_task_is_logged_at_warning(sqlite_harness: Harness, pool: str) -> None:
    h = sqlite_harness
    worker = h.worker("-P", pool, "-c", "1")
    assert h.client.send_task("shout", ("one",)).get(timeout=20) == "one"
    worker.stop()
    line = _line(worker.log, "shouted one")
    assert "WARNING/" in line and line.startswith("[")  # worker_log_format's record
    assert "[tasks]" in worker.log and "WARNING" not in _line(worker.log, "[tasks]")


def test_the_level_is_worker_redirect_stdouts_level(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "solo", CELERIAC_WORKER_REDIRECT_STDOUTS_LEVEL="ERROR")
    assert h.client.send_task("shout", ("two",)).get(timeout=20) == "two"
    worker.stop()
    assert "ERROR/" in _line(worker.log, "shouted two")


def test_off_print_writes_the_bare_line(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "solo", CELERIAC_WORKER_REDIRECT_STDOUTS="false")
    assert h.client.send_task("shout", ("three",)).get(timeout=20) == "three"
    worker.stop()
    assert _line(worker.log, "shouted three") == "shouted three"
