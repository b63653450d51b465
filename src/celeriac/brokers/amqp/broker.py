"""RabbitMQ broker (AMQP 0-9-1 on aiormq), sharing queues and messages with Celery 5.

URLs (kombu's): ``amqp://user:password@host:5672/vhost?heartbeat=60``, ``pyamqp://``
(the same), ``amqps://`` (TLS, port 5671). See ``amqp_link`` for every connection
option and error.

Topology (``amqp_topology``): task queues are declared as Celery declares them
(durable, direct exchange of the queue's name), or as ``task_queues`` says; tasks go to
the default exchange with routing key = queue, or to a route's named exchange.
Messages carry Celery's AMQP properties and headers, encoded as py-amqp encodes them
(``amqp_wire``), so a Celery worker runs celeriac's tasks and the other way round.

Guarantees:
- ``publish`` returns once RabbitMQ confirmed every message (persistent, delivery
  mode 2); a nack, an unroutable message (returned) or a lost connection raises.
- ``fetch`` consumes with ``basic.qos`` = the worker's window (concurrency x
  prefetch multiplier) unless the ``prefetch_count`` option says otherwise. ``ack``
  batches acks with ``multiple=True``; ``requeue`` nacks with requeue (warm shutdown).
- Leases are RabbitMQ's own: a delivery stays with its channel until acked, however
  long the task runs (``extend`` has nothing to do); when the worker dies or its
  connection drops, RabbitMQ redelivers it at once, flagged redelivered.
  ``consumer_timeout`` (transport option, seconds, default 7 days) is sent as the
  consumer argument ``x-consumer-timeout`` (RabbitMQ 3.12+); older servers apply their
  global ``consumer_timeout`` (30 min by default): raise it in rabbitmq.conf for
  longer tasks.
- ``delay`` keeps messages in RabbitMQ's delay levels (no plugin, 1 s to 388 days,
  whole seconds rounded up), never in a worker.
- Dead letters are published with their reason to the fanout exchange and queue
  ``celeriac.dead``, then the original is acked. Point a queue's
  ``x-dead-letter-exchange`` at ``celeriac.dead`` to keep RabbitMQ's own dead letters
  (rejected, expired, over length) in the same place.
- Connection or channel loss: reconnect with backoff (``retry_timeout``, default 30 s),
  re-declare, consume again; unacked messages are redelivered by RabbitMQ.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from aiormq.exceptions import ChannelNotFoundEntity

from celeriac.backends.rpc import reply_queue_declaration
from celeriac.brokers.amqp.batch import outgoing, representatives
from celeriac.brokers.amqp.blocking import DEFAULT_WINDOW, BlockingPublisher, SyncChannel
from celeriac.brokers.amqp.dead import DeadLetterQueue
from celeriac.brokers.amqp.fanout import AMQPFanout
from celeriac.brokers.amqp.inbox import Inbox
from celeriac.brokers.amqp.link import parse_url
from celeriac.brokers.amqp.session import DeclareFn, Session
from celeriac.brokers.amqp.topology import (
    ORIGIN_EXCHANGE,
    ORIGIN_ROUTING_KEY,
    Declarer,
    QueueSpec,
    Topology,
    delay_route,
)
from celeriac.brokers.amqp.wire import Outgoing, PublishChannel
from celeriac.brokers.base import DeadLetter, Delivery, FanoutBroker
from celeriac.protocol import Message

DEFAULT_CONSUMER_TIMEOUT_S = 7 * 86400


class AMQPBroker(FanoutBroker):
    """See the module docstring."""

    schemes = ("amqp", "amqps", "pyamqp")
    supports_priority = True  # on queues declared with x-max-priority (max_priority option)
    refill_early = True  # fetch takes from the inbox RabbitMQ pushes to; acks free room
    leased = False  # RabbitMQ redelivers only when the consumer's channel closes
    supports_broadcast = True  # exchanges and private queues: amqp_fanout.py

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        opts = self.options
        self.params = parse_url(url, opts)
        defaults: dict[str, Any] = {}
        if opts.get("max_priority") is not None:
            defaults["x-max-priority"] = int(opts["max_priority"])
        if opts.get("queue_type") not in (None, "classic"):
            defaults["x-queue-type"] = str(opts["queue_type"])
        self.topology = Topology(opts.get("queues"), defaults)
        self.session = Session(self.params, float(opts.get("retry_timeout", 30.0)))
        timeout_s = opts.get("consumer_timeout", DEFAULT_CONSUMER_TIMEOUT_S)
        prefetch = opts.get("prefetch_count")
        self.inbox = Inbox(self.session, self.topology,
                           prefetch=int(prefetch) if prefetch else None,
                           consumer_timeout_ms=int(float(timeout_s) * 1000) if timeout_s else None)
        self.dead = DeadLetterQueue(self.session, self.topology)
        self.fanout = AMQPFanout(self.session, self.dead)
        self._blocking: BlockingPublisher | None = None
        self._blocking_lock = threading.Lock()
        self._window = int(opts.get("confirm_window", DEFAULT_WINDOW))

    # -- lifecycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.session.connect()

    async def close(self) -> None:
        try:
            await self.inbox.close()
        finally:
            await self.session.close()

    # -- producing ------------------------------------------------------------------------
    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        items = outgoing(messages)
        await self.session.publish(items, self._declarer_for(items, self.session.declarer))

    def _declarer_for(self, items: Sequence[Outgoing], declarer: Declarer
                      ) -> DeclareFn | None:
        """Declares what the items need (each thing once per connection, like kombu);
        None when all of it already is (the common case: no coroutine to run)."""
        topology = self.topology
        items = representatives(items)
        needed = {(i.exchange, i.routing_key) for i in items}
        reply = _reply_queue_of(items)
        if reply is None and declarer.routes_ready(needed):
            return None

        async def declare(channel: PublishChannel) -> None:
            if reply is not None:  # rpc:// results come back there: it must exist first
                await declarer.queue(channel, reply)
            for exchange, routing_key in needed:
                if not exchange:
                    await declarer.queue(channel, topology.queue(routing_key))
                    continue
                await declarer.exchange(channel, topology.exchange(exchange))
                for queue in topology.queues_for(exchange, routing_key):
                    if queue in topology.specs:
                        await declarer.queue(channel, topology.specs[queue])
            declarer.mark_routes(needed)
        return declare

    async def delay(self, messages: Sequence[tuple[Message, float]]) -> None:
        ready, items, targets = self._plan_delay(messages)
        if ready:
            await self.publish(ready)
        if items:
            await self.session.publish(items,
                                       self._delay_declarer(targets, self.session.declarer))

    def _plan_delay(self, messages: Sequence[tuple[Message, float]]
                    ) -> tuple[list[Message], list[Outgoing], set[str]]:
        """Messages due now, copies routed into the delay levels, and their queues."""
        now = time.time()
        ready = [m for m, due in messages if due - now <= 0]
        items: list[Outgoing] = []
        targets: set[str] = set()
        for message, due in messages:
            if due - now <= 0:
                continue
            for queue in self.topology.queues_for(message.exchange, message.routing_key):
                targets.add(queue)
                exchange, routing_key = delay_route(math.ceil(due - now), queue)
                headers = dict(message.headers)
                headers[ORIGIN_EXCHANGE] = message.exchange
                headers[ORIGIN_ROUTING_KEY] = message.routing_key
                copy = Message(headers, message.body, message.properties,
                               message.content_type, message.content_encoding,
                               message.exchange, message.routing_key)
                items.append(Outgoing(exchange, routing_key, copy, drop_expiration=True))
        return ready, items, targets

    def _delay_declarer(self, targets: set[str], declarer: Declarer) -> DeclareFn:
        topology = self.topology

        async def declare(channel: PublishChannel) -> None:
            await declarer.delay_levels(channel)
            for queue in targets:
                await declarer.queue(channel, topology.queue(queue))
                await declarer.delay_target(channel, queue)
        return declare

    # -- producing from a sync caller's thread (bridge.BlockingProducer) -------------------
    def blocking_publisher(self) -> BlockingPublisher:
        """This process's confirm-window publisher (see amqp_blocking), opened lazily."""
        publisher = self._blocking
        if publisher is None:
            with self._blocking_lock:
                if self._blocking is None:
                    self._blocking = BlockingPublisher(
                        self.params, float(self.options.get("retry_timeout", 30.0)),
                        self._window)
                publisher = self._blocking
        return publisher

    def publish_blocking(self, messages: Sequence[Message]) -> None:
        """Write from this thread; RabbitMQ's confirm is checked on a later call, at
        ``flush_blocking`` or at exit (an unconfirmed message always raises)."""
        if not messages:
            return
        publisher = self.blocking_publisher()
        items = outgoing(messages)
        declare = self._declarer_for(items, publisher.declarer)
        publisher.publish(items, None if declare is None else _sync(declare))

    def delay_blocking(self, messages: Sequence[tuple[Message, float]]) -> None:
        ready, items, targets = self._plan_delay(messages)
        if ready:
            self.publish_blocking(ready)
        if items:
            publisher = self.blocking_publisher()
            publisher.publish(items, _sync(self._delay_declarer(targets, publisher.declarer)))

    def flush_blocking(self, timeout_s: float | None = None) -> None:
        """Wait for RabbitMQ's confirms of every sync publish; raise what it refused."""
        if self._blocking is not None:
            self._blocking.flush(timeout_s)

    def close_blocking(self) -> None:
        with self._blocking_lock:
            blocking, self._blocking = self._blocking, None
        if blocking is not None:
            try:
                blocking.flush()
            finally:
                blocking.close()

    # -- consuming ------------------------------------------------------------------------
    async def fetch(self, queues: Sequence[str], max_count: int, timeout_s: float
                    ) -> list[Delivery]:
        if not queues or max_count <= 0:
            return []
        return await self.inbox.take(queues, max_count, timeout_s)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self.inbox.ack(deliveries)

    async def requeue(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self.inbox.nack(deliveries, requeue=True)

    def take_pushed(self) -> list[Delivery]:
        return self.inbox.take_buffered()

    async def pause_pushes(self) -> None:
        await self.inbox.pause()

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Nothing to renew: RabbitMQ keeps a delivery while its channel lives (so the
        worker keeps no leases: ``leased`` is False)."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self.dead.add(delivery, reason, uuid.uuid4().hex)
        await self.inbox.ack([delivery])

    # -- administration -------------------------------------------------------------------
    async def purge(self, queues: Sequence[str]) -> int:
        total = 0
        for queue in queues:  # one channel each: a missing queue closes its channel
            async with self.dead.admin_channel() as channel:
                try:
                    total += int((await channel.queue_purge(queue)).message_count or 0)
                except ChannelNotFoundEntity:
                    pass
        return total

    async def queue_size(self, queue: str) -> int:
        async with self.dead.admin_channel() as channel:
            try:
                ok = await channel.queue_declare(queue, passive=True)
            except ChannelNotFoundEntity:
                return 0
            return int(ok.message_count or 0)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self.dead.list(limit)

    async def requeue_dead(self, ids: Sequence[str] | None = None) -> int:
        return await self.dead.requeue(ids, self.publish)

    async def purge_dead(self) -> int:
        return await self.dead.purge()


def _sync(declare: DeclareFn) -> Callable[[SyncChannel], Coroutine[Any, Any, None]]:
    """A declaration function for the blocking publisher's SyncChannel (same calls)."""
    async def run(channel: SyncChannel) -> None:
        await declare(cast(PublishChannel, channel))
    return run


def _reply_queue_of(items: Sequence[Outgoing]) -> QueueSpec | None:
    """This process's rpc:// reply queue, if these tasks name it as reply_to."""
    declaration = reply_queue_declaration()
    if declaration is None:
        return None
    name, arguments = declaration
    if not any(i.message.properties.get("reply_to") == name for i in items):
        return None
    return QueueSpec(name, durable=True, auto_delete=True, arguments=arguments)


__all__ = ["AMQPBroker"]
