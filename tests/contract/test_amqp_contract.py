"""The broker contract suite on a real RabbitMQ, in a vhost of its own per test run.

On AMQP a lease is the delivery's channel: RabbitMQ redelivers when the consumer's
connection goes away, never while it lives. So the lease-expiry test is run as what it
stands for: the worker holding the message dies (its connection closes without an ack).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from celeriac.backends.base import ResultBackend
from celeriac.backends.rpc import RPCBackend
from celeriac.brokers.amqp import AMQPBroker
from tests.contract.backend_suite import BackendContract
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


class TestAMQPBroker(BrokerContract):
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
