"""threads: sync tasks in OS threads, up to ``-c`` at once; async tasks on the worker's loop.

Threads start as tasks need them (one per call while none is idle) and stay for the
worker's life: ``-c 1000`` holds 1,000 threads once 1,000 tasks ran together, about
16 KB of resident memory each here (a greenlet: 7-9 KB). This is also what ``-P
eventlet``/``-P gevent`` run (pools/__init__.py says why not greenlets).

Soft time limits reach a sync task as SoftTimeLimitExceeded raised in its thread
(``PyThreadState_SetAsyncExc``: it lands at the next Python bytecode, not inside a
blocking C call). Threads cannot be killed, so the hard limit marks the task failed
with TimeLimitExceeded and frees the slot; the thread finishes in the background.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celeriac.context import Context
from celeriac.errors import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.execution import Outcome, run_async, run_sync
from celeriac.states import FAILURE
from celeriac.task import Task
from celeriac.worker.pools.base import Pool


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Make ``exc_type`` raise in another thread at its next bytecode."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc_type))


class ThreadPool(Pool):
    name = "threads"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._executor = ThreadPoolExecutor(self.capacity, thread_name_prefix="celeriac-task")

    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        hard_s, soft_s = request.timelimit
        if task.is_coroutine:
            return await _run_coroutine_task(task, args, kwargs, request)
        loop = asyncio.get_running_loop()
        box: dict[str, int] = {}

        def call() -> Outcome:
            box["thread"] = threading.get_ident()
            return run_sync(task, args, kwargs, request)

        future = loop.run_in_executor(self._executor, call)
        if not hard_s and not soft_s:
            return await future
        timers = []
        if soft_s:
            def soft_limit() -> None:
                if "thread" in box and not future.done():
                    raise_in_thread(box["thread"], SoftTimeLimitExceeded)

            timers.append(loop.call_later(soft_s, soft_limit))
        try:
            if hard_s:
                return await asyncio.wait_for(asyncio.shield(future), hard_s)
            return await future
        except TimeoutError:
            if "thread" in box:
                raise_in_thread(box["thread"], TimeLimitExceeded)
            return _hard_limit_outcome(hard_s or 0)
        finally:
            for timer in timers:
                timer.cancel()

    async def stop(self) -> None:
        self._executor.shutdown(wait=False)

    def terminate(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def resize(self, size: int) -> None:
        """--autoscale (worker/autoscale.py): a new executor of ``size`` threads takes
        new calls; the old one's threads end once their call returns."""
        size = max(1, size)
        if size == self.capacity:
            return
        old, self.capacity = self._executor, size
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="celeriac-task")
        old.shutdown(wait=False)


async def _run_coroutine_task(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                              request: Context) -> Outcome:
    """An ``async def`` task on the loop, with its soft and hard limits as timeouts."""
    hard_s, soft_s = request.timelimit
    coro = run_async(task, args, kwargs, request, soft_s)
    if not hard_s:
        return await coro
    try:
        return await asyncio.wait_for(coro, hard_s)
    except TimeoutError:
        return _hard_limit_outcome(hard_s)


def _hard_limit_outcome(hard_s: float) -> Outcome:
    exc = TimeLimitExceeded(f"hard time limit ({hard_s:g}s) exceeded")
    return Outcome(FAILURE, exc, f"TimeLimitExceeded: {exc}\n")
