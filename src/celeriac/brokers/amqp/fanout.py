"""Broadcast on RabbitMQ as kombu's pidbox and Celery's events use it.

- ``broadcast``: a transient publish to the exchange (``celery.pidbox``: fanout, not
  durable; ``celeryev``: topic, durable), declared as Celery declares it, not
  mandatory (no subscriber: dropped).
- ``subscribe``: an exclusive, auto-deleted queue of the subscriber's name
  (``<hostname>.celery.pidbox`` like a Celery worker's) bound to the exchange, with
  Celery's control queue arguments (messages live 300 s, the queue 10 s after its
  consumer is gone), consumed without acks on a channel of its own. Reopened after
  the connection is lost.
- ``open_mailbox``: the reply queue ``<oid>.reply.celery.pidbox`` bound to the direct
  exchange ``reply.celery.pidbox`` with the client's oid; ``send_direct`` publishes
  there.
- Revoked ids: the durable queue ``celeriac.revoked``, one persistent message per
  revoke (body: ids and when they are forgotten, ``expiration`` = the time to keep
  them). ``load_revoked`` reads it with ``basic.get``, acks what is past its time and
  closes the channel without acking the rest, so RabbitMQ keeps them for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

import orjson
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec

from celeriac.brokers.amqp.dead import DeadLetterQueue
from celeriac.brokers.amqp.session import Session
from celeriac.brokers.amqp.topology import ExchangeSpec
from celeriac.brokers.amqp.wire import Outgoing, PublishChannel, to_message
from celeriac.brokers.base import Exchange, Subscription
from celeriac.protocol import Message

log = logging.getLogger(__name__)
REVOKED_QUEUE = "celeriac.revoked"
#: Celery's control_queue_ttl and control_queue_expires (seconds)
QUEUE_ARGUMENTS = {"x-message-ttl": 300_000, "x-expires": 10_000}
#: the most revoke messages one load reads
REVOKED_SCAN_LIMIT = 100_000


def _transient(message: Message, exchange: str, routing_key: str) -> Message:
    properties = dict(message.properties)
    properties["delivery_mode"] = 1
    return Message(message.headers, message.body, properties, message.content_type,
                   message.content_encoding, exchange, routing_key)


class AMQPFanout:
    """Broadcast, mailboxes and revoked ids on the broker's session."""

    def __init__(self, session: Session, dead: DeadLetterQueue) -> None:
        self.session, self.dead = session, dead

    async def _publish(self, spec_: ExchangeSpec | None, item: Outgoing) -> None:
        declarer = self.session.declarer

        async def declare(channel: PublishChannel) -> None:
            if spec_ is not None:
                await declarer.exchange(channel, spec_)
        await self.session.publish([item], declare)

    async def broadcast(self, exchange: Exchange, message: Message) -> None:
        spec_ = ExchangeSpec(exchange.name, exchange.kind, exchange.durable)
        item = Outgoing(exchange.name, message.routing_key,
                        _transient(message, exchange.name, message.routing_key),
                        mandatory=False)
        await self._publish(spec_, item)

    async def subscribe(self, exchange: Exchange, queue: str, binding: str) -> Subscription:
        spec_ = ExchangeSpec(exchange.name, exchange.kind, exchange.durable)
        key = "" if exchange.kind == "fanout" else binding
        sub = _Consumer(self.session, spec_, queue, key)
        await sub.open()
        return sub

    async def send_direct(self, exchange: str, routing_key: str, message: Message) -> None:
        spec_ = ExchangeSpec(exchange, "direct", durable=False)
        item = Outgoing(exchange, routing_key, _transient(message, exchange, routing_key),
                        mandatory=False)
        await self._publish(spec_, item)

    async def open_mailbox(self, exchange: str, routing_key: str, queue: str
                           ) -> Subscription:
        sub = _Consumer(self.session, ExchangeSpec(exchange, "direct", durable=False),
                        queue, routing_key)
        await sub.open()
        return sub

    async def store_revoked(self, ids: Sequence[str], ttl_s: float) -> None:
        if not ids:
            return
        body = orjson.dumps({"ids": list(ids), "until": time.time() + ttl_s})
        message = Message({}, body, {"delivery_mode": 2, "priority": 0,
                                     "expiration": str(max(1, int(ttl_s * 1000)))},
                          routing_key=REVOKED_QUEUE, exchange="")
        declarer = self.session.declarer

        async def declare(channel: PublishChannel) -> None:
            if not declarer.declared("revoked"):
                await channel.queue_declare(REVOKED_QUEUE, durable=True)
                declarer._done.add("revoked")
        await self.session.publish([Outgoing("", REVOKED_QUEUE, message)], declare)

    async def load_revoked(self) -> dict[str, float]:
        now, found = time.time(), dict[str, float]()
        async with self.dead.admin_channel() as channel:
            ok = await channel.queue_declare(REVOKED_QUEUE, durable=True)
            for _ in range(min(REVOKED_SCAN_LIMIT, int(ok.message_count or 0))):
                got = await channel.basic_get(REVOKED_QUEUE, no_ack=False)
                if not isinstance(got.delivery, spec.Basic.GetOk):
                    break
                tag = int(got.delivery.delivery_tag or 0)
                try:
                    record = orjson.loads(got.body)
                    until, ids = float(record["until"]), [str(i) for i in record["ids"]]
                except (ValueError, KeyError, TypeError):
                    until, ids = 0.0, []
                if until <= now:
                    await channel.basic_ack(tag)  # forgotten: RabbitMQ drops it
                    continue
                for task_id in ids:
                    found[task_id] = max(until, found.get(task_id, 0.0))
        return found  # closing the channel put the rest back


