"""The broker contract suite on a real RabbitMQ, in a vhost of its own per test run.

On AMQP a lease is the delivery's channel: RabbitMQ redelivers when the consumer's
connection goes away, never while it lives. So the lease-expiry test is run as what it
stands for: the worker holding the message dies (its connection closes without an ack).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from celeriac import states
from celeriac.backends.base import ResultBackend, make_meta, result_route
from celeriac.backends.rpc import RPCBackend, reply_queue
from celeriac.bridge import BRIDGE
from celeriac.brokers.amqp.broker import AMQPBroker
from tests.contract.backend_suite import BackendContract
from tests.contract.broadcast_suite import BroadcastContract
from tests.contract.suite import BrokerContract, ids, make
from tests.services import AMQP_HOST, AMQP_PORT, need_rabbitmq


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=60,
                   capture_output=True)


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    need_rabbitmq()
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], timeout=60,
                   capture_output=True)


def url(vhost: str) -> str:
    return f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"


async def amqp_broker(vhost: str, **options: Any) -> AMQPBroker:
    # priorities need x-max-priority on the queue; every test queue gets it here
    options.setdefault("max_priority", 10)
    broker = AMQPBroker(url(vhost), options)
    await broker.connect()
    return broker


async def fresh_queues(broker: AMQPBroker) -> None:
    """Tests share fixed queue names: start each one from empty queues."""
    await broker.purge(["q1", "q2"])
    await broker.purge_dead()


class TestAMQPBroker(BrokerContract, BroadcastContract):
    atomic_park = False
    priority_order = "higher-first"

    @pytest.fixture
    async def broker(self, vhost: str) -> AsyncIterator[AMQPBroker]:
        broker = await amqp_broker(vhost)
        await fresh_queues(broker)
        yield broker
        await fresh_queues(broker)
        await broker.close()

    @pytest.fixture
    async def short_lease_broker(self, vhost: str) -> AsyncIterator[AMQPBroker]:
        broker = await amqp_broker(vhost, visibility_timeout=1.0)
        await fresh_queues(broker)
        yield broker
        await fresh_queues(broker)
        await broker.close()

    async def test_fifo_within_a_queue_and_batch_fetch(self, broker: Any) -> None:
        """As the suite's, but a fetch may return a partial batch when RabbitMQ's burst
        is still on its way (a busy machine): fetch until all 20 came, in order."""
        await broker.publish([make(i) for i in range(20)])
        got: list[Any] = []
        for _ in range(20):
            batch = await broker.fetch(["q1"], 15, 1.0)
            assert len(batch) <= 15
            got += batch
            if len(got) >= 20:
                break
        assert ids(got) == [f"id-{i}" for i in range(20)]
        await broker.ack(got)

    async def test_lease_expiry_redelivers_unacked(self, short_lease_broker: Any) -> None:
        holder = short_lease_broker
        await holder.publish([make(1)])
        assert ids(await holder.fetch(["q1"], 1, 1.0)) == ["id-1"]
        other = await amqp_broker(holder.params.vhost)
        try:
            assert await other.fetch(["q1"], 1, 0.3) == []  # held while its worker lives
            assert holder.session.conn is not None
            await holder.session.conn.close()  # the worker dies: no ack, connection gone
            again: list[Any] = []
            deadline = time.monotonic() + 10
            while not again and time.monotonic() < deadline:
                again = await other.fetch(["q1"], 1, 0.5)
            assert ids(again) == ["id-1"]
            assert again[0].redelivered
            await other.ack(again)
        finally:
            await other.close()


class TestRPCBackend(BackendContract):
    """rpc:// in one process: the worker side and the caller side share a reply queue."""

    @pytest.fixture
    async def backend(self, vhost: str) -> AsyncIterator[RPCBackend]:
        backend = RPCBackend("rpc://", {"broker_url": url(vhost)})
        await backend.connect()
        yield backend
        await backend.close()

    async def test_expired_result_reads_as_missing(self, backend: ResultBackend) -> None:
        pytest.skip("rpc:// results live in the caller's memory once read, as in Celery")


def _reply_later(vhost: str, task_id: str, result: Any, after_s: float) -> threading.Thread:
    """A worker elsewhere (own loop, own connection) replying to this process."""

    async def reply() -> None:
        await asyncio.sleep(after_s)
        worker_side = RPCBackend("rpc://", {"broker_url": url(vhost)})
        await worker_side.connect()
        token = result_route.set((reply_queue(), task_id))
        try:
            await worker_side.store(task_id, make_meta(task_id, states.SUCCESS, result), 60)
        finally:
            result_route.reset(token)
            await worker_side.close()

    thread = threading.Thread(target=asyncio.run, args=(reply(),))
    thread.start()
    return thread


def test_rpc_sync_wait_runs_in_the_callers_thread(
        vhost: str, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = RPCBackend("rpc://", {"broker_url": url(vhost)})
    hops: list[object] = []
    run = BRIDGE.run
    monkeypatch.setattr(BRIDGE, "run", lambda coro, *a: hops.append(coro) or run(coro, *a))
    try:
        began = time.monotonic()  # declares the reply queue and starts its consumer
        assert backend.wait_blocking(str(uuid.uuid4()), 0.3) is None
        assert time.monotonic() - began >= 0.3
        assert len(hops) == 1  # the reply consumer was started on the bridge loop
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        replier = _reply_later(vhost, first, "one", 0.0)
        replier.join()
        time.sleep(0.2)  # the reply is in this process's table before the wait
        meta = backend.wait_blocking(first, 10.0)
        assert meta is not None and meta["result"] == "one"
        replier = _reply_later(vhost, second, "two", 0.3)
        meta = backend.wait_blocking(second, 10.0)  # woken by the reply
        replier.join()
        assert meta is not None and meta["result"] == "two"
        assert len(hops) == 1  # no later wait touched the bridge loop
    finally:
        backend.close_blocking()
