"""What a broker can say about its queues: ready depth, dead letters, and, where the
broker keeps them apart, delayed and in-flight messages.

``queue_stats(broker, queues)`` asks only the broker's public administration API
(``queue_size``, ``dead_letters``) plus two counts read where the store is known:
Redis's ``_celeriac.delayed`` zset and unacked hash (totals: the keys are not per
queue). A count a broker cannot give cheaply is None (the dashboard shows a dash).
Dead letters are counted per queue from the oldest ``DEAD_SCAN`` letters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from celeriac.brokers.base import Broker

#: dead letters read to count them per queue (the store is not indexed by queue)
DEAD_SCAN = 10_000


@dataclass
class QueueStats:
    queue: str
    ready: int | None = None
    dead_letters: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BrokerStats:
    """Per-queue figures, and the broker-wide ones (None: this broker cannot say)."""

    queues: dict[str, QueueStats]
    delayed: int | None = None
    in_flight: int | None = None
    dead_letters: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"queues": [q.as_dict() for q in self.queues.values()],
                "delayed": self.delayed, "in_flight": self.in_flight,
                "dead_letters": self.dead_letters}


async def queue_stats(broker: Broker, queues: Iterable[str]) -> BrokerStats:
    """Read the figures above; queues holding dead letters are listed too."""
    letters = await broker.dead_letters(DEAD_SCAN)
    dead = Counter(letter.queue for letter in letters)
    names = list(dict.fromkeys([*queues, *sorted(dead)]))
    stats = {}
    for name in names:
        ready: int | None
        try:
            ready = await broker.queue_size(name)
        except Exception:  # RabbitMQ: a queue nobody declared
            ready = None
        stats[name] = QueueStats(name, ready, dead.get(name, 0))
    delayed, in_flight = await _store_counts(broker)
    return BrokerStats(stats, delayed, in_flight, len(letters))


async def _store_counts(broker: Broker) -> tuple[int | None, int | None]:
    """(delayed, in flight) where this broker's store keeps them in known keys."""
    try:
        from celeriac.brokers.redis.broker import RedisBroker
    except ImportError:  # no redis extra: no Redis broker either
        return None, None
    if not isinstance(broker, RedisBroker):
        return None, None
    try:
        delayed, in_flight = await broker._run(("ZCARD", broker.delayed),
                                               ("HLEN", broker.unacked))
    except Exception:
        return None, None
    return int(delayed), int(in_flight)
