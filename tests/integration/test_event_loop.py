"""The worker runs its loop (and async tasks) on uvloop when asked or installed, on
asyncio's own loop when CELERIAC_EVENT_LOOP=asyncio, and refuses a bad choice in one line."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Harness


@pytest.mark.parametrize(("choice", "module"), [("uvloop", "uvloop"),
                                                ("asyncio", "asyncio.unix_events")])
def test_async_tasks_run_on_the_chosen_loop(sqlite_harness: Harness, choice: str,
                                            module: str) -> None:
    pytest.importorskip("uvloop")
    h = sqlite_harness
    h.client.conf.result_backend = h.broker_url
    h.worker("-P", "solo", CELERIAC_EVENT_LOOP=choice)
    assert h.client.send_task("loop_kind").get(timeout=20) == module
    assert h.client.send_task("aadd", (2, 3)).get(timeout=20) == 5


def test_a_bad_loop_choice_is_one_line(sqlite_harness: Harness) -> None:
    worker = sqlite_harness.worker(ready=False, CELERIAC_EVENT_LOOP="tokio")
    assert worker.proc.wait(30) != 0
    assert "CELERIAC_EVENT_LOOP='tokio': use one of auto, uvloop, asyncio" in worker.log
    assert "Traceback" not in worker.log
