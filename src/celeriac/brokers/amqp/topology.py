"""What celeriac declares on RabbitMQ: task queues as Celery declares them, the delay
levels and the dead-letter queue. Pure data and routing rules, plus ``Declarer``.

Task queues (Celery-compatible, so a Celery worker and a celeriac worker can declare the
same queue without PRECONDITION_FAILED): a queue named only by name gets what Celery's
``task_create_missing_queues`` gives it: a durable queue, a durable direct exchange of
the same name, bound with the queue name as routing key, no arguments. ``task_queues``
entries (kombu ``Queue`` objects, dicts, or Celery's old dict-of-dicts) add named
exchanges (direct, topic, fanout), routing keys and queue arguments (``x-max-priority``,
``x-queue-type: quorum``, ``x-dead-letter-exchange``...). Transport options
``max_priority`` and ``queue_type`` give every task queue without its own a default.

Delay levels (no plugin; NServiceBus' scheme): for k = 0..24 a durable topic exchange
and a durable queue ``celeriac.delay.<k>`` whose messages wait 2**k seconds (queue TTL)
and are then dead-lettered into exchange ``celeriac.delay.<k-1>`` (level 0 into
``celeriac.delay.deliver``). A delayed message's routing key spells its delay in 25
binary words, most significant first, then the target queue as one escaped word:
``0.0...1.0.1.celery`` waits 4 + 1 = 5 s. Exchange k sends it to queue k when its bit k
is 1, straight on to exchange k-1 when 0. The deliver exchange routes on the last word
to the target queue (bound with ``#.<word>``). Total range 1 s .. 2**25-1 s (388 days).
Nothing is held by a worker, and no consumer ever holds a waiting message, so
RabbitMQ's consumer_timeout cannot touch it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiormq.channel import Channel

DELAY_PREFIX = "celeriac.delay"
DELAY_LEVELS = 25
MAX_DELAY_S = 2**DELAY_LEVELS - 1
DELIVER_EXCHANGE = f"{DELAY_PREFIX}.deliver"
#: headers carrying a delayed message's own exchange and routing key through the levels
ORIGIN_EXCHANGE = "x-celeriac-exchange"
ORIGIN_ROUTING_KEY = "x-celeriac-routing-key"
DEAD_LETTER_NAME = "celeriac.dead"


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False


@dataclass(frozen=True)
class QueueSpec:
    """One queue with its bindings, declared exactly like this by every client."""

    name: str
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)
    #: (exchange, routing key); the default exchange needs no binding
    bindings: tuple[tuple[ExchangeSpec, str], ...] = ()


def delay_exchange(level: int) -> str:
    return f"{DELAY_PREFIX}.{level}" if level >= 0 else DELIVER_EXCHANGE


def target_word(queue: str) -> str:
    """A queue name as one topic word: no dots, no wildcard words, reversible."""
    return (queue.replace("%", "%25").replace(".", "%2E").replace("*", "%2A")
            .replace("#", "%23")) or "%"


def delay_route(delay_s: int, queue: str) -> tuple[str, str]:
    """(entry exchange, routing key) for a message to reach ``queue`` in delay_s seconds."""
    delay_s = max(1, min(MAX_DELAY_S, delay_s))
    bits = ".".join("1" if delay_s >> level & 1 else "0"
                    for level in range(DELAY_LEVELS - 1, -1, -1))
    return delay_exchange(delay_s.bit_length() - 1), f"{bits}.{target_word(queue)}"


def _bit_pattern(level: int, bit: str) -> str:
    return "*." * (DELAY_LEVELS - 1 - level) + bit + ".#"


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ's topic match: ``*`` is one word, ``#`` zero or more."""
    return _match(pattern.split("."), key.split("."))


def _match(words: list[str], keys: list[str]) -> bool:
    if not words:
        return not keys
    head, rest = words[0], words[1:]
    if head == "#":
        return any(_match(rest, keys[i:]) for i in range(len(keys) + 1))
    if not keys:
        return False
    return (head == "*" or head == keys[0]) and _match(rest, keys[1:])


