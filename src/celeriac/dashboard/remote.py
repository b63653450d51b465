"""What heartbeats do not say, asked by remote control: each worker's pool and
concurrency from ``inspect stats`` (as Flower does). Celery's and celeriac's workers
both answer it; neither puts the pool in its heartbeats.

``StatsPoller`` asks every ``every_s`` seconds, and sooner (at most once per
``soon_s``) while an online worker's pool is still unknown, so a worker that just came
online shows its pool within a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from celeriac.dashboard.state import Fleet

logger = logging.getLogger("celeriac.dashboard")


def pool_of(stats: Any) -> tuple[str | None, int | None]:
    """(pool name, concurrency) from a stats reply: ``pool.implementation`` is
    ``module:Class`` (``celery.concurrency.prefork:TaskPool`` -> prefork,
    ``celeriac.worker.pools:threads`` -> threads), ``pool.max-concurrency`` the size."""
    pool = stats.get("pool") if isinstance(stats, dict) else None
    if not isinstance(pool, dict):
        return None, None
    name = None
    implementation = pool.get("implementation")
    if isinstance(implementation, str) and implementation:
        module, _, cls = implementation.partition(":")
        name = module.rsplit(".", 1)[-1] if cls in ("", "TaskPool") else cls
    size = pool.get("max-concurrency")
    return name, size if isinstance(size, int) and not isinstance(size, bool) else None


def control_of(app: Any) -> Any:
    """The app's remote control client, or None when this app has none."""
    try:
        return app.control
    except AttributeError:
        return None


class Remote:
    """The dashboard's remote control calls, one at a time, each in a thread (the
    client's sync API runs on the app's bridge): a stats poll and an action never
    compete, and the poll cannot pile up behind a slow broker. (Before app.control
    opened a reply queue per request, two calls in flight took each other's replies.)"""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = asyncio.Lock()

    @property
    def control(self) -> Any:
        return control_of(self.app)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async with self.lock:
            return await asyncio.to_thread(fn, *args, **kwargs)


class StatsPoller:
    """See the module docstring."""

    def __init__(self, remote: Remote, fleet: Fleet, every_s: float = 15.0,
                 soon_s: float = 2.0, timeout_s: float = 1.0) -> None:
        self.remote, self.fleet = remote, fleet
        self.every_s, self.soon_s, self.timeout_s = every_s, soon_s, timeout_s
        self.error: str | None = None

    def _unknown_pools(self) -> bool:
        now = time.time()
        return any(w.pool is None and w.alive(now) for w in self.fleet.workers.values())

    async def ask(self) -> int:
        """One ``inspect stats``; returns how many workers answered."""
        control = self.remote.control
        if control is None:
            return 0
        inspect = control.inspect(timeout=self.timeout_s)
        replies = await self.remote.call(inspect.stats) or {}
        for hostname, stats in replies.items():
            name, size = pool_of(stats)
            self.fleet.set_pool(str(hostname), name, size)
        return len(replies)

    async def run(self) -> None:
        last = float("-inf")
        while True:
            now = time.monotonic()
            due = now - last >= self.every_s or (
                now - last >= self.soon_s and self._unknown_pools())
            if due and self.fleet.workers:
                last = now
                try:
                    await self.ask()
                    self.error = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self.error is None:
                        logger.warning("dashboard: inspect stats failed: %s", exc)
                    self.error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)
