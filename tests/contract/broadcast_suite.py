"""The broadcast part of the broker contract (remote control, events, revoked store).

Mixed into each broker's contract class next to ``BrokerContract``; uses the same
``broker`` fixture. Exchange and mailbox names carry a fresh suffix per test, so
brokers whose fan-out is not under the fixture's isolation (Redis pub/sub channels,
RabbitMQ exchanges) do not see other runs.
"""

from __future__ import annotations

import asyncio
import uuid

from celeriac.brokers.base import Broker, Exchange, Subscription
from celeriac.protocol import Message


def control_message(n: int, routing_key: str = "") -> Message:
    return Message(headers={"clock": n, "expires": 0},
                   body=b'{"method": "ping", "arguments": {}, "n": %d}' % n,
                   properties={"delivery_mode": 1, "priority": 0, "correlation_id": None},
                   routing_key=routing_key)


async def collect(sub: Subscription, count: int, timeout_s: float = 5.0) -> list[Message]:
    """Read until count messages came or the time is up."""
    got: list[Message] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(got) < count and loop.time() < deadline:
        got += await sub.get(min(0.5, max(0.01, deadline - loop.time())))
    return got


class BroadcastContract:
    """Fan-out, topic bindings, mailboxes and the revoked store."""

    async def test_fanout_reaches_every_current_subscriber(self, broker: Broker) -> None:
        ex = Exchange(f"t{uuid.uuid4().hex[:8]}.pidbox")
        first = await broker.subscribe(ex, f"a.{ex.name}", "")
        second = await broker.subscribe(ex, f"b.{ex.name}", "")
        try:
            await broker.broadcast(ex, control_message(1))
            a, b = await collect(first, 1), await collect(second, 1)
            assert [m.body for m in a] == [control_message(1).body]
            assert [m.body for m in b] == [control_message(1).body]
            assert a[0].headers["clock"] == 1
            assert a[0].content_type == "application/json"
            late = await broker.subscribe(ex, f"c.{ex.name}", "")
            try:
                assert await late.get(0.3) == []  # nothing from before it subscribed
                await broker.broadcast(ex, control_message(2))
                assert len(await collect(late, 1)) == 1
            finally:
                await late.close()
        finally:
            await first.close()
            await second.close()

    async def test_topic_bindings_filter_by_routing_key(self, broker: Broker) -> None:
        ex = Exchange(f"t{uuid.uuid4().hex[:8]}ev", "topic", durable=True)
        everything = await broker.subscribe(ex, f"all.{ex.name}", "#")
        workers = await broker.subscribe(ex, f"w.{ex.name}", "worker.#")
        try:
            await broker.broadcast(ex, control_message(1, "task.succeeded"))
            await broker.broadcast(ex, control_message(2, "worker.heartbeat"))
            got_all = await collect(everything, 2)
            got_workers = await collect(workers, 1)
            await asyncio.sleep(0.2)
            got_workers += await workers.get(0.1)
            assert sorted(m.headers["clock"] for m in got_all) == [1, 2]
            assert [m.headers["clock"] for m in got_workers] == [2]
            assert {m.routing_key for m in got_all} == {"task.succeeded", "worker.heartbeat"}
        finally:
            await everything.close()
            await workers.close()

    async def test_closed_subscription_hears_nothing_and_get_times_out(
            self, broker: Broker) -> None:
        ex = Exchange(f"t{uuid.uuid4().hex[:8]}.pidbox")
        sub = await broker.subscribe(ex, f"a.{ex.name}", "")
        assert await sub.get(0.2) == []
        await sub.close()
        await broker.broadcast(ex, control_message(1))  # no subscriber: not an error

    async def test_mailbox_gets_direct_messages_for_its_key_only(self, broker: Broker) -> None:
        exchange, oid = f"reply.t{uuid.uuid4().hex[:8]}.pidbox", uuid.uuid4().hex
        box = await broker.open_mailbox(exchange, oid, f"{oid}.{exchange}")
        try:
            await broker.send_direct(exchange, oid, control_message(1))
            await broker.send_direct(exchange, "somebody-else", control_message(2))
            got = await collect(box, 1)
            await asyncio.sleep(0.2)
            got += await box.get(0.1)
            assert [m.headers["clock"] for m in got] == [1]
        finally:
            await box.close()
        await broker.send_direct(exchange, oid, control_message(3))  # gone: dropped

    async def test_revoked_store_keeps_ids_for_their_ttl(self, broker: Broker) -> None:
        keep, brief = f"keep-{uuid.uuid4().hex}", f"brief-{uuid.uuid4().hex}"
        await broker.store_revoked([keep], 600.0)
        await broker.store_revoked([brief], 1.0)
        loaded = await broker.load_revoked()
        assert keep in loaded and brief in loaded
        assert loaded[keep] > loaded[brief]
        await asyncio.sleep(1.5)
        later = await broker.load_revoked()
        assert keep in later and brief not in later