class _Consumer(Subscription):
    """An exclusive queue bound to one exchange, consumed without acks."""

    def __init__(self, session: Session, exchange: ExchangeSpec, queue: str,
                 routing_key: str) -> None:
        self.session, self.exchange, self.queue = session, exchange, queue
        self.routing_key = routing_key
        self._channel: AbstractChannel | None = None
        self._items: list[Message] = []
        self._arrived = asyncio.Event()
        self._closed = False

    async def open(self) -> None:
        await self.session.ready()
        conn = self.session.conn
        assert conn is not None
        channel = await conn.channel(publisher_confirms=False)
        ex = self.exchange
        await channel.exchange_declare(ex.name, exchange_type=ex.type, durable=ex.durable,
                                       auto_delete=ex.auto_delete)
        await channel.queue_declare(self.queue, durable=False, exclusive=True,
                                    auto_delete=True, arguments=dict(QUEUE_ARGUMENTS))
        await channel.queue_bind(self.queue, ex.name, routing_key=self.routing_key)
        await channel.basic_consume(self.queue, self._on_message, no_ack=True,
                                    consumer_tag=f"ctl.{uuid.uuid4().hex[:12]}")
        self._channel = channel

    async def _on_message(self, delivered: DeliveredMessage) -> None:
        try:
            self._items.append(to_message(
                delivered.header.properties, delivered.body, delivered.exchange or "",
                delivered.routing_key or ""))
        except Exception as exc:  # never raise into the connection's reader
            log.warning("dropped an unreadable broadcast on %s: %s", self.queue, exc)
            return
        self._arrived.set()

    async def get(self, timeout_s: float) -> list[Message]:
        if self._closed:
            return []
        if self._channel is None or self._channel.is_closed:
            try:
                await self.open()
            except Exception as exc:
                log.warning("subscription %s: cannot reopen its channel (%s)", self.queue, exc)
                await asyncio.sleep(min(1.0, max(0.05, timeout_s)))
                return []
        if not self._items:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
            except TimeoutError:
                return []
        got, self._items = self._items, []
        return got

    async def close(self) -> None:
        self._closed = True
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:  # exclusive and auto-deleted: the queue goes with the channel
                await channel.close()
            except Exception:  # the connection is going away anyway
                pass


__all__ = ["REVOKED_QUEUE", "AMQPFanout"]
