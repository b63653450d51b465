"""``task-sent`` events from the client, with ``task_send_sent_event`` on (Celery's).

Celery's client sends one ``task-sent`` per published task, from an anonymous node
``gen<pid>@<host>``, with the message's ``uuid``, ``root_id``, ``parent_id``, ``name``,
``args``/``kwargs`` (the reprs), ``retries``, ``eta``, ``expires``, and where it went:
``queue``, ``exchange``, ``routing_key``. celeriac sends the same fields; a bulk send
(``send_many``, a group) sends its events as one list message (``task.multi``), which
Celery's receivers and Flower read as the single events they contain.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac.events.event import event, event_exchange, event_message

if TYPE_CHECKING:
    from celeriac.brokers.base import Broker
    from celeriac.control.wire import LamportClock
    from celeriac.protocol import Message


def client_nodename() -> str:
    """Celery's ``anon_nodename()``: the pid is read each time (a fork has its own)."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


def sent_event(message: Message, hostname: str, clock: int) -> dict[str, Any]:
    headers = message.headers
    return event("task-sent", hostname, clock, uuid=message.task_id,
                 root_id=headers.get("root_id"), parent_id=headers.get("parent_id"),
                 name=headers.get("task"), args=headers.get("argsrepr"),
                 kwargs=headers.get("kwargsrepr"), retries=headers.get("retries") or 0,
                 eta=headers.get("eta"), expires=headers.get("expires"), queue=message.routing_key,
                 exchange=message.exchange, routing_key=message.routing_key)


async def send_sent_events(broker: Broker, messages: Sequence[Message], clock: LamportClock,
                           exchange: str = "celeryev") -> None:
    """Broadcast the events of messages just published: one event, or one list."""
    if not messages or not broker.supports_broadcast:
        return
    hostname = client_nodename()
    events = [sent_event(m, hostname, clock.forward()) for m in messages]
    body: dict[str, Any] | list[dict[str, Any]] = events[0] if len(events) == 1 else events
    await broker.broadcast(event_exchange(exchange), event_message(body, hostname))
