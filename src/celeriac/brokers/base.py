"""The broker contract every transport implements; ``memory`` is its reference.

Batch first: each hot call moves many messages per round trip. All methods are
coroutines run on the worker's (or the producer bridge's) event loop.

Lifecycle of a message::

    publish()/delay() -> ready (or delayed until its eta) -> fetch() -> in flight
        in flight -> ack()          done, gone
        in flight -> requeue()      ready again, now
        in flight -> dead_letter()  kept in the dead-letter store with a reason
        in flight, lease runs out   ready again (the worker died); extend() prevents it

Guarantees every implementation gives (the contract suite checks them):
- ``publish`` returns only once the messages are durable (as durable as the transport).
- ``fetch`` moves messages from ready to in-flight atomically: a crash at any moment
  leaves each message either ready or in flight, never lost, never in both.
- ``delay`` keeps future messages in the broker, not in worker memory; they become
  ready at their eta without any worker holding them.
- ``extend`` renews the lease of live deliveries so a long task is not redelivered.
- ordering: FIFO within a priority; a higher priority is served first where
  ``supports_priority`` is set.

Broadcast (optional, ``supports_broadcast``; remote control and events): ``broadcast``
fans a message out to every current ``subscribe``r of an exchange (not durable: a
subscriber sees what is sent after it subscribed, nothing before); ``send_direct``
puts a message in the mailbox bound to (exchange, routing key) that ``open_mailbox``
reads (control replies). ``store_revoked``/``load_revoked`` keep revoked task ids for a
bounded time where every worker, including one started later, reads them. Brokers
without it raise ``BroadcastNotSupported`` naming the broker.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from celeriac.errors import ConfigurationError
from celeriac.protocol import Message

#: default lease (seconds) of an in-flight message before it is redelivered
DEFAULT_LEASE_S = 60.0


@dataclass(slots=True)
class Delivery:
    """A message handed to a consumer and not yet acked."""

    message: Message
    queue: str
    tag: Any
    redelivered: bool = False
    #: set when the broker could not even parse the envelope; the worker dead-letters it
    envelope_error: str | None = None


@dataclass(slots=True)
class DeadLetter:
    """A message the worker could not run, with the reason."""

    id: str
    queue: str
    reason: str
    failed_at: float
    message: Message


class BroadcastNotSupported(ConfigurationError):
    """This broker has no fan-out: remote control and events cannot run on it."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """A broadcast exchange: ``fanout`` (every subscriber gets every message) or
    ``topic`` (subscribers bind a pattern: ``*`` one word, ``#`` any). ``durable`` is
    only its AMQP declaration (Celery: pidbox False, celeryev True)."""

    name: str
    kind: str = "fanout"
    durable: bool = False


class Subscription(abc.ABC):
    """Messages arriving for one subscriber (a broadcast binding or a mailbox)."""

    @abc.abstractmethod
    async def get(self, timeout_s: float) -> list[Message]:
        """What arrived since the last call, waiting up to timeout_s for the first;
        [] when nothing came. Rides out a lost connection (messages sent meanwhile
        may be lost: broadcast is not durable)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop receiving and release the binding and its queue."""


def topic_match(pattern: str, key: str) -> bool:
    """AMQP's topic match: ``*`` is one word, ``#`` zero or more (``''`` matches all
    on a fanout, where the broker ignores keys)."""
    return _topic(pattern.split("."), key.split("."))


def _topic(words: list[str], keys: list[str]) -> bool:
    if not words:
        return not keys
    head, rest = words[0], words[1:]
    if head == "#":
        return any(_topic(rest, keys[i:]) for i in range(len(keys) + 1))
    if not keys:
        return False
    return (head == "*" or head == keys[0]) and _topic(rest, keys[1:])


class Broker(abc.ABC):
    """Moves task messages between producers and workers. See the module docstring."""

    #: URL schemes this class serves, e.g. ("redis", "rediss")
    schemes: ClassVar[tuple[str, ...]] = ()
    supports_priority: ClassVar[bool] = False
    #: True when a message put in ``delay`` reaches its queue when due whoever consumes
    #: that queue: the broker moves it (RabbitMQ), or no Celery worker can share the
    #: queue (SQLite, memory). False on Redis, where celeriac workers' fetches promote
    #: ``_celeriac.delayed`` and a Celery worker never would: there clients send
    #: due-later messages to the queue with Celery's eta header, and a celeriac worker
    #: that receives one parks it (``park``). See ``broker_delay_store``.
    shared_delay_store: ClassVar[bool] = True
    #: True when ``fetch`` only takes what the broker already pushed to this process
    #: (RabbitMQ): the worker then acks and refills at half its prefetch window while
    #: the other half runs. False when each fetch is a round trip that costs the broker
    #: less per message the bigger it is (Redis, SQLite): refill once the window is empty
    refill_early: ClassVar[bool] = False
    #: True when broadcast, mailboxes and the revoked store are implemented
    supports_broadcast: ClassVar[bool] = False
    #: True when a fetched delivery is redelivered after ``lease_s`` unless ``extend``
    #: renews it (Redis, SQLite, memory); False when the broker keeps it for as long as
    #: the consumer's connection lives (RabbitMQ): the worker then keeps no leases
    leased: ClassVar[bool] = True
    #: True when a ``fetch`` cancelled while it waits has taken nothing (it claims and
    #: returns in one step: memory): a stopping worker then cancels its waiting fetch
    #: instead of letting it run out (up to a second, at every test worker's stop)
    fetch_cancel_safe: ClassVar[bool] = False

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})
        self.lease_s = float(self.options.get("visibility_timeout", DEFAULT_LEASE_S))

    # -- lifecycle ------------------------------------------------------------------
    async def connect(self) -> None:
        """Open connections; raise BrokerConnectionError (URL masked) if unreachable."""

    async def close(self) -> None:
        """Release connections. In-flight messages stay in flight until their lease ends."""

    # -- producing ------------------------------------------------------------------
    @abc.abstractmethod
    async def publish(self, messages: Sequence[Message]) -> None:
        """Make messages ready on the queue named by their routing key."""

    @abc.abstractmethod
    async def delay(self, messages: Sequence[tuple[Message, float]]) -> None:
        """Store messages to become ready at a unix time (seconds) each."""

    # -- consuming ------------------------------------------------------------------
    @abc.abstractmethod
    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout_s: float
    ) -> list[Delivery]:
        """Take up to max_count ready messages, waiting up to timeout_s for the first."""

    @abc.abstractmethod
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Forget finished deliveries."""

    @abc.abstractmethod
    async def requeue(self, deliveries: Sequence[Delivery]) -> None:
        """Make deliveries ready again now (served before newer messages where possible)."""

    @abc.abstractmethod
    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew the lease of deliveries still being worked on."""

    def take_pushed(self) -> list[Delivery]:
        """Deliveries the server pushed that no fetch has taken yet (a push broker's
        buffer: RabbitMQ); pull brokers hold none."""
        return []

    @property
    def fetch_settle_s(self) -> float:
        """Seconds a fetch in flight may still take to return after ``pause_pushes``."""
        return 0.0

    async def pause_pushes(self) -> None:
        """While a long task runs, take nothing more: RabbitMQ cancels the consumers
        (the next fetch consumes again); Redis ends its fetch rounds (a BLPOP with
        fetch.lua behind it would move messages to this consumer while its loop is
        blocked) until ``resume_pushes``."""

    def resume_pushes(self) -> None:
        """The long task ended: fetches may wait for messages again."""

    async def park(self, parked: Sequence[tuple[Delivery, float]]) -> None:
        """Move in-flight deliveries into the delay store until a unix time each, and
        forget them: a worker that received a message with a future eta. Brokers that can
        do it in one step do (Redis, SQLite, memory), so a worker dying half way cannot
        leave one copy in the store and another redelivered. This default (RabbitMQ) is
        ``delay`` then ``ack``: a crash between the two would run the task twice."""
        await self.delay([(d.message, due) for d, due in parked])
        await self.ack([d for d, _ in parked])

    @abc.abstractmethod
    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a delivery to the dead-letter store with its reason."""

    # -- administration -------------------------------------------------------------
    @abc.abstractmethod
    async def purge(self, queues: Sequence[str]) -> int:
        """Delete ready messages of the queues; returns how many."""

    @abc.abstractmethod
    async def queue_size(self, queue: str) -> int:
        """Number of ready messages in a queue."""

    @abc.abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters, up to limit."""

    @abc.abstractmethod
    async def requeue_dead(self, ids: Sequence[str] | None = None) -> int:
        """Publish dead letters again (all when ids is None); returns how many."""

    @abc.abstractmethod
    async def purge_dead(self) -> int:
        """Delete every dead letter; returns how many."""

    # -- broadcast (remote control, events): optional ----------------------------------
    def _no_broadcast(self) -> BroadcastNotSupported:
        return BroadcastNotSupported(
            f"the {type(self).__name__} broker has no broadcast: remote control, events "
            f"and the revoked store need memory://, sqlite://, redis:// or amqp://")

    async def broadcast(self, exchange: Exchange, message: Message) -> None:
        """Send to every current subscriber of exchange whose binding matches
        ``message.routing_key``. Not durable; no subscriber, no delivery."""
        raise self._no_broadcast()

    async def subscribe(self, exchange: Exchange, queue: str, binding: str = "#"
                        ) -> Subscription:
        """Receive what is broadcast on exchange from now on. ``queue`` names this
        subscriber's private queue where the broker has queues (AMQP); ``binding`` is
        a topic pattern (ignored on fanout exchanges)."""
        raise self._no_broadcast()

    async def send_direct(self, exchange: str, routing_key: str, message: Message) -> None:
        """Put a message in the mailbox bound to (exchange, routing key), if one is;
        dropped otherwise (a control reply whose client is gone)."""
        raise self._no_broadcast()

    async def open_mailbox(self, exchange: str, routing_key: str, queue: str
                           ) -> Subscription:
        """Create the mailbox ``queue`` bound to (exchange, routing key) and read it."""
        raise self._no_broadcast()

    async def store_revoked(self, ids: Sequence[str], ttl_s: float) -> None:
        """Remember revoked task ids for ttl_s seconds where every worker sees them."""
        raise self._no_broadcast()

    async def load_revoked(self) -> dict[str, float]:
        """Revoked task ids still remembered -> the unix time each is forgotten."""
        raise self._no_broadcast()


class Fanout(Protocol):
    """A transport's broadcast part (``redis/fanout.py``, ``sqlite/fanout.py``,
    ``amqp/fanout.py``): Broker's broadcast calls, the names it has no use for ignored."""

    async def broadcast(self, exchange: Exchange, message: Message) -> None: ...

    async def subscribe(self, exchange: Exchange, queue: str, binding: str
                        ) -> Subscription: ...

    async def send_direct(self, exchange: str, routing_key: str, message: Message
                          ) -> None: ...

    async def open_mailbox(self, exchange: str, routing_key: str, queue: str
                           ) -> Subscription: ...

    async def store_revoked(self, ids: Sequence[str], ttl_s: float) -> None: ...

    async def load_revoked(self) -> dict[str, float]: ...


