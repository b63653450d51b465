"""A real worker, started through the CLI, on a real Redis: what differs from SQLite.

The scenarios both brokers share (kills, leases, shutdowns) run on each of them in
test_worker_sqlite.py through the ``harness`` fixture.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from celeriac.brokers.redis.broker import RedisBroker
from celeriac.protocol import build_task_message
from tests.integration.conftest import DB_URL, Harness


def _broker(h: Harness) -> RedisBroker:
    return RedisBroker(DB_URL, {"global_keyprefix": h.prefix})


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_tasks_run_and_results_come_back(redis_harness: Harness, pool: str) -> None:
    h = redis_harness
    worker = h.worker("-P", pool, "-c", "2")
    assert "redis://127.0.0.1:6379/12" in worker.log
    added = h.client.send_task("add", (2, 3))
    awaited = h.client.send_task("aadd", (4, 5))
    failed = h.client.send_task("fail")
    assert added.get(timeout=20) == 5
    assert awaited.get(timeout=20) == 9
    with pytest.raises(ValueError):
        failed.get(timeout=20)
    assert worker.stop() == 0
    assert f"Task add[{added.id}] succeeded in" in worker.log


def test_dead_letters_are_listed_requeued_and_purged(redis_harness: Harness) -> None:
    h = redis_harness
    worker = h.worker("-P", "solo")

    async def publish_bad() -> None:
        broker = _broker(h)
        await broker.publish([build_task_message("no.such.task", (1,), task_id="unknown-1"),
                              build_task_message("add", (1, 2, 3), task_id="arity-1")])
        await broker.close()

    asyncio.run(publish_bad())
    assert h.client.send_task("add", (1, 1)).get(timeout=20) == 2
    deadline = time.monotonic() + 10
    while "2 dead letters." not in (out := h.cli("dlq", "list").stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.1)
    assert "unregistered task 'no.such.task'" in out and "arity-1" in out
    arity_id = next(line.split()[0] for line in out.splitlines() if "arity-1" in line)
    assert "Requeued 1 message." in h.cli("dlq", "requeue", arity_id).stdout
    deadline = time.monotonic() + 10
    while "arity-1" not in h.cli("dlq", "list").stdout:  # wrong arity again: back in DLQ
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "Deleted 2 dead letters." in h.cli("dlq", "purge", "-f").stdout
    assert "No dead letters." in h.cli("dlq", "list").stdout
    assert worker.stop() == 0


def test_far_countdown_waits_in_redis_not_in_the_worker(redis_harness: Harness) -> None:
    import redis

    h = redis_harness
    worker = h.worker("-P", "solo")
    later = h.client.send_task("add", (5, 5), countdown=30 * 24 * 3600)
    h.client.conf.broker_delay_store = False  # as Celery sends it: eta header, ready list
    celery_style = h.client.send_task("add", (6, 6), countdown=3600)
    soon = h.client.send_task("add", (1, 2), countdown=1)
    assert soon.get(timeout=20) == 3
    worker.wait_for_log(f"add[{celery_style.id}] received with eta")
    raw = redis.Redis.from_url(DB_URL)
    delayed = raw.zrange(f"{h.prefix}_celeriac.delayed", 0, -1)
    raw.close()
    assert sorted(len(d) > 0 and (later.id.encode() in d) for d in delayed) == [False, True]
    assert any(celery_style.id.encode() in d for d in delayed)
    assert later.state == "PENDING" and celery_style.state == "PENDING"
    assert worker.stop() == 0
    assert h.lines("add 5 5") == [] and h.lines("add 6 6") == []
