"""Receiving Celery's events through the broker contract (any broker with broadcast).

``capture(app, handler)`` subscribes to the event exchange (``celeryev``, every routing
key) and calls ``handler(events)`` with each batch as it arrives: list messages
(``*.multi``) are flattened, each event's ``timestamp`` is moved to this machine's
offset from UTC as Celery's receiver does, and ``local_received`` is added. A message
that is not a JSON event (or list of them) is logged once at debug level and skipped.
Celery workers, celeriac workers and clients (``task-sent``) all send this format.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from celeriac.events.event import event_exchange, utcoffset

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.protocol import Message

logger = logging.getLogger("celeriac.events")
Event = dict[str, Any]
#: how long one read waits before looking at the stop flag
READ_WAIT_S = 0.5


def decode(message: Message) -> list[Event]:
    """The events in one message; [] for anything that is not JSON events."""
    if message.content_type not in ("application/json", "json"):
        return []
    try:
        body = orjson.loads(message.body)
    except orjson.JSONDecodeError:
        return []
    items = body if isinstance(body, list) else [body]
    return [e for e in items if isinstance(e, dict) and isinstance(e.get("type"), str)]


def localize(event: Event, here: int | None = None) -> Event:
    """Celery's ``adjust_timestamp``: the sender's ``utcoffset`` (hours west of UTC)
    against ours, so timestamps from another zone compare with local ones."""
    offset, stamp = event.get("utcoffset"), event.get("timestamp")
    if isinstance(offset, (int, float)) and isinstance(stamp, (int, float)):
        event["timestamp"] = stamp - (offset - (utcoffset() if here is None else here)) * 3600
    event["local_received"] = time.time()
    return event


async def capture(app: Celery, handler: Callable[[list[Event]], None],
                  stop: asyncio.Event | None = None, ready: Callable[[], None] | None = None
                  ) -> None:
    """Subscribe, then hand batches to ``handler`` until ``stop`` is set (or forever).
    ``ready`` is called once the subscription exists (events sent after it are seen)."""
    broker = await app.clients.broker()
    if not broker.supports_broadcast:
        raise RuntimeError(f"the {type(broker).__name__} has no broadcast: no events")
    exchange = event_exchange(str(app.conf.event_exchange or "celeryev"))
    sub = await broker.subscribe(exchange, f"celeriac-events.{uuid.uuid4()}", "#")
    if ready is not None:
        ready()
    here = utcoffset()
    try:
        while stop is None or not stop.is_set():
            messages = await sub.get(READ_WAIT_S)
            events: list[Event] = []
            for message in messages:
                found = decode(message)
                if not found:
                    logger.debug("skipped a message that is not an event: %r",
                                 message.body[:200])
                events.extend(localize(e, here) for e in found)
            if events:
                handler(events)
    finally:
        try:
            await sub.close()
        except Exception as exc:
            logger.debug("closing the event subscription: %s", exc)
