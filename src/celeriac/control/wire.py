"""kombu's pidbox on the wire: requests, replies, names, and the Lamport clock.

A request is a JSON body ``{"method", "arguments", "destination", "pattern",
"matcher"}`` plus ``ticket`` and ``reply_to: {"exchange", "routing_key"}`` when a reply
is wanted, with headers ``{clock, expires}``, broadcast on the fanout exchange
``<namespace>.pidbox`` (namespace = ``control_exchange``, "celery"). A reply is
``{<hostname>: <answer>}`` sent to the reply exchange ``reply.<namespace>.pidbox``
with the client's oid as routing key and headers ``{ticket, clock}``.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from celeriac.brokers.base import Exchange
from celeriac.errors import DecodeError
from celeriac.protocol import Message

JSON = "application/json"


def pidbox_exchange(namespace: str) -> Exchange:
    return Exchange(f"{namespace}.pidbox", "fanout", durable=False)


def reply_exchange(namespace: str) -> str:
    return f"reply.{namespace}.pidbox"


def node_queue(hostname: str, namespace: str) -> str:
    """A worker's own queue on AMQP: ``<hostname>.celery.pidbox``."""
    return f"{hostname}.{namespace}.pidbox"


def reply_queue(oid: str, namespace: str) -> str:
    return f"{oid}.{reply_exchange(namespace)}"


class LamportClock:
    """Celery's logical clock: forward on send, adjust to max(ours, theirs) + 1.

    ``forward`` takes no lock: ``next()`` on an ``itertools.count`` is atomic under the
    GIL, and it runs for every task event with ``-E`` (a lock cost 0.3 us a call).
    ``adjust`` (a message from another clock) moves to a new counter under a lock; a
    thread ticking the old one at that instant may repeat a value, which receivers
    (Celery's and Flower's) take as a tie, as they do between workers.
    """

    def __init__(self) -> None:
        #: the values still to hand out: ``next(clock.ticks)`` is one tick (task events
        #: tick this way, without a method call; read the attribute each time, as
        #: ``adjust`` replaces the counter)
        self.ticks = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        """The last value handed out or adjusted to: the counter's next value less one
        (an ``itertools.count`` shows it only in its repr, ``count(N)``)."""
        return int(repr(self.ticks)[6:-1]) - 1

    def forward(self, by: int = 1) -> int:
        """Advance by ``by`` ticks (one per event sent); the last tick's value."""
        ticks = self.ticks
        value = next(ticks)
        while by > 1:
            value, by = next(ticks), by - 1
        return value

    def adjust(self, other: Any) -> int:
        with self._lock:
            if isinstance(other, int) and not isinstance(other, bool):
                value = max(next(self.ticks), other) + 1
                self.ticks = itertools.count(value + 1)
                return value
            return self.value


def _message(body: dict[str, Any], headers: dict[str, Any], routing_key: str = "") -> Message:
    return Message(headers=headers, body=orjson.dumps(body, default=repr),
                   properties={"delivery_mode": 1, "priority": 0},
                   content_type=JSON, content_encoding="utf-8", routing_key=routing_key)


def request_message(method: str, arguments: dict[str, Any], *, clock: int,
                    destination: list[str] | None = None, ticket: str | None = None,
                    reply_to: dict[str, str] | None = None, timeout_s: float | None = None,
                    pattern: str | None = None, matcher: str | None = None) -> Message:
    body: dict[str, Any] = {"method": method, "arguments": arguments,
                            "destination": destination, "pattern": pattern,
                            "matcher": matcher}
    if ticket:
        body["ticket"] = ticket
        body["reply_to"] = reply_to
    return _message(body, {"clock": clock,
                           "expires": time.time() + timeout_s if timeout_s else 0})


def reply_message(hostname: str, answer: Any, ticket: str | None, clock: int,
                  routing_key: str) -> Message:
    return _message({hostname: answer}, {"ticket": ticket, "clock": clock}, routing_key)


@dataclass(slots=True)
class Request:
    """A decoded control request."""

    method: str
    arguments: dict[str, Any]
    destination: list[str] | None
    pattern: str | None
    matcher: str | None
    ticket: str | None
    reply_to: dict[str, str] | None
    clock: Any
    expires: float

    def for_node(self, hostname: str) -> bool:
        """kombu's rule: a destination list names us, or the pattern matches, or
        neither is given (everyone)."""
        if self.destination:
            return hostname in self.destination
        if self.pattern and self.matcher:
            return match(hostname, self.pattern, self.matcher)
        return True


def match(hostname: str, pattern: str, matcher: str) -> bool:
    if matcher == "glob":
        return fnmatch.fnmatchcase(hostname, pattern)
    if matcher == "pcre":
        try:
            return re.search(pattern, hostname) is not None
        except re.error:
            return False
    return False


def decode_json(message: Message) -> Any:
    """The JSON body of a control message; DecodeError for anything else."""
    if message.content_type not in (JSON, "json"):
        raise DecodeError(f"content type {message.content_type!r} is not JSON")
    try:
        return orjson.loads(message.body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not JSON: {exc}") from exc


def decode_request(message: Message) -> Request:
    """Raise DecodeError unless the message is a well-formed pidbox request."""
    body = decode_json(message)
    if not isinstance(body, dict):
        raise DecodeError("body is not an object")
    method, arguments = body.get("method"), body.get("arguments") or {}
    if not isinstance(method, str) or not method:
        raise DecodeError("no method")
    if not isinstance(arguments, dict) or not all(isinstance(k, str) for k in arguments):
        raise DecodeError("arguments is not an object")
    destination = body.get("destination")
    if destination is not None and not (isinstance(destination, list)
                                        and all(isinstance(d, str) for d in destination)):
        raise DecodeError("destination is not a list of names")
    reply_to = body.get("reply_to")
    if reply_to is not None and not (isinstance(reply_to, dict)
                                     and isinstance(reply_to.get("exchange"), str)
                                     and isinstance(reply_to.get("routing_key"), str)):
        raise DecodeError("reply_to is not {exchange, routing_key}")
    pattern, matcher, ticket = body.get("pattern"), body.get("matcher"), body.get("ticket")
    headers = message.headers if isinstance(message.headers, dict) else {}
    expires = headers.get("expires") or 0
    return Request(method, arguments, destination,
                   pattern if isinstance(pattern, str) else None,
                   matcher if isinstance(matcher, str) else None,
                   ticket if isinstance(ticket, str) else None, reply_to,
                   headers.get("clock"),
                   float(expires) if isinstance(expires, (int, float)) else 0.0)
