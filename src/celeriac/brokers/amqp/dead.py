"""The dead-letter queue ``celeriac.dead`` on RabbitMQ: add, list, requeue, purge.

A dead letter is the original message (headers, properties, body untouched) published
with confirms to the fanout exchange ``celeriac.dead`` plus four headers: its id, the
reason, the queue it came from and when. Messages RabbitMQ dead-letters itself (a
queue whose ``x-dead-letter-exchange`` is ``celeriac.dead``) carry ``x-death`` instead;
their reason and queue come from there and their id from a hash of the message.

AMQP cannot peek, so ``list`` reads with ``basic.get`` on a private channel and closes
it without acking: RabbitMQ puts every message back where it was. ``requeue`` acks the
chosen ones after republishing them to their queue (confirmed), and leaves the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity
from pamqp import commands as spec

from celeriac.brokers.amqp.session import Session
from celeriac.brokers.amqp.topology import (
    DEAD_LETTER_NAME,
    ORIGIN_EXCHANGE,
    ORIGIN_ROUTING_KEY,
    Topology,
)
from celeriac.brokers.amqp.wire import DEATH_HEADERS, Outgoing, PublishChannel, to_message
from celeriac.brokers.base import DeadLetter, Delivery
from celeriac.protocol import Message

DEAD_ID = "x-celeriac-dead-id"
DEAD_REASON = "x-celeriac-dead-reason"
DEAD_QUEUE = "x-celeriac-dead-queue"
DEAD_AT = "x-celeriac-dead-at"
_OURS = frozenset({DEAD_ID, DEAD_REASON, DEAD_QUEUE, DEAD_AT, ORIGIN_EXCHANGE,
                   ORIGIN_ROUTING_KEY})
#: most messages one requeue or list call walks through
SCAN_LIMIT = 100_000


class DeadLetterQueue:
    """See the module docstring."""

    def __init__(self, session: Session, topology: Topology) -> None:
        self.session = session
        self.topology = topology

    @asynccontextmanager
    async def admin_channel(self) -> AsyncIterator[AbstractChannel]:
        """A short-lived plain channel: a failed passive declare only closes this one."""
        await self.session.ready()
        conn = self.session.conn
        assert conn is not None
        channel = await conn.channel(publisher_confirms=False)
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _declare(self, channel: PublishChannel) -> None:
        await self.session.declarer.dead_letters(channel)

    async def add(self, delivery: Delivery, reason: str, letter_id: str) -> None:
        message = delivery.message
        headers = dict(message.headers)
        headers.update({DEAD_ID: letter_id, DEAD_REASON: reason, DEAD_QUEUE: delivery.queue,
                        DEAD_AT: time.time()})
        copy = Message(headers, message.body, dict(message.properties), message.content_type,
                       message.content_encoding, message.exchange, message.routing_key)
        item = Outgoing(DEAD_LETTER_NAME, delivery.queue, copy, drop_expiration=True)
        await self.session.publish([item], self._declare)

    async def _read(self, channel: AbstractChannel, limit: int
                    ) -> AsyncIterator[tuple[int, DeadLetter]]:
        await self.session.declarer.dead_letters(await self.session.ready())
        # only what is there now: a requeued letter that fails again is not read twice
        present = (await channel.queue_declare(DEAD_LETTER_NAME, passive=True)).message_count
        for _ in range(min(limit, int(present or 0))):
            got = await channel.basic_get(DEAD_LETTER_NAME, no_ack=False)
            if not isinstance(got.delivery, spec.Basic.GetOk):
                return
            props = got.header.properties
            yield int(got.delivery.delivery_tag or 0), _letter(
                to_message(props, got.body, got.delivery.exchange or "",
                           got.delivery.routing_key or "", keep_death=True))

    async def list(self, limit: int) -> list[DeadLetter]:
        async with self.admin_channel() as channel:
            return [letter async for _, letter in self._read(channel, limit)]

    async def requeue(self, ids: Sequence[str] | None,
                      publish: Callable[[Sequence[Message]], Awaitable[None]]) -> int:
        wanted = None if ids is None else set(ids)
        moved = 0
        async with self.admin_channel() as channel:
            async for tag, letter in self._read(channel, SCAN_LIMIT):
                if wanted is not None and letter.id not in wanted:
                    continue
                message = letter.message
                message.exchange, message.routing_key = "", letter.queue
                await publish([message])
                await channel.basic_ack(tag)
                moved += 1
                if wanted is not None:
                    wanted.discard(letter.id)
                    if not wanted:
                        break
        return moved

    async def purge(self) -> int:
        async with self.admin_channel() as channel:
            try:
                ok = await channel.queue_purge(DEAD_LETTER_NAME)
            except ChannelNotFoundEntity:
                return 0
            return int(ok.message_count or 0)


def _letter(message: Message) -> DeadLetter:
    """A message read from celeriac.dead -> DeadLetter (ours, or one RabbitMQ made)."""
    headers = message.headers
    letter_id = headers.get(DEAD_ID)
    if letter_id is not None:
        queue = str(headers.get(DEAD_QUEUE) or "")
        reason = str(headers.get(DEAD_REASON) or "")
        failed_at = float(headers.get(DEAD_AT) or 0.0)
    else:
        queue, reason, failed_at, letter_id = _from_death(message)
    message.headers = {k: v for k, v in headers.items()
                       if k not in _OURS and k not in DEATH_HEADERS}
    message.routing_key = queue
    return DeadLetter(str(letter_id), queue, reason, failed_at, message)


def _from_death(message: Message) -> tuple[str, str, float, str]:
    headers = message.headers
    deaths: Any = headers.get("x-death") or [{}]
    first = deaths[-1] if isinstance(deaths, list) and deaths else {}
    queue = str(headers.get("x-first-death-queue") or first.get("queue") or "")
    reason = f"dead-lettered by RabbitMQ: {headers.get('x-first-death-reason') or '?'}"
    stamp = first.get("time")
    failed_at = float(stamp.timestamp()) if isinstance(stamp, dt.datetime) else 0.0
    digest = hashlib.sha1(repr((message.body, message.properties.get("correlation_id"),
                                queue, failed_at)).encode(), usedforsecurity=False)
    return queue, reason, failed_at, f"rmq-{digest.hexdigest()[:16]}"
