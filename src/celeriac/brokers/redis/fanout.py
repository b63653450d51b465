"""Broadcast on Redis the way kombu does it, so Celery's pidbox and events reach us.

- A fan-out or topic exchange is Redis PUB/SUB: a message for exchange ``E`` with
  routing key ``K`` is PUBLISHed (kombu envelope; a JSON body as text, not base64) on
  channel ``/{db}.E/K``, or
  ``/{db}.E`` when ``K`` is empty (kombu's ``fanout_prefix`` and ``fanout_patterns``,
  both on by default; the transport options of the same names change them as in
  kombu). A subscriber PSUBSCRIBEs ``/{db}.E/<binding with # as *>``: Celery's
  workers listen on ``/{db}.celery.pidbox``, its event receivers on ``/{db}.celeryev/*``.
- A mailbox (control replies) is a kombu queue: a list named as the queue, reached
  through the direct exchange's binding set ``_kombu.binding.<exchange>`` (members
  ``routing_key\\x06\\x16\\x06\\x16queue``), which is how a Celery worker finds
  our reply queue and we find a Celery client's. Unread replies expire after a minute.
- Revoked ids: sorted set ``_celeriac.revoked`` (score = when it is forgotten).
Every key and channel is behind ``global_keyprefix``, like kombu's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from celeriac.brokers.base import Exchange, Subscription
from celeriac.brokers.redis.connection import RETRYABLE, RedisConnection
from celeriac.errors import DecodeError
from celeriac.protocol import Message, from_envelope, to_envelope, to_text_envelope

log = logging.getLogger(__name__)
SEP = "\x06\x16"
#: an unread control reply is dropped after this long
MAILBOX_EXPIRE_MS = 60_000


class RedisFanout:
    """Broadcast, mailboxes and the revoked store on one RedisConnection."""

    def __init__(self, redis: RedisConnection, options: dict[str, Any], prefix: str) -> None:
        self.redis, self.prefix = redis, prefix
        fanout_prefix = options.get("fanout_prefix", True)
        if isinstance(fanout_prefix, str):
            self._fanout_prefix = fanout_prefix
        else:
            self._fanout_prefix = "/{db}." if fanout_prefix else ""
        self.patterns = bool(options.get("fanout_patterns", True))

    def _db(self) -> int:
        kwargs = self.redis.client.connection_pool.connection_kwargs
        return int(kwargs.get("db") or 0)

    def topic(self, exchange: str, routing_key: str) -> str:
        """kombu's ``_get_publish_topic``, prefixed."""
        head = self.prefix + self._fanout_prefix.format(db=self._db()) + exchange
        if routing_key and self.patterns:
            return f"{head}/{routing_key}"
        return head

    async def broadcast(self, exchange: Exchange, message: Message) -> None:
        """PUBLISH on a lane of its own: a worker's event batches (tens of KB) must not
        hold the main lane, where fetches and acks wait their turn. A JSON body goes
        as text (``to_text_envelope``)."""
        message = _routed(message, exchange.name)
        command = ("PUBLISH", self.topic(exchange.name, message.routing_key),
                   to_text_envelope(message))
        await self.redis.retry(partial(self.redis.lane("broadcast").execute, command))

    async def subscribe(self, exchange: Exchange, queue: str, binding: str) -> Subscription:
        """PSUBSCRIBE to the exchange's topics (``queue`` unused: no queue on PUB/SUB)."""
        if exchange.kind == "fanout":  # keys do not matter: hear both forms
            patterns = [self.topic(exchange.name, ""), self.topic(exchange.name, "*")]
        else:
            patterns = [self.topic(exchange.name, binding.replace("#", "*"))]
        sub = _PubSub(self.redis, patterns)
        await sub.start()
        return sub

    def _binding_key(self, exchange: str) -> str:
        return f"{self.prefix}_kombu.binding.{exchange}"

    async def send_direct(self, exchange: str, routing_key: str, message: Message) -> None:
        [members] = await self.redis.run(("SMEMBERS", self._binding_key(exchange)))
        queues = []
        for member in members or ():
            text = member.decode() if isinstance(member, bytes) else str(member)
            key, _, queue = text.split(SEP, 2) if text.count(SEP) >= 2 else ("", "", "")
            if key == routing_key and queue:
                queues.append(queue)
        if not queues:
            return
        envelope = to_envelope(_routed(message, exchange))
        commands: list[tuple[Any, ...]] = []
        for queue in queues:
            commands += [("LPUSH", self.prefix + queue, envelope),
                         ("PEXPIRE", self.prefix + queue, MAILBOX_EXPIRE_MS)]
        await self.redis.run(*commands)

    async def open_mailbox(self, exchange: str, routing_key: str, queue: str) -> Subscription:
        member = SEP.join([routing_key, "", queue])
        await self.redis.run(("SADD", self._binding_key(exchange), member))
        return _Mailbox(self.redis, self.prefix + queue, self._binding_key(exchange), member)

    async def store_revoked(self, ids: Sequence[str], ttl_s: float) -> None:
        if not ids:
            return
        until = time.time() + ttl_s
        key = self.prefix + "_celeriac.revoked"
        pairs: list[Any] = []
        for task_id in ids:
            pairs += [until, task_id]
        # GT: a shorter revoke never shortens a longer one (new ids are added)
        await self.redis.run(("ZADD", key, "GT", *pairs))

    async def load_revoked(self) -> dict[str, float]:
        key = self.prefix + "_celeriac.revoked"
        _, rows = await self.redis.run(("ZREMRANGEBYSCORE", key, "-inf", time.time()),
                                       ("ZRANGE", key, 0, -1, "WITHSCORES"))
        pairs = list(rows or ())
        return {(k.decode() if isinstance(k, bytes) else str(k)): float(v)
                for k, v in zip(pairs[::2], pairs[1::2], strict=True)}


