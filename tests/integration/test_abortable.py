"""celeriac.contrib.abortable across processes: a client aborts a task a real worker
(CLI, SQLite broker, a prefork child) is running; the task sees ABORTED in the result
backend at its next is_aborted() and returns early."""

from __future__ import annotations

from celeriac.contrib.abortable import ABORTED, AbortableAsyncResult
from tests.integration.conftest import Harness


def test_a_running_task_stops_after_the_client_aborts_it(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.worker("-c", "1")
    sent = h.client.send_task("abortable_loop", (60.0,))
    result = AbortableAsyncResult(sent.id, app=h.client)
    h.wait_for_record("abortable started")
    assert not result.is_aborted()
    result.abort()
    assert result.is_aborted() and result.state == ABORTED
    assert result.get(timeout=20) == "aborted"  # else it polls on for 60 s
    assert h.lines("abortable aborted") == [f"abortable aborted {sent.id}"]
    assert result.state == "SUCCESS" and not result.is_aborted()
    result.abort()  # finished: its result stays
    assert AbortableAsyncResult(sent.id, app=h.client).get(timeout=5) == "aborted"
