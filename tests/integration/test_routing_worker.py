"""-Q and -X through a real worker: without -Q it consumes every queue task_queues
declares, -X leaves some out; with task_create_missing_queues off an unknown -Q fails."""

from __future__ import annotations

from tests.integration.conftest import Harness


def test_worker_consumes_task_queues_minus_excluded(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "solo", "-X", "skipped",
                      CELERIAC_TASK_QUEUES="celery,extra,skipped")
    skipped = h.client.send_task("add", (1, 1), queue="skipped")
    assert h.client.send_task("add", (2, 2), queue="extra").get(timeout=20) == 4
    assert h.client.send_task("add", (3, 3)).get(timeout=20) == 6
    assert skipped.state == "PENDING"
    worker.stop()
    assert ".> extra " in worker.log and ".> skipped " not in worker.log
    assert h.lines("add 1 1") == []


def test_unknown_queue_refused_when_missing_queues_are_not_created(
        sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "solo", "-Q", "celery,nowhere", ready=False,
                      CELERIAC_TASK_QUEUES="celery",
                      CELERIAC_TASK_CREATE_MISSING_QUEUES="false")
    assert worker.wait() != 0
    assert "task_queues does not declare" in worker.log and "nowhere" in worker.log
