"""Task rate limits (``rate_limit='10/s'``), enforced per task name per worker.

As in Celery, a limit is a token bucket per task type in each worker process: ten
workers with ``'10/s'`` may run 100 such tasks a second together. Rates are
``'N/s'``, ``'N/m'``, ``'N/h'`` or a bare number (per second); ``None``, ``0`` or an
empty string mean no limit. ``task_default_rate_limit`` applies to tasks without one;
``worker_disable_rate_limits`` turns them all off. A malformed rate is logged once and
ignored (the task is not held back by a typo).

How a limited task waits, and what memory that costs: the consumer asks ``admit`` before
a runner takes a delivery. With a token free it runs at once. Otherwise the limiter books
the next free slot for it and holds the delivery on a timer, without a pool slot, so
other task types keep running; at its slot it goes back to the consumer and runs
without asking again. A held delivery is still part of the worker's prefetch window
(``concurrency * prefetch_multiplier``) and keeps its lease renewed, so the limiter never
holds more messages than the window: once held messages fill the window, the worker
stops fetching until they run (then other task types wait behind them, as in Celery).
On warm shutdown held deliveries go back to the broker at once; a killed worker's come
back when their lease ends. Bursts: the bucket holds one token, so ``'10/s'`` runs one
task every 0.1 s, never ten at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac.brokers.base import Delivery

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.worker")

_PER_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(value: Any) -> float | None:
    """``'10/s'`` -> 10.0, ``'100/m'`` -> 1.67, ``5`` -> 5.0 tasks a second; None: no
    limit. Raises ValueError for anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"bad rate limit {value!r}")
    if isinstance(value, (int, float)):
        rate = float(value)
    else:
        count, _, unit = str(value).strip().partition("/")
        per_s = _PER_S.get(unit.strip().lower()[:1] or "s")
        if per_s is None:
            raise ValueError(f"bad rate limit {value!r}: use N/s, N/m or N/h")
        rate = float(count) / per_s
    if rate < 0 or rate != rate:
        raise ValueError(f"bad rate limit {value!r}")
    return rate or None


class TokenBucket:
    """One token every ``1 / rate`` seconds, at most ``capacity`` saved up."""

    def __init__(self, rate_per_s: float, capacity: int = 1) -> None:
        self.interval_s = 1.0 / rate_per_s
        self.capacity = max(1, capacity)
        self._next_free = 0.0

    def reserve(self, now: float) -> float:
        """Book the next token; returns how many seconds to wait for it (0: now)."""
        earliest = now - (self.capacity - 1) * self.interval_s
        slot = max(self._next_free, earliest)
        self._next_free = slot + self.interval_s
        return max(0.0, slot - now)


class RateLimiter:
    """Holds deliveries of rate-limited tasks until their token; see the module docstring."""

    def __init__(self, rate_of: Callable[[str], float | None],
                 resubmit: Callable[[Delivery], None]) -> None:
        self._rate_of = rate_of
        self._resubmit = resubmit
        self._buckets: dict[str, TokenBucket | None] = {}
        self._held: dict[int, tuple[Delivery, asyncio.TimerHandle]] = {}
        self._cleared: set[int] = set()
        #: False when no task can be limited (the consumer then skips ``admit``)
        self.possible = True
        #: limiters enforcing one worker's limits together (each consumer child of a
        #: prefork worker has its own): each allows rate / shares, so the worker never
        #: exceeds the rate (a child that gets all of a task's messages runs them at
        #: its share)
        self.shares = 1

    @classmethod
    def for_app(cls, app: Celery, resubmit: Callable[[Delivery], None]) -> RateLimiter:
        conf = app.conf
        disabled = bool(conf.worker_disable_rate_limits)
        default = conf.task_default_rate_limit
        tasks = app.tasks

        def rate_of(name: str) -> float | None:
            if disabled:
                return None
            task = tasks.get(name)
            value = getattr(task, "rate_limit", None) if task is not None else None
            value = default if value is None else value
            try:
                return parse_rate(value)
            except ValueError as exc:
                logger.warning("ignoring the rate limit of %s: %s", name, exc)
                return None

        limiter = cls(rate_of, resubmit)
        limiter.possible = not disabled and (
            default is not None or any(getattr(t, "rate_limit", None) is not None
                                       for t in tasks.values()))
        return limiter

    @property
    def held(self) -> int:
        return len(self._held)

    def admit(self, delivery: Delivery) -> bool:
        """True: run it now. False: held; it comes back through ``resubmit`` in time."""
        key = id(delivery)
        if key in self._cleared:
            self._cleared.discard(key)
            return True
        name = delivery.message.task_name
        if name not in self._buckets:
            rate = self._rate_of(name)
            self._buckets[name] = TokenBucket(rate / self.shares) if rate else None
        bucket = self._buckets[name]
        if bucket is None:
            return True
        wait_s = bucket.reserve(time.monotonic())
        if wait_s <= 0:
            return True
        handle = asyncio.get_running_loop().call_later(wait_s, self._release, key)
        self._held[key] = (delivery, handle)
        return False

    def _release(self, key: int) -> None:
        entry = self._held.pop(key, None)
        if entry is not None:
            self._cleared.add(key)
            self._resubmit(entry[0])

    def reset(self, name: str) -> None:
        """Forget a task's bucket: its rate_limit changed (remote ``rate_limit``)."""
        self._buckets.pop(name, None)
        self.possible = True

    def release_all(self) -> list[Delivery]:
        """Stop every timer and hand back the held deliveries (warm shutdown)."""
        held, self._held = self._held, {}
        for _, handle in held.values():
            handle.cancel()
        self._cleared.update(held)
        return [delivery for delivery, _ in held.values()]
