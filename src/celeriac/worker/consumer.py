"""The consumer: keeps a prefetch window of deliveries and feeds them to the executor.

One fetch loop asks the broker for as many messages as the window has room for
(``concurrency * prefetch_multiplier``, or the pool's ``Pool.window``): as soon as there
is room, or once half of the window is free on a broker that pushes
(``Broker.refill_early``: RabbitMQ), a quarter with a pool that queues calls (prefork). Fetched
deliveries wait in ``reserved`` until one of ``capacity`` runners takes them; a runner
hands each to ``Executor.process``. Sync tasks in the solo pool never give the event
loop a turn, so a runner yields a few turns after every run of ``yield_every`` tasks:
on RabbitMQ (half a window) the acks of those go out and the next deliveries come in
while the other half runs; elsewhere (a whole window) fetch and acks go out together.
On warm shutdown the fetch loop stops, reserved deliveries go back to the broker
unharmed and running ones finish. ``active`` and ``reserved`` are what the worker
would requeue on a cold shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence

from celeriac.brokers.base import Broker, Delivery
from celeriac.worker.acks import LeaseKeeper
from celeriac.worker.executor import Executor
from celeriac.worker.rate_limit import RateLimiter

logger = logging.getLogger("celeriac.worker")

#: how long one fetch call waits for work before the loop looks around again
FETCH_WAIT_S = 1.0
#: loop turns a runner yields after a run of tasks: enough for the acker and the fetch
#: loop to write their requests
YIELD_TURNS = 3


class Reserved:
    """Deliveries waiting for a runner, and the runners waiting for them: what an
    unbounded asyncio.Queue does, with a deque and no per-item bookkeeping (the queue's
    put and get were a third of the consumer's own CPU per task). ``None`` tells a
    runner to stop."""

    def __init__(self) -> None:
        self.items: deque[Delivery | None] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()

    def put_nowait(self, item: Delivery | None) -> None:
        self.items.append(item)
        self._wake_next()

    async def get(self) -> Delivery | None:
        items = self.items
        while not items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and items:
                    self._wake_next()  # pass on the wake-up this runner got
                raise
        return items.popleft()

    def _wake_next(self) -> None:
        """Wake the longest-waiting runner that is still waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def empty(self) -> bool:
        return not self.items

    def get_nowait(self) -> Delivery | None:
        return self.items.popleft()


class Consumer:
    """See the module docstring."""

    def __init__(self, broker: Broker, executor: Executor, leases: LeaseKeeper,
                 queues: Sequence[str], capacity: int, window: int) -> None:
        self.broker = broker
        self.executor = executor
        self.leases = leases
        self.queues = list(queues)
        self.capacity = capacity
        self.pool = executor.pool
        #: concurrency x prefetch multiplier; the pool may adapt it (``Pool.window``)
        self.configured_window = max(window, capacity)
        self.window = self.configured_window
        self._set_window(self.window)
        #: tasks a runner runs before yielding
        self.yield_every = self.refill if broker.refill_early else self.window
        self.reserved = Reserved()
        self.active: dict[int, Delivery] = {}
        self._outstanding = 0
        self._room = asyncio.Event()
        self._fetching: asyncio.Task[list[Delivery]] | None = None
        self._stopping = False
        #: no fetches while a long task runs in a consumer child (give_back_waiting)
        self._held_back = False
        #: give-backs being written (give_back_waiting waits for them)
        self._returning = 0
        self._runners: list[asyncio.Task[None]] = []
        #: rate-limited deliveries wait here for their token, not in a runner
        self.limiter = RateLimiter.for_app(executor.app, self.reserved.put_nowait)

    def set_window(self, window: int) -> None:
        """--autoscale: a new prefetch window for a pool that grew or shrank (the
        runners stay; the pool's gate limits how many run, worker/autoscale.py)."""
        self.window = max(1, window)
        if self.broker.refill_early:
            self.refill = max(1, self.window // 2)
            self.yield_every = self.refill
        else:
            self.yield_every = self.window
        self._room.set()

    def set_prefetch(self, count: int) -> None:
        """Remote control's ``qos``: a new configured window (at least one); the pool
        may adapt it and it never goes below the pool's capacity (``_set_window``)."""
        self.configured_window = max(1, count)
        self._room.set()

    def load(self) -> int:
        """Deliveries held: waiting for a runner or running (--autoscale's measure)."""
        return len(self.reserved.items) + len(self.active)

    async def run(self) -> None:
        """Fetch and run until ``stop_fetching`` is called and the runners are done."""
        # a pool may take more calls than it runs at once: prefork queues batches for its
        # children (calls_at_once); solo overlaps the store and ack of one task with the
        # run of the next (runners), so they go out in batches
        runners = max(self.capacity, self.pool.calls_at_once,
                      min(self.window, getattr(self.pool, "runners", 0)))
        self._runners = [asyncio.create_task(self._runner(), name=f"runner-{i}")
                         for i in range(runners)]
        try:
            await self._fetch_loop()
        finally:
            for _ in self._runners:
                self.reserved.put_nowait(None)

    async def _fetch_loop(self) -> None:
        backoff_s = 0.1
        while not self._stopping:
            window = self.pool.window(self.configured_window)
            if window != self.window:
                self._set_window(window)
            room = window - self._outstanding
            if room < self.refill or self._held_back:
                self._room.clear()
                await self._room.wait()
                continue
            self._fetching = asyncio.create_task(
                self.broker.fetch(self.queues, room, FETCH_WAIT_S))
            try:
                deliveries = await self._fetching
                backoff_s = 0.1
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception as exc:
                logger.error("fetching from the broker failed: %s; retrying in %.1fs",
                             exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 10.0)
                continue
            finally:
                self._fetching = None
            self._outstanding += len(deliveries)
            self.leases.hold_all(deliveries)
            for delivery in deliveries:
                self.reserved.put_nowait(delivery)

    async def _runner(self) -> None:
        ran = 0
        ready = self.reserved.items
        limited = self.limiter.possible
        while True:
            ran += 1
            if ran >= self.yield_every:
                ran = 0
                for _ in range(YIELD_TURNS):
                    await asyncio.sleep(0)
            delivery = ready.popleft() if ready else await self.reserved.get()
            if delivery is None:
                return
            if self._stopping or self._held_back:  # (held back: a long task runs here)
                await self._give_back([delivery])
                continue
            if limited and not self.limiter.admit(delivery):
                continue
            self.active[id(delivery)] = delivery
            try:
                await self.executor.process(delivery)
            finally:
                del self.active[id(delivery)]
                self._finished([delivery])

    def _set_window(self, window: int) -> None:
        self.window = window = max(window, self.capacity)
        if self.broker.refill_early:
            #: fetch once this much of the window is free. Never starves a runner: with
            #: nothing reserved, room >= window - capacity >= refill
            self.refill = max(1, min(window // 2, window - self.capacity))
        elif self.pool.calls_at_once > self.capacity:
            # a pool that queues calls (prefork) finishes them one loop turn at a time:
            # fetching at every free slot paid a broker round trip per task
            self.refill = max(1, min(window // 4, window - self.capacity))
        else:
            self.refill = 1

    async def give_back_waiting(self) -> int:
        """Return the deliveries no runner has started, and those the broker pushed
        and no fetch took, to the broker, and fetch no more until ``resume_fetching``
        (a consumer child does this around a long task, so that nothing waits behind
        it: other children and workers take them)."""
        self._held_back = True
        await self.broker.pause_pushes()  # first: what arrives meanwhile is given back
        fetching = self._fetching
        if fetching is not None and not fetching.done() and self.broker.fetch_settle_s:
            # Redis: a BLPOP with fetch.lua behind it runs on the server even while
            # this loop is blocked: let the round in flight end (paused, no new one)
            await asyncio.wait({fetching}, timeout=self.broker.fetch_settle_s)
        for _ in range(3):  # a fetch that just landed: its deliveries reach the runners,
            await asyncio.sleep(0)  # which give them back (held back: see _runner)
        items = self.reserved.items
        waiting = [d for d in items if d is not None]
        stops = [d for d in items if d is None]
        items.clear()
        items.extend(stops)
        pushed = self.broker.take_pushed()
        if waiting or pushed:
            try:
                await self.broker.requeue([*waiting, *pushed])
            except Exception as exc:
                logger.error("could not give back %d messages (%s); their leases will "
                             "bring them back", len(waiting) + len(pushed), exc)
            self._finished(waiting)
        while self._returning:  # the runners' own give-backs are written, too
            await asyncio.sleep(0)
        return len(waiting) + len(pushed)

    def resume_fetching(self) -> None:
        self._held_back = False
        self.broker.resume_pushes()
        self._room.set()

    def _finished(self, deliveries: list[Delivery]) -> None:
        self.leases.release(deliveries)
        self._outstanding -= len(deliveries)
        self._room.set()

    async def _give_back(self, deliveries: list[Delivery]) -> None:
        self._returning += 1
        try:
            await self.broker.requeue(deliveries)
        except Exception as exc:
            logger.error("could not return %d messages (%s); their leases will bring them "
                         "back", len(deliveries), exc)
        finally:
            self._returning -= 1
        self._finished(deliveries)

    def stop_fetching(self) -> None:
        """Warm shutdown, step one: no new fetches; reserved deliveries go back."""
        self._stopping = True
        self._room.set()
        for delivery in self.limiter.release_all():  # runners give them back
            self.reserved.put_nowait(delivery)
        # The fetch in flight is left to finish (at most FETCH_WAIT_S): cancelled, its
        # messages could already be leased to us on the broker, and would then wait
        # for their lease to run out. What it returns, the runners give back. Unless
        # the broker says a cancelled fetch took nothing (memory://).
        if self._fetching is not None and self.broker.fetch_cancel_safe:
            self._fetching.cancel()

    async def drain(self, timeout_s: float, interrupt: asyncio.Event) -> bool:
        """Wait for running tasks to end; True if they all did within the timeout
        (False as well when ``interrupt`` is set first: a cold shutdown)."""
        pending = [r for r in self._runners if not r.done()]
        if not pending:
            return True
        everyone = asyncio.ensure_future(asyncio.wait(pending))
        interrupted = asyncio.ensure_future(interrupt.wait())
        done, _ = await asyncio.wait([everyone, interrupted], timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        everyone.cancel()
        interrupted.cancel()
        return everyone in done and not interrupt.is_set()

    async def abandon(self) -> None:
        """Cold shutdown: return everything still held (running tasks included)."""
        held = list(self.active.values())
        while not self.reserved.empty():
            item = self.reserved.get_nowait()
            if item is not None:
                held.append(item)
        for runner in self._runners:
            runner.cancel()
        if held:
            await self._give_back(held)
