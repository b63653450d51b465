"""Where celeriac deliberately differs from Celery in a mixed fleet, pinned as documented
in docs/moving-from-celery.md."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.interop.conftest import ROOT, Fleet


def _dlq_list(fleet: Fleet) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "tests.interop.celeriac_side", "dlq", "list"],
        cwd=ROOT, env=fleet.env("celeriac"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _delayed(fleet: Fleet) -> list[bytes]:
    import redis

    raw = redis.Redis.from_url(fleet.broker_url)
    members = [m for m in raw.zrange(f"{fleet.prefix}_celeriac.delayed", 0, -1)
               if fleet.queue.encode() in m]
    raw.close()
    return members


def test_unknown_task_from_celery_is_dead_lettered_not_discarded(fleet: Fleet) -> None:
    fleet.celeriac_worker()
    client = fleet.celery_client()
    lost = client.send_task("interop.no_such_task", (1,))
    assert client.send_task("interop.add", (1, 1)).get(timeout=20) == 2
    deadline = time.monotonic() + 20
    while lost.id not in (listing := _dlq_list(fleet)):
        assert time.monotonic() < deadline, listing
        time.sleep(0.2)
    assert "unregistered task 'interop.no_such_task'" in listing


def test_far_eta_from_celery_waits_in_the_broker_not_the_worker(fleet: Fleet) -> None:
    if not fleet.broker_url.startswith("redis"):
        pytest.skip("the Redis delay store is a sorted set; RabbitMQ's is checked in its tests")
    worker = fleet.celeriac_worker()
    client = fleet.celery_client()
    far = client.send_task("interop.add", (7, 7), countdown=3600)
    assert client.send_task("interop.add", (1, 2)).get(timeout=20) == 3
    deadline = time.monotonic() + 10
    while not any(far.id.encode() in m for m in _delayed(fleet)):
        assert time.monotonic() < deadline, fleet.log(worker)
        time.sleep(0.1)
    assert f"{far.id}] received with eta" in fleet.log(worker)


def test_opt_in_delay_store_needs_a_celeriac_worker_on_redis(fleet: Fleet) -> None:
    """``broker_delay_store = True`` (for celeriac-only fleets): on Redis countdowns wait
    in ``_celeriac.delayed``, which only celeriac workers promote, so a Celery worker
    alone never runs them. The default (None) sends them to the queue with an eta
    header instead (test_countdowns_by_fleet). On RabbitMQ the delay levels deliver to
    the queue, so a Celery worker alone runs it when due either way."""
    fleet.celery_worker()
    client = fleet.celeriac_client(broker_delay_store=True)
    started = time.monotonic()
    result = client.send_task("interop.add", (2, 2), countdown=1)
    if fleet.broker_url.startswith("amqp"):
        assert result.get(timeout=20) == 4
        assert time.monotonic() - started >= 0.9
        assert fleet.records("add 2 2") == ["add 2 2 celery"]
        return
    time.sleep(2.5)
    assert fleet.records("add 2 2") == [] and len(_delayed(fleet)) == 1
    fleet.celeriac_worker()  # any celeriac worker on the broker promotes it; either runs it
    assert result.get(timeout=20) == 4