def _routed(message: Message, exchange: str) -> Message:
    return Message(message.headers, message.body, message.properties, message.content_type,
                   message.content_encoding, exchange, message.routing_key)


class _PubSub(Subscription):
    """PSUBSCRIBEd patterns on a connection of their own; resubscribes after a loss."""

    def __init__(self, redis: RedisConnection, patterns: list[str]) -> None:
        self.redis, self.patterns = redis, patterns
        self._pubsub: Any = None
        self._closed = False

    async def start(self) -> None:
        pubsub = self.redis.client.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(*self.patterns)
        self._pubsub = pubsub

    async def get(self, timeout_s: float) -> list[Message]:
        if self._closed:
            return []
        try:
            if self._pubsub is None:
                await self.start()
            got = await self._read(timeout_s)
        except (*RETRYABLE, RedisError) as exc:
            log.warning("broadcast subscription lost its Redis connection (%s); "
                        "subscribing again", exc)
            await self._drop()
            await asyncio.sleep(min(1.0, max(0.05, timeout_s)))
            return []
        return got

    async def _read(self, timeout_s: float) -> list[Message]:
        pubsub, got = self._pubsub, []
        item = await pubsub.get_message(timeout=timeout_s)
        while item is not None:
            message = _decode(item)
            if message is not None:
                got.append(message)
            item = await pubsub.get_message(timeout=0.0)
        return got

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:  # already broken
                pass

    async def close(self) -> None:
        self._closed = True
        await self._drop()


def _decode(item: dict[str, Any]) -> Message | None:
    if item.get("type") not in ("pmessage", "message"):
        return None
    try:
        return from_envelope(item["data"])
    except DecodeError as exc:
        log.warning("dropped a broadcast that is not a kombu envelope: %s", exc)
        return None


class _Mailbox(Subscription):
    """A kombu queue (list) read with BRPOP on a lane of its own."""

    def __init__(self, redis: RedisConnection, key: str, binding_key: str, member: str
                 ) -> None:
        self.redis, self.key = redis, key
        self.binding_key, self.member = binding_key, member
        self._lane = f"mailbox-{id(self)}"

    async def get(self, timeout_s: float) -> list[Message]:
        lane = self.redis.lane(self._lane)
        try:
            [reply] = await lane.execute(("BRPOP", self.key, max(0.01, timeout_s)))
        except RETRYABLE as exc:
            log.warning("control mailbox lost its Redis connection (%s)", exc)
            await lane.reset()
            await asyncio.sleep(0.1)
            return []
        if not reply:
            return []
        got = []
        raws = [reply[1]]
        [more] = await lane.execute(("RPOP", self.key, 100))  # the rest, oldest first
        raws += list(more or ())
        for raw in raws:
            try:
                got.append(from_envelope(raw))
            except DecodeError as exc:
                log.warning("dropped a control reply that is not a kombu envelope: %s", exc)
        return got

    async def close(self) -> None:
        try:
            await self.redis.run(("SREM", self.binding_key, self.member), ("DEL", self.key))
        finally:
            lane = self.redis._lanes.pop(self._lane, None)
            if lane is not None:
                await lane.close()
