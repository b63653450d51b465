"""More of the worker's surface: request fields, several workers on one file, recycling."""

from __future__ import annotations

import time

import pytest

from celeriac import Celery
from celeriac.testing import drain, memory_app, worker_thread
from tests.integration.conftest import Harness


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_request_fields_inside_a_worker(sqlite_harness: Harness, pool: str) -> None:
    h = sqlite_harness
    worker = h.worker("-P", pool, "-n", "alpha@%h")
    result = h.client.send_task("whoami", (7,), expires=600)
    got = result.get(timeout=20)
    assert got["id"] == result.id and got["args"] == [7] and got["kwargs"] == {}
    assert got["retries"] == 0 and got["is_eager"] is False
    assert got["hostname"].startswith("alpha@")
    assert got["delivery_info"]["routing_key"] == "celery"
    assert got["root_id"] == result.id and got["parent_id"] is None
    assert got["expires"] != "None" and got["eta"] == "None"
    worker.stop()
    assert "alpha@" in worker.log.splitlines()[0]


def test_two_workers_share_one_sqlite_file_without_duplicates(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    a = h.worker("-P", "prefork", "-c", "2", "--prefetch-multiplier", "8")
    b = h.worker("-P", "threads", "-c", "4", "--prefetch-multiplier", "8")

    async def publish_all() -> None:
        from celeriac.brokers.sqlite.broker import SQLiteBroker
        from celeriac.protocol import build_task_message

        broker = SQLiteBroker(h.broker_url)
        await broker.publish([build_task_message("note", (f"n{i}",), ignore_result=True)
                              for i in range(400)])
        await broker.close()

    import asyncio

    asyncio.run(publish_all())
    h.wait_for_record("note ", 400, timeout_s=60)
    time.sleep(0.5)
    notes = h.lines("note ")
    assert len(notes) == 400 and len(set(notes)) == 400
    a.stop()
    b.stop()
    assert "succeeded" in a.log and "succeeded" in b.log  # both took a share


def test_max_memory_per_child_recycles(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "prefork", "-c", "1", "--max-memory-per-child", "1")
    pids = [h.client.send_task("pid").get(timeout=20) for _ in range(3)]
    assert len(set(pids)) == 3  # every child is over 1 KiB: one task each
    worker.stop()


def test_acks_early_task_is_not_rerun_after_a_crash(sqlite_harness: Harness) -> None:
    """acks_late=False is Celery's ack-on-receipt: a crash mid-task loses that run."""
    h = sqlite_harness
    first = h.worker("-P", "threads", "-c", "1", ITEST_LEASE_S="1")
    h.client.send_task("early", (2, "e1"))
    h.wait_for_record("start e1")
    first.kill()
    second = h.worker("-P", "threads", "-c", "1", ITEST_LEASE_S="1")
    time.sleep(2.5)
    assert h.lines("start e1") == ["start e1"]
    second.stop()


def test_testing_fixtures_run_a_real_worker(celeriac_app: Celery, celeriac_worker: object) -> None:
    @celeriac_app.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    # the worker reads the app's live registry, so a task defined in the test is known
    assert double.delay(4).get(timeout=10) == 8


def test_worker_thread_runs_tasks_defined_before_it_starts() -> None:
    app = memory_app("wt")

    @app.task(name="triple")
    def triple(x: int) -> int:
        return 3 * x

    with worker_thread(app, pool="asyncio", concurrency=10):
        assert triple.delay(3).get(timeout=10) == 9
    assert drain(app) == 0


def test_default_worker_logs_each_task_received_then_succeeded(sqlite_harness: Harness
                                                               ) -> None:
    """`worker -l info` on prefork: Celery's two lines per task, same text, none dropped,
    each task's `received` before its `succeeded`, while tasks go to children in batches."""
    import re

    h = sqlite_harness
    worker = h.worker("-P", "prefork", "-c", "2", "-l", "info")

    async def publish_all() -> list[str]:
        from celeriac.brokers.sqlite.broker import SQLiteBroker
        from celeriac.protocol import build_task_message

        broker = SQLiteBroker(h.broker_url)
        messages = [build_task_message("note", (f"n{i}",), ignore_result=True)
                    for i in range(300)]
        await broker.publish(messages)
        await broker.close()
        return [m.task_id for m in messages]

    import asyncio

    ids = asyncio.run(publish_all())
    h.wait_for_record("note ", 300, timeout_s=60)
    worker.stop()
    received: dict[str, int] = {}
    succeeded: dict[str, int] = {}
    # the children log their own tasks' lines (Celery's "received" comes from its
    # MainProcess; with the classic pool, --no-consumer-children, both lines do)
    pattern = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}: "
                         r"INFO/(?:MainProcess|ForkPoolWorker-\d+)\] "
                         r"Task note\[([0-9a-f-]+)\] (received|succeeded in \d+\.\d{6}s: None)$")
    for number, line in enumerate(worker.log.splitlines()):
        found = pattern.match(line)
        if found:
            seen = received if found.group(2) == "received" else succeeded
            assert found.group(1) not in seen, line  # once each
            seen[found.group(1)] = number
    assert set(received) == set(succeeded) == set(ids)
    assert all(received[i] < succeeded[i] for i in ids)
