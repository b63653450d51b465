"""solo: one task at a time, inline on the worker's event loop (Celery's ``-P solo``).

The fastest pool for short tasks: no thread hop, no process hop. A sync task runs with
the loop hidden (it sees no running loop, as under Celery: Django's ORM works). A long
sync task blocks the loop while it runs; the lease keeper runs on its own thread so the task's
message is not redelivered meanwhile.

One task runs at a time, but the consumer hands the pool up to ``runners`` deliveries
at once (``CELERIAC_SOLO_RUNNERS``, 16): while the result of one task is on its way to
the backend the next task runs, and the results and acks of the tasks that ran in
between go out together (one Redis round trip for many stores:
``backends/redis/batch.py``). A task with a result used to cost the worker one round
trip of its own before the next could start. Sync tasks cannot overlap (each holds the
loop); ``async def`` tasks take a lock, so they run one at a time too, in order. Under
a warm shutdown the deliveries already handed over run before the worker stops.

Time limits: a sync task runs in the worker's own thread, which cannot be killed, so
both limits are exceptions raised inside it: SoftTimeLimitExceeded at the soft limit,
TimeLimitExceeded at the hard one (the task fails with it unless it swallows it). In
the main thread they come from SIGALRM, which also interrupts ``time.sleep`` and other
blocking calls; elsewhere (a worker run in a thread by tests) they land at the next
bytecode. ``async def`` tasks get the soft limit as a timeout and the hard one cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from celeriac.context import Context
from celeriac.errors import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.execution import Outcome, run_sync
from celeriac.task import Task
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.threads import _run_coroutine_task, raise_in_thread


class SoloPool(Pool):
    name = "solo"
    #: deliveries the consumer hands over at once: one task runs at a time (a sync task
    #: holds the loop; an async one the lock), while the results and acks of those that
    #: ran wait for their round trip together, in one batch, instead of one by one
    runners = int(os.environ.get("CELERIAC_SOLO_RUNNERS", 16))

    def __init__(self, capacity: int = 1) -> None:
        super().__init__(1)
        self._one_at_a_time: asyncio.Lock | None = None

    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        if task.is_coroutine:
            if self._one_at_a_time is None:
                self._one_at_a_time = asyncio.Lock()
            async with self._one_at_a_time:
                return await _run_coroutine_task(task, args, kwargs, request)
        hard_s, soft_s = request.timelimit
        with _loop_hidden():
            if not hard_s and not soft_s:
                return run_sync(task, args, kwargs, request)
            with _time_limits(hard_s, soft_s):
                return run_sync(task, args, kwargs, request)


@contextlib.contextmanager
def _loop_hidden() -> Iterator[None]:
    """A sync task sees no running event loop, as under Celery's solo pool: Django's ORM
    refuses to run where a loop runs (SynchronousOnlyOperation), asgiref's async_to_sync
    and ``asyncio.run`` inside the task too. The loop is blocked while the task runs
    either way; this only stops libraries from mistaking the task for async code."""
    loop = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(loop)


def _limit_steps(hard_s: float | None, soft_s: float | None
                 ) -> list[tuple[float, type[BaseException]]]:
    """(seconds from start, exception) for each limit, soonest first."""
    steps: list[tuple[float, type[BaseException]]] = []
    if soft_s and (not hard_s or soft_s < hard_s):
        steps.append((soft_s, SoftTimeLimitExceeded))
    if hard_s:
        steps.append((hard_s, TimeLimitExceeded))
    return steps


@contextlib.contextmanager
def _time_limits(hard_s: float | None, soft_s: float | None) -> Iterator[None]:
    steps = _limit_steps(hard_s, soft_s)
    if threading.current_thread() is threading.main_thread():
        with _alarms(steps):
            yield
        return
    ident = threading.get_ident()
    timers = [threading.Timer(at_s, raise_in_thread, (ident, exc)) for at_s, exc in steps]
    for timer in timers:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()


@contextlib.contextmanager
def _alarms(steps: list[tuple[float, type[BaseException]]]) -> Iterator[None]:
    """SIGALRM at each step, raising its exception in the (main-thread) task."""
    pending = list(steps)

    def on_alarm(signum: int, frame: Any) -> None:
        at_s, exc = pending.pop(0)
        if pending:
            signal.setitimer(signal.ITIMER_REAL, pending[0][0] - at_s)
        raise exc(f"{'soft ' if exc is SoftTimeLimitExceeded else ''}time limit "
                  f"({at_s:g}s) exceeded")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, pending[0][0])
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
