"""``celeriac.Queue`` and ``celeriac.Exchange``: kombu's ``Queue``/``Exchange`` as data.

``task_queues`` takes kombu's objects when kombu is installed and these without it; both
are read by attribute (name, exchange, routing_key, durable, queue_arguments,
max_priority, bindings, ...: see brokers/amqp/topology.py), so a configuration written
for Celery works with either import. They describe queues; they do not talk to a broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celeriac.errors import ConfigurationError, QueueNotFound


class Exchange:
    """An AMQP exchange: ``Exchange('media', type='topic')``."""

    def __init__(self, name: str = "", type: str = "direct", durable: bool = True,
                 auto_delete: bool = False, arguments: Mapping[str, Any] | None = None,
                 **_kombu_only: Any) -> None:
        self.name = name
        self.type = type
        self.durable = durable
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})

    def __repr__(self) -> str:
        return f"<Exchange {self.name}({self.type})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Exchange) and (other.name, other.type) == (self.name,
                                                                             self.type)

    def __hash__(self) -> int:
        return hash((self.name, self.type))


class binding:  # kombu's name
    """An extra binding of a queue: ``binding(Exchange('x'), routing_key='k')``."""

    def __init__(self, exchange: Exchange | str | None = None, routing_key: str = "",
                 arguments: Mapping[str, Any] | None = None, **_kombu_only: Any) -> None:
        self.exchange = Exchange(exchange) if isinstance(exchange, str) else exchange
        self.routing_key = routing_key
        self.arguments = dict(arguments or {})


class Queue:
    """A task queue: ``Queue('feeds', Exchange('feeds'), routing_key='feeds')``."""

    def __init__(self, name: str = "", exchange: Exchange | str | None = None,
                 routing_key: str = "", durable: bool = True, exclusive: bool = False,
                 auto_delete: bool = False, queue_arguments: Mapping[str, Any] | None = None,
                 bindings: Iterable[binding] | None = None, max_priority: int | None = None,
                 expires: float | None = None, message_ttl: float | None = None,
                 max_length: int | None = None, max_length_bytes: int | None = None,
                 **_kombu_only: Any) -> None:
        self.name = name
        self.exchange = Exchange(exchange) if isinstance(exchange, str) else exchange
        self.routing_key = routing_key
        self.durable = durable
        self.exclusive = exclusive
        self.auto_delete = auto_delete
        self.queue_arguments = dict(queue_arguments or {})
        self.bindings = list(bindings or ())
        self.max_priority = max_priority
        self.expires = expires
        self.message_ttl = message_ttl
        self.max_length = max_length
        self.max_length_bytes = max_length_bytes

    def __repr__(self) -> str:
        return f"<Queue {self.name} -> {self.exchange!r} -> {self.routing_key}>"


def queue_names(configured: Any) -> list[str]:
    """The names ``task_queues`` declares (a list of Queue objects, dicts or names, or
    Celery's old dict-of-dicts), in order."""
    if not configured:
        return []
    if isinstance(configured, Mapping):
        return [str(name) for name in configured]
    names = []
    for item in configured:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, Mapping):
            names.append(str(item.get("name")))
        else:
            names.append(str(getattr(item, "name", item)))
    return names


def select_queues(conf: Any, include: str | None, exclude: str | None) -> list[str] | None:
    """``-Q``/``-X`` as Celery reads them: -Q names the queues (each must be declared
    when task_create_missing_queues is off), -X removes some from -Q or, without -Q,
    from task_queues (or the default queue). None: the worker's default."""
    declared = queue_names(conf.task_queues) or [conf.task_default_queue]
    chosen = _split(include)
    if chosen and not conf.task_create_missing_queues:
        unknown = [q for q in chosen if q not in declared]
        if unknown:
            raise QueueNotFound(f"-Q names queues task_queues does not declare (and "
                                f"task_create_missing_queues is off): {', '.join(unknown)}")
    excluded = set(_split(exclude))
    if not excluded:
        return chosen or None
    remaining = [q for q in chosen or declared if q not in excluded]
    if not remaining:
        raise ConfigurationError("-X excludes every queue: nothing left to consume from")
    return remaining


def _split(names: str | None) -> list[str]:
    return [q.strip() for q in (names or "").split(",") if q.strip()]
