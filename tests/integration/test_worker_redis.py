"""A real worker, started through the CLI, on a real Redis: the core scenarios again.

Each test gets its own key prefix in db 12 (broker and results) and deletes its keys.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.brokers.redis import RedisBroker
from celeriac.protocol import build_task_message
from tests.integration.conftest import Harness
from tests.services import need_redis

DB_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def redis_harness(tmp_path: Path) -> Iterator[Harness]:
    need_redis()
    import redis

    prefix = f"itest-{uuid.uuid4().hex[:8]}:"
    harness = Harness(tmp_path, DB_URL)
    harness.client.conf.broker_transport_options = {"global_keyprefix": prefix}
    harness.client.conf.result_backend = DB_URL
    harness.prefix = prefix  # type: ignore[attr-defined]
    original_env = harness.env

    def env(**extra: str) -> dict[str, str]:
        return original_env(**{"ITEST_KEYPREFIX": prefix, **extra}) | {
            "CELERIAC_RESULT_BACKEND": DB_URL}

    harness.env = env  # type: ignore[method-assign]
    yield harness
    harness.close()
    raw = redis.Redis.from_url(DB_URL)
    keys = list(raw.scan_iter(f"{prefix}*"))
    if keys:
        raw.delete(*keys)
    raw.close()


def _broker(h: Harness) -> RedisBroker:
    return RedisBroker(DB_URL, {"global_keyprefix": h.prefix})  # type: ignore[attr-defined]


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


def test_sigkilled_worker_tasks_come_back_after_the_lease(redis_harness: Harness) -> None:
    h = redis_harness
    first = h.worker("-P", "threads", "-c", "1", ITEST_LEASE_S="2")
    result = h.client.send_task("slow", (1.0, "k1"))
    h.wait_for_record("start k1")
    first.kill()
    second = h.worker("-P", "threads", "-c", "1", ITEST_LEASE_S="2")
    assert result.get(timeout=30) == "k1"
    assert h.lines("start k1") == ["start k1", "start k1"]
    assert h.lines("done k1") == ["done k1"]
    second.stop()


def test_long_task_is_not_redelivered_while_its_worker_lives(redis_harness: Harness) -> None:
    h = redis_harness
    worker = h.worker("-P", "solo", ITEST_LEASE_S="1")
    other = h.worker("-P", "solo", ITEST_LEASE_S="1")
    result = h.client.send_task("slow", (4.0, "long"))
    assert result.get(timeout=30) == "long"
    time.sleep(1.5)  # two more sweeps by the idle worker: still one run
    assert h.lines("start long") == ["start long"]
    worker.stop()
    other.stop()


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
    delayed = raw.zrange(f"{h.prefix}_celeriac.delayed", 0, -1)  # type: ignore[attr-defined]
    raw.close()
    assert sorted(len(d) > 0 and (later.id.encode() in d) for d in delayed) == [False, True]
    assert any(celery_style.id.encode() in d for d in delayed)
    assert later.state == "PENDING" and celery_style.state == "PENDING"
    assert worker.stop() == 0
    assert h.lines("add 5 5") == [] and h.lines("add 6 6") == []
