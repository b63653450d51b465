"""asyncio: thousands of ``async def`` tasks at once on the worker's loop.

Concurrency (``-c``) is how many tasks may be in progress together; coroutine tasks
share the loop, sync tasks go to a thread pool of at most 64 threads so a blocking
function cannot stall the loop. This is what ``-P eventlet``/``-P gevent`` map to.
"""

from __future__ import annotations

from typing import Any

from celeriac.context import Context
from celeriac.execution import Outcome
from celeriac.task import Task
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.threads import ThreadPool

MAX_THREADS = 64


class AsyncioPool(Pool):
    name = "asyncio"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._threads = ThreadPool(min(self.capacity, MAX_THREADS))

    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        return await self._threads.run(task, args, kwargs, request)

    async def stop(self) -> None:
        await self._threads.stop()

    def terminate(self) -> None:
        self._threads.terminate()
