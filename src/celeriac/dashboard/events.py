"""Where the dashboard's events come from: an ``EventSource`` yields batches of
Celery-format event dicts (``type``, ``hostname``, ``timestamp``, ``uuid``, ...).

The wire is Celery's: events are JSON (one dict, or a list for ``*.multi`` batches)
published to the ``celeryev`` exchange, a topic exchange on RabbitMQ and kombu's
fan-out over Redis PUB/SUB (Celery switches the type on Redis), channel
``<global_keyprefix>/<db>.celeryev/<routing key>`` carrying kombu's JSON envelope
(body base64 when ``body_encoding`` says so). Celery workers (``-E``) and celeriac
workers send the same thing, so one reader serves a mixed fleet.

- ``RedisEventSource``: PSUBSCRIBE to the channels above (redis-py asyncio).
- ``AmqpEventSource``: an exclusive, auto-deleted queue bound to ``celeryev`` with
  ``#`` (aiormq), as Celery's receiver does.
- ``QueueEventSource``: events put from this process (tests, the bench).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

logger = logging.getLogger("celeriac.dashboard")
Event = dict[str, Any]


class EventSource(Protocol):
    """Batches of events, for as long as the dashboard runs."""

    def batches(self) -> AsyncIterator[list[Event]]: ...

    async def close(self) -> None: ...


def decode_body(body: bytes | str) -> list[Event]:
    """An event message's body: one event or a list of them; anything else is dropped."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [e for e in value if isinstance(e, dict) and isinstance(e.get("type"), str)]


def decode_kombu_envelope(raw: bytes | str) -> list[Event]:
    """kombu's Redis envelope around an event body (``body_encoding`` base64 or not)."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(envelope, dict):
        return []
    body = envelope.get("body")
    props = envelope.get("properties") or {}
    if not isinstance(body, str):
        return []
    if isinstance(props, dict) and props.get("body_encoding") == "base64":
        try:
            return decode_body(base64.b64decode(body))
        except ValueError:
            return []
    return decode_body(body)


class QueueEventSource:
    """Events handed over in this process: ``put(events)``."""

    def __init__(self, maxsize: int = 0) -> None:
        self.queue: asyncio.Queue[list[Event] | None] = asyncio.Queue(maxsize)

    def put(self, events: list[Event]) -> None:
        self.queue.put_nowait(events)

    async def batches(self) -> AsyncIterator[list[Event]]:
        while (batch := await self.queue.get()) is not None:
            yield batch

    async def close(self) -> None:
        self.queue.put_nowait(None)


class RedisEventSource:
    """kombu's fan-out of ``celeryev`` over Redis PUB/SUB (see the module docstring)."""

    def __init__(self, url: str, exchange: str = "celeryev", keyprefix: str = "") -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url)
        db = int((urlsplit(url).path or "/0").lstrip("/") or 0)
        self.pattern = f"{keyprefix}/{db}.{exchange}/*"
        self.pubsub: Any = None

    async def batches(self) -> AsyncIterator[list[Event]]:
        self.pubsub = self.client.pubsub()
        await self.pubsub.psubscribe(self.pattern)
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True,
                                                    timeout=1.0)
            if message is None or message.get("type") != "pmessage":
                continue
            events = decode_kombu_envelope(message["data"])
            if events:
                yield events

    async def close(self) -> None:
        if self.pubsub is not None:
            try:
                await self.pubsub.aclose()
            except Exception:
                pass
        await self.client.aclose()


class AmqpEventSource:
    """An exclusive queue bound to the ``celeryev`` topic exchange with ``#``."""

    def __init__(self, url: str, exchange: str = "celeryev") -> None:
        self.url = url
        self.exchange = exchange
        self.connection: Any = None
        self.inbox: asyncio.Queue[list[Event]] = asyncio.Queue(10_000)

    async def batches(self) -> AsyncIterator[list[Event]]:
        import aiormq

        self.connection = await aiormq.connect(self.url)
        channel = await self.connection.channel()
        await channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        name = f"celeriac.dashboard.{uuid.uuid4().hex[:12]}"
        await channel.queue_declare(name, exclusive=True, auto_delete=True,
                                    arguments={"x-message-ttl": 60_000})
        await channel.queue_bind(name, self.exchange, routing_key="#")

        async def on_message(message: Any) -> None:
            events = decode_body(message.body)
            if events:
                try:
                    self.inbox.put_nowait(events)
                except asyncio.QueueFull:  # the dashboard is behind: drop, never block
                    logger.warning("dashboard: event inbox full, %d events dropped",
                                   len(events))

        await channel.basic_consume(name, on_message, no_ack=True)
        while True:
            yield await self.inbox.get()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


def event_source(app: Any) -> EventSource:
    """The reader for the app's broker (Redis or RabbitMQ); others have no events."""
    url = str(app.broker_url or "")
    try:
        exchange = str(app.conf["event_exchange"] or "celeryev")
    except (KeyError, AttributeError):  # the setting comes with celeriac.events
        exchange = "celeryev"
    scheme = url.split("://", 1)[0]
    if scheme in ("redis", "rediss"):
        options = app.conf.broker_transport_options or {}
        return RedisEventSource(url, exchange, str(options.get("global_keyprefix") or ""))
    if scheme in ("amqp", "amqps", "pyamqp"):
        return AmqpEventSource(url.replace("pyamqp://", "amqp://", 1), exchange)
    logger.warning("dashboard: the %s broker carries no events; workers and tasks stay "
                   "empty (queues and actions still work)", scheme or "default")
    return QueueEventSource()