class FanoutBroker(Broker):
    """A broker whose broadcast, mailboxes and revoked store are a part of its own,
    ``self.fanout`` (set in ``__init__``): each broadcast method is handed to it, so
    the transports keep one copy of the forwarding."""

    fanout: Fanout

    async def broadcast(self, exchange: Exchange, message: Message) -> None:
        await self.fanout.broadcast(exchange, message)

    async def subscribe(self, exchange: Exchange, queue: str, binding: str = "#"
                        ) -> Subscription:
        return await self.fanout.subscribe(exchange, queue, binding)

    async def send_direct(self, exchange: str, routing_key: str, message: Message) -> None:
        await self.fanout.send_direct(exchange, routing_key, message)

    async def open_mailbox(self, exchange: str, routing_key: str, queue: str
                           ) -> Subscription:
        return await self.fanout.open_mailbox(exchange, routing_key, queue)

    async def store_revoked(self, ids: Sequence[str], ttl_s: float) -> None:
        await self.fanout.store_revoked(ids, ttl_s)

    async def load_revoked(self) -> dict[str, float]:
        return await self.fanout.load_revoked()


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z0-9+.-]+://[^:/@]*:)(?P<pw>[^@]*)(?P<at>@)", re.I)


def mask_url(url: str) -> str:
    """``redis://u:secret@h/0`` -> ``redis://u:**@h/0`` (for banners, logs and errors)."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m['head']}**{m['at']}", url)
