"""``--autoscale=max,min``: grow and shrink the pool with the load, as Celery's autoscaler.

Once a second the autoscaler compares the load (deliveries the worker holds: waiting
in the prefetch window or running) with the pool's size:

- more load than processes: grow at once, up to ``max`` (prefork forks children, the
  threads pool starts threads);
- less: shrink, down to ``min``, but only ``keepalive`` seconds (30; Celery's
  ``AUTOSCALE_KEEPALIVE`` environment variable) after the last growth, so a burst
  does not fork and kill children back and forth.

The pool is wrapped in ``ScaledPool``: the consumer runs ``max`` runners, and a gate
lets at most ``size`` of them into the pool at once; the prefetch window follows the
size (``size * worker_prefetch_multiplier``), as Celery updates its prefetch count.
Children or threads beyond a new, smaller size retire when they are idle.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from celeriac.context import Context
from celeriac.execution import Outcome
from celeriac.task import Task
from celeriac.utils.aio import cancel_and_wait
from celeriac.worker.pools.base import Pool

logger = logging.getLogger("celeriac.worker")

#: seconds between two looks at the load
INTERVAL_S = 1.0


def keepalive_s() -> float:
    """Seconds after a growth before the pool may shrink (Celery's env variable)."""
    try:
        return float(os.environ.get("AUTOSCALE_KEEPALIVE", "30"))
    except ValueError:
        return 30.0


class Gate:
    """An asyncio semaphore whose size can change while tasks hold it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.held >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()
                raise
        self.held += 1

    def release(self) -> None:
        self.held -= 1
        self._wake()

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        for _ in range(max(0, limit - self.held)):
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class ScaledPool(Pool):
    """A pool whose size moves between ``min_size`` and ``max_size`` (see the module
    docstring). ``capacity`` is ``max_size``: the most calls it may run at once."""

    def __init__(self, inner: Pool, max_size: int, min_size: int) -> None:
        super().__init__(max_size)
        self.inner = inner
        self.name = inner.name
        self.max_size = max(1, max_size)
        self.min_size = max(0, min(min_size, self.max_size))
        self.size = max(1, self.min_size)
        self.gate = Gate(self.size)

    async def start(self) -> None:
        await self.inner.start()

    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        await self.gate.acquire()
        try:
            return await self.inner.run(task, args, kwargs, request)
        finally:
            self.gate.release()

    async def resize(self, size: int) -> None:
        """Grow the pool first, then open the gate; close the gate first, then shrink."""
        size = max(1, min(size, self.max_size))
        resize = getattr(self.inner, "resize", None)
        if size > self.size:
            if resize is not None:
                await resize(size)
            self.size = size
            self.gate.set_limit(size)
        else:
            self.size = size
            self.gate.set_limit(size)
            if resize is not None:
                await resize(size)  # retires idle children/threads beyond the size

    async def stop(self) -> None:
        await self.inner.stop()

    def terminate(self) -> None:
        self.inner.terminate()

    def describe(self) -> str:
        return f"{{min={self.min_size}, max={self.max_size}}} ({self.name})"

    def child_pids(self) -> list[int]:
        pids = getattr(self.inner, "child_pids", None)
        return list(pids()) if pids is not None else []


class Autoscaler:
    """The loop that resizes a ScaledPool by the consumer's load."""

    def __init__(self, pool: ScaledPool, load: Callable[[], int],
                 set_window: Callable[[int], None], multiplier: int,
                 keepalive: float | None = None) -> None:
        self.pool = pool
        self.load = load
        self.set_window = set_window
        self.multiplier = max(1, multiplier)
        self.keepalive_s = keepalive_s() if keepalive is None else keepalive
        self._last_growth: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.set_window(self.pool.size * self.multiplier)
        self._task = asyncio.create_task(self._run(), name="autoscaler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            try:
                await self.tick(time.monotonic())
            except Exception:
                logger.exception("autoscaler: resizing the pool failed")

    async def tick(self, now: float) -> None:
        """One look at the load: grow, shrink or leave the pool as it is."""
        pool = self.pool
        qty = self.load()
        procs = pool.size
        wanted = min(qty, pool.max_size)
        if wanted > procs:
            logger.info("Scaling up %d processes.", wanted - procs)
            await pool.resize(wanted)
            self._last_growth = now
            self.set_window(pool.size * self.multiplier)
            return
        floor = max(qty, pool.min_size, 1)
        if floor < procs and self._last_growth is not None \
                and now - self._last_growth > self.keepalive_s:
            logger.info("Scaling down %d processes.", procs - floor)
            await pool.resize(floor)
            self.set_window(pool.size * self.multiplier)
        elif floor >= procs:
            await pool.resize(procs)  # children left over from a shrink retire when idle





def autoscaler_for(pool: Pool, consumer: Any, multiplier: int) -> Autoscaler | None:
    """Start the autoscaler of a ScaledPool (None for a fixed-size pool)."""
    if not isinstance(pool, ScaledPool):
        return None
    scaler = Autoscaler(pool, consumer.load, consumer.set_window, multiplier)
    scaler.start()
    return scaler
__all__ = ["Autoscaler", "Gate", "ScaledPool", "autoscaler_for", "keepalive_s"]