# -- task queues from the configuration -----------------------------------------------------


def _get(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _exchange(value: Any, queue: str, default_type: str) -> ExchangeSpec | None:
    """An exchange from a kombu Exchange, a name, or None (Celery: named as the queue)."""
    if value is None:
        return ExchangeSpec(queue, default_type)
    if isinstance(value, str):
        return ExchangeSpec(value, default_type) if value else None
    name = str(_get(value, "name") or "")
    if not name:
        return None
    return ExchangeSpec(name, str(_get(value, "type") or default_type),
                        bool(_get(value, "durable", True)),
                        bool(_get(value, "auto_delete", False)))


def _arguments(item: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Queue arguments as kombu computes them (queue_arguments + the shorthand fields)."""
    args = dict(_get(item, "queue_arguments") or {})
    for attr, key, scale in (("max_priority", "x-max-priority", 1),
                             ("expires", "x-expires", 1000),
                             ("message_ttl", "x-message-ttl", 1000),
                             ("max_length", "x-max-length", 1),
                             ("max_length_bytes", "x-max-length-bytes", 1)):
        value = _get(item, attr)
        if value is not None and key not in args:
            args[key] = int(value * scale)
    for key, value in defaults.items():
        args.setdefault(key, value)
    if args.get("x-queue-type") == "quorum":
        args.pop("x-max-priority", None)  # quorum queues have no priorities on 3.x
    return args


def queue_spec(item: Any, defaults: Mapping[str, Any] | None = None,
               name: str | None = None) -> QueueSpec:
    """A QueueSpec from a kombu Queue, a dict, or a bare queue name."""
    defaults = defaults or {}
    if isinstance(item, str):
        return QueueSpec(item, arguments=dict(defaults),
                         bindings=((ExchangeSpec(item), item),))
    name = name or str(_get(item, "name"))
    exchange_type = str(_get(item, "exchange_type") or "direct")
    exchange = _exchange(_get(item, "exchange"), name, exchange_type)
    key = _get(item, "routing_key")
    bindings: list[tuple[ExchangeSpec, str]] = []
    if exchange is not None:
        bindings.append((exchange, name if key is None else str(key)))
    for extra in _get(item, "bindings") or ():  # kombu binding objects
        ex = _exchange(_get(extra, "exchange"), name, "direct")
        if ex is not None:
            bindings.append((ex, str(_get(extra, "routing_key") or "")))
    return QueueSpec(name, durable=bool(_get(item, "durable", True)),
                     exclusive=bool(_get(item, "exclusive", False)),
                     auto_delete=bool(_get(item, "auto_delete", False)),
                     arguments=_arguments(item, defaults), bindings=tuple(bindings))


def queue_specs(configured: Any, defaults: Mapping[str, Any] | None = None
                ) -> dict[str, QueueSpec]:
    """``task_queues`` (list of Queue/dicts, or Celery's dict-of-dicts) -> specs by name."""
    if not configured:
        return {}
    if isinstance(configured, Mapping):
        items: Iterable[tuple[str | None, Any]] = configured.items()
    else:
        items = ((None, item) for item in configured)
    specs = {}
    for name, item in items:
        spec = queue_spec(item, defaults, name)
        specs[spec.name] = spec
    return specs


class Topology:
    """The configured queues, and where a (exchange, routing key) pair lands."""

    def __init__(self, configured: Any = None, defaults: Mapping[str, Any] | None = None):
        self.defaults = dict(defaults or {})
        self.specs = queue_specs(configured, self.defaults)

    def queue(self, name: str) -> QueueSpec:
        return self.specs.get(name) or queue_spec(name, self.defaults)

    def exchange(self, name: str) -> ExchangeSpec:
        for spec in self.specs.values():
            for exchange, _ in spec.bindings:
                if exchange.name == name:
                    return exchange
        return ExchangeSpec(name)

    def queues_for(self, exchange: str, routing_key: str) -> list[str]:
        """Configured queues a publish to a named exchange reaches (for delayed copies)."""
        if not exchange:
            return [routing_key]
        found = []
        for spec in self.specs.values():
            for ex, key in spec.bindings:
                if ex.name != exchange:
                    continue
                if ex.type == "fanout" or (ex.type == "topic" and topic_matches(key, routing_key)) \
                        or key == routing_key:
                    found.append(spec.name)
                    break
        return found or [routing_key]


# -- declaring ----------------------------------------------------------------------------


class Declarer:
    """Declares on a channel, each thing once per connection (``reset`` after a reconnect)."""

    def __init__(self) -> None:
        self._done: set[str] = set()
        #: (exchange, routing key) pairs whose publish needs no more declaring
        self._routes: set[tuple[str, str]] = set()

    def reset(self) -> None:
        self._done.clear()
        self._routes.clear()

    def routes_ready(self, routes: set[tuple[str, str]]) -> bool:
        """True when everything publishing to these routes needs is declared."""
        return routes <= self._routes

    def mark_routes(self, routes: set[tuple[str, str]]) -> None:
        self._routes |= routes

    def declared(self, key: str) -> bool:
        return key in self._done

    async def exchange(self, channel: Channel, spec: ExchangeSpec) -> None:
        key = f"x:{spec.name}"
        if not spec.name or key in self._done:
            return
        await channel.exchange_declare(spec.name, exchange_type=spec.type, durable=spec.durable,
                                       auto_delete=spec.auto_delete)
        self._done.add(key)

    async def queue(self, channel: Channel, spec: QueueSpec) -> None:
        key = f"q:{spec.name}"
        if key in self._done:
            return
        await channel.queue_declare(spec.name, durable=spec.durable, exclusive=spec.exclusive,
                                    auto_delete=spec.auto_delete,
                                    arguments=dict(spec.arguments) or None)
        for exchange, routing_key in spec.bindings:
            await self.exchange(channel, exchange)
            await channel.queue_bind(spec.name, exchange.name, routing_key=routing_key)
        self._done.add(key)

    async def delay_levels(self, channel: Channel) -> None:
        """The 25 levels and the deliver exchange (see the module docstring)."""
        if "delay" in self._done:
            return
        await channel.exchange_declare(DELIVER_EXCHANGE, exchange_type="topic", durable=True)
        for level in range(DELAY_LEVELS):
            name = delay_exchange(level)
            await channel.exchange_declare(name, exchange_type="topic", durable=True)
            await channel.queue_declare(name, durable=True, arguments={
                "x-message-ttl": 1000 * 2**level,
                "x-dead-letter-exchange": delay_exchange(level - 1)})
            await channel.queue_bind(name, name, routing_key=_bit_pattern(level, "1"))
            await channel.exchange_bind(destination=delay_exchange(level - 1), source=name,
                                        routing_key=_bit_pattern(level, "0"))
        self._done.add("delay")

    async def delay_target(self, channel: Channel, queue: str) -> None:
        """Let the deliver exchange reach ``queue``."""
        key = f"d:{queue}"
        if key not in self._done:
            await channel.queue_bind(queue, DELIVER_EXCHANGE, routing_key=f"#.{target_word(queue)}")
            self._done.add(key)

    async def dead_letters(self, channel: Channel) -> None:
        """Exchange and queue ``celeriac.dead`` (fanout: every reason, every queue)."""
        if "dead" in self._done:
            return
        await channel.exchange_declare(DEAD_LETTER_NAME, exchange_type="fanout", durable=True)
        await channel.queue_declare(DEAD_LETTER_NAME, durable=True)
        await channel.queue_bind(DEAD_LETTER_NAME, DEAD_LETTER_NAME, routing_key="")
        self._done.add("dead")
