"""The consuming side: RabbitMQ pushes deliveries, ``fetch`` takes them from a buffer.

``Inbox`` opens one consumer channel with ``basic.qos(prefetch)`` and a
``basic.consume`` per queue (consumer argument ``x-consumer-timeout``, honoured by
RabbitMQ 3.12+, so a long task does not get its channel closed). Each delivery is
decoded inline by ``ConsumerChannel`` and appended to its queue's buffer: no Task and
no Future per message. ``take`` hands out buffered deliveries, waiting for the first.

Acks are written without waiting for a reply. Tags are acked in order when possible:
when every delivery up to a tag is finished, one ``basic.ack(multiple=True)`` covers
them all; a finished delivery behind a still-running one is acked on its own.

The lease of a delivery is its channel: RabbitMQ redelivers every unacked message when
the channel or connection closes (worker killed, network lost), and never while it is
open. A delivery from a channel that has since closed carries an old ``epoch`` in its
tag; acking it is a no-op (RabbitMQ has already requeued it, and acking an unknown tag
would close the new channel).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from aiormq.abc import ChannelFrame
from pamqp import commands as spec

from celeriac.brokers.amqp.headers import HeaderDecoder
from celeriac.brokers.amqp.link import write_frames
from celeriac.brokers.amqp.reader import FAST_TAG_PREFIX, Delivered
from celeriac.brokers.amqp.session import Session
from celeriac.brokers.amqp.topology import (
    DELIVER_EXCHANGE,
    ORIGIN_EXCHANGE,
    ORIGIN_ROUTING_KEY,
    Topology,
)
from celeriac.brokers.amqp.wire import ConsumerChannel, message_from, open_channel, to_message
from celeriac.brokers.base import Delivery
from celeriac.protocol import Message

log = logging.getLogger("celeriac.brokers.amqp")


class Inbox:
    """See the module docstring."""

    def __init__(self, session: Session, topology: Topology, *, prefetch: int | None,
                 consumer_timeout_ms: int | None) -> None:
        self.session = session
        self.topology = topology
        self.prefetch = prefetch
        self.consumer_timeout_ms = consumer_timeout_ms
        self.channel: ConsumerChannel | None = None
        self.epoch = 0
        self._generation = 0
        self._consuming: dict[str, str] = {}  # consumer tag -> queue
        self._cancelled: set[str] = set()
        self._buffers: dict[str, deque[Delivery]] = {}
        #: delivery tag -> finished?, in delivery order (for multiple=True acks)
        self._unacked: OrderedDict[int, bool] = OrderedDict()
        self._wakeup: asyncio.Future[None] | None = None
        self._rotation = 0
        self._decode_header = HeaderDecoder()
        #: consumers cancelled by pause(): the next take consumes at its own prefetch
        self._paused = False

    # -- consuming ----------------------------------------------------------------------
    async def _ensure(self, queues: Sequence[str], max_count: int) -> ConsumerChannel:
        publisher = await self.session.ready()
        channel = self.channel
        if channel is None or channel.is_closed or self._generation != self.session.generation:
            channel = await self._open(max_count)
        handed_out = len(self._unacked) - self._buffered()
        missing = [q for q in queues if q not in self._active_queues()]
        if missing and self._paused and self.prefetch != handed_out + max_count:
            # consuming again after pause(): at the prefetch the caller wants now (a
            # child that ran a long task asks for a few, not the deep window of before)
            self.prefetch = max(1, handed_out + max_count)
            await channel.basic_qos(prefetch_count=self.prefetch)
        self._paused = False
        for queue in missing:
            await self.session.declarer.queue(publisher, self.topology.queue(queue))
            await self._consume(channel, queue)
        if self.prefetch is not None and handed_out + max_count > self.prefetch:
            await self._grow(channel, handed_out + max_count)
        return channel

    def take_buffered(self) -> list[Delivery]:
        """Every delivery pushed but not taken yet (a consumer child gives them back
        before a long task, so they do not wait behind it)."""
        taken: list[Delivery] = []
        for buffer in self._buffers.values():
            taken.extend(buffer)
            buffer.clear()
        return taken

    async def pause(self) -> None:
        """Stop RabbitMQ pushing deliveries (cancel the consumers; unacked deliveries
        stay with the channel) until the next ``take`` consumes again, at the prefetch
        it asks for then. A consumer child pauses while a long task runs."""
        channel = self.channel
        if channel is None or channel.is_closed:
            return
        self._paused = True
        for tag in [t for t in self._consuming if t not in self._cancelled]:
            self._cancelled.add(tag)
            await channel.basic_cancel(tag)

    async def _grow(self, channel: ConsumerChannel, prefetch: int) -> None:
        """Raise the prefetch to what the caller holds plus what it asks for.

        A consumer keeps the prefetch it started with, so each queue gets a new consumer
        and the old one is cancelled; its unacked deliveries stay with the channel.
        """
        self.prefetch = prefetch
        await channel.basic_qos(prefetch_count=prefetch)
        for old_tag, queue in [(t, q) for t, q in self._consuming.items()
                               if t not in self._cancelled]:
            await self._consume(channel, queue)
            self._cancelled.add(old_tag)
            await channel.basic_cancel(old_tag)

    def _active_queues(self) -> set[str]:
        return {q for tag, q in self._consuming.items() if tag not in self._cancelled}

    async def _open(self, max_count: int) -> ConsumerChannel:
        if self.channel is not None and not self.channel.is_closed:
            await self.channel.close()
        conn = self.session.conn
        assert conn is not None
        channel = await open_channel(conn, ConsumerChannel, confirms=False)
        channel.on_delivery = self._on_delivery
        channel.on_delivered = self._on_delivered
        self.prefetch = self.prefetch or max(1, max_count)
        await channel.basic_qos(prefetch_count=self.prefetch)
        self.channel = channel
        self._generation = self.session.generation
        self.epoch += 1
        self._consuming.clear()
        self._cancelled.clear()
        self._unacked.clear()
        for buffer in self._buffers.values():
            buffer.clear()  # unacked on the old channel: RabbitMQ redelivers them
        channel.closing.add_done_callback(lambda _: self._wake())
        return channel

    async def _consume(self, channel: ConsumerChannel, queue: str) -> None:
        arguments: dict[str, Any] = {}
        if self.consumer_timeout_ms:
            arguments["x-consumer-timeout"] = self.consumer_timeout_ms
        consumer_tag = f"{FAST_TAG_PREFIX}{uuid.uuid4().hex[:12]}.{queue}"[:255]
        self._buffers.setdefault(queue, deque())
        self._consuming[consumer_tag] = queue  # deliveries may come before consume-ok
        self._cancelled.discard(consumer_tag)
        try:
            await channel.basic_consume(queue, _unused_callback, arguments=arguments,
                                        consumer_tag=consumer_tag)
        except BaseException:
            self._consuming.pop(consumer_tag, None)
            raise

    def _on_delivery(self, frame: spec.Basic.Deliver, props: spec.Basic.Properties,
                     body: bytes) -> None:
        """A delivery through aiormq's stock reader (pamqp objects)."""
        exchange, routing_key = frame.exchange or "", frame.routing_key or ""
        self._add(str(frame.consumer_tag), int(frame.delivery_tag or 0),
                  bool(frame.redelivered), to_message(props, body, exchange, routing_key))

    def _on_delivered(self, run: list[Delivered]) -> None:
        """Deliveries parsed straight from the socket's bytes (amqp_reader), a run of
        them at a time. One whose properties cannot be read still becomes a delivery,
        carrying the error, so the worker dead-letters it: this runs on the
        connection's reader and must not raise."""
        decode, consuming, buffers = self._decode_header, self._consuming, self._buffers
        unacked, epoch = self._unacked, self.epoch
        for d in run:
            error = None
            try:
                content_type, content_encoding, headers, properties = decode(d.header)
                message = message_from(content_type, content_encoding, headers,
                                       properties, d.body, d.exchange, d.routing_key)
            except Exception as exc:
                message = Message(headers={}, body=d.body, exchange=d.exchange,
                                  routing_key=d.routing_key)
                error = f"unreadable AMQP properties: {type(exc).__name__}: {exc}"
            queue = consuming.get(d.consumer_tag, "")
            if message.exchange == DELIVER_EXCHANGE:  # arrived through the delay levels
                _restore_route(message, queue)
            tag = d.delivery_tag
            unacked[tag] = False
            buffer = buffers.get(queue)
            if buffer is None:
                buffer = buffers[queue] = deque()
            buffer.append(Delivery(message, queue, (epoch, tag), d.redelivered, error))
        if self._wakeup is not None:
            self._wake()

    def _add(self, consumer_tag: str, tag: int, redelivered: bool, message: Message,
             error: str | None = None) -> None:
        queue = self._consuming.get(consumer_tag, "")
        if message.exchange == DELIVER_EXCHANGE:  # arrived through the delay levels
            _restore_route(message, queue)
        self._unacked[tag] = False
        buffer = self._buffers.get(queue)
        if buffer is None:
            buffer = self._buffers[queue] = deque()
        buffer.append(Delivery(message, queue, (self.epoch, tag), redelivered, error))
        if self._wakeup is not None:
            self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def take(self, queues: Sequence[str], max_count: int, timeout_s: float
                   ) -> list[Delivery]:
        """Up to max_count buffered deliveries, waiting up to timeout_s for the first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout_s)
        while True:
            channel = await self._ensure(queues, max_count)
            await self._linger(max_count)
            taken = self._pop(queues, max_count)
            if taken or loop.time() >= deadline:
                return taken
            self._wakeup = loop.create_future()
            try:
                await asyncio.wait_for(self._wakeup, deadline - loop.time())
            except TimeoutError:
                pass
            finally:
                self._wakeup = None
            if channel.is_closed:
                log.warning("the consumer channel closed (%s); opening a new one",
                            _close_reason(channel))

    async def _linger(self, max_count: int) -> None:
        """Let a burst still being read off the socket fill the batch (no timer: a few
        turns of the loop, until two turns bring nothing new)."""
        buffered, idle = self._buffered(), 0
        while 0 < buffered < max_count and idle < 2:
            await asyncio.sleep(0)
            now = self._buffered()
            idle = idle + 1 if now == buffered else 0
            buffered = now

    def _buffered(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def _pop(self, queues: Sequence[str], max_count: int) -> list[Delivery]:
        taken: list[Delivery] = []
        self._rotation = (self._rotation + 1) % len(queues)
        for queue in [*queues[self._rotation:], *queues[:self._rotation]]:
            buffer = self._buffers.get(queue)
            while buffer and len(taken) < max_count:
                taken.append(buffer.popleft())
        return taken

    # -- settling -----------------------------------------------------------------------
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        channel = self.channel
        if channel is None or channel.is_closed:
            return
        unacked = self._unacked
        singles: list[int] = []
        for d in deliveries:
            epoch, tag = d.tag
            if epoch == self.epoch and tag in unacked:
                unacked[tag] = True
        frames: list[Any] = []
        upto = 0
        while unacked:
            tag, finished = next(iter(unacked.items()))
            if not finished:
                break
            unacked.popitem(last=False)
            upto = tag
        if upto:
            frames.append(spec.Basic.Ack(delivery_tag=upto, multiple=True))
        for d in deliveries:
            epoch, tag = d.tag
            if epoch == self.epoch and unacked.get(tag):
                del unacked[tag]
                singles.append(tag)
        frames += [spec.Basic.Ack(delivery_tag=tag) for tag in singles]
        if frames:
            await self._send(frames)

    async def nack(self, deliveries: Sequence[Delivery], requeue: bool = True) -> None:
        """Give deliveries back (requeue) or drop them (RabbitMQ may dead-letter them)."""
        channel = self.channel
        if channel is None or channel.is_closed:
            return
        frames: list[Any] = []
        for d in deliveries:
            epoch, tag = d.tag
            if epoch == self.epoch and self._unacked.pop(tag, None) is not None:
                frames.append(spec.Basic.Nack(delivery_tag=tag, multiple=False,
                                              requeue=requeue))
        if frames:
            await self._send(frames)

    async def _send(self, frames: list[Any]) -> None:
        channel = self.channel
        assert channel is not None
        await write_frames(channel.connection, ChannelFrame.marshall(
            channel_number=channel.number, frames=frames).payload)

    async def close(self) -> None:
        """Stop consuming and give back what was buffered but not handed out."""
        channel, self.channel = self.channel, None
        if channel is None or channel.is_closed:
            return
        held = [d for buffer in self._buffers.values() for d in buffer]
        for buffer in self._buffers.values():
            buffer.clear()
        try:
            for consumer_tag in list(self._consuming):
                if consumer_tag not in self._cancelled:
                    await channel.basic_cancel(consumer_tag)
            self.channel = channel
            await self.nack(held, requeue=True)
        except Exception as exc:  # closing the channel requeues them anyway
            log.debug("closing the consumer channel: %s", exc)
        finally:
            self.channel = None
            self._consuming.clear()
            await channel.close()


def _restore_route(message: Message, queue: str) -> None:
    """A message that waited in the delay levels: its exchange and routing key again."""
    headers = message.headers
    message.exchange = str(headers.pop(ORIGIN_EXCHANGE, "") or "")
    message.routing_key = str(headers.pop(ORIGIN_ROUTING_KEY, queue) or queue)


async def _unused_callback(_: Any) -> None:
    """ConsumerChannel hands deliveries to Inbox._on_delivery; aiormq wants a callback."""


def _close_reason(channel: ConsumerChannel) -> str:
    exc = getattr(channel, "_close_exception", None)
    return str(exc) if exc else "closed"
