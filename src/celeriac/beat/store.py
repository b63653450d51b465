"""Where beat keeps what every scheduler must agree on, in the broker: who leads, and
each entry's last run. One small contract, one implementation per broker (memory,
SQLite, Redis, RabbitMQ); tests/contract/beat_suite.py checks each.

Exactly once comes from ``claim``: a compare-and-set of an entry's last-run value from
the one a scheduler read to the one it is about to send. Two schedulers that read the
same value cannot both win, so even two leaders (a paused one waking up after another
took over) send a run once. The lease (``lead``) only keeps the standbys quiet and
bounds the takeover time (``beat_leader_timeout``).

Values are opaque strings to the stores (the scheduler writes a UTC timestamp).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

#: (entry name, the value read (None: absent), the new value)
Claim = tuple[str, "str | None", str]


class BeatStore(abc.ABC):
    """See the module docstring. Blocking calls: beat runs in its own thread."""

    @abc.abstractmethod
    def lead(self, node: str, ttl_s: float) -> bool:
        """Take the lease if free or expired, or renew it if ``node`` holds it; True when
        ``node`` holds it for ``ttl_s`` from now."""

    @abc.abstractmethod
    def resign(self, node: str) -> None:
        """Give the lease up at once if ``node`` holds it (a clean shutdown)."""

    @abc.abstractmethod
    def load(self, names: Sequence[str]) -> dict[str, str | None]:
        """Each entry's last-run value (None when it has none)."""

    @abc.abstractmethod
    def claim(self, claims: Sequence[Claim]) -> list[bool]:
        """For each claim, atomically: if the entry's value is still the one read, set
        the new one and answer True; else change nothing and answer False."""

    def close(self) -> None:
        """Release connections."""
