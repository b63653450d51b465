"""solo: one task at a time, inline on the worker's event loop (Celery's ``-P solo``).

The fastest pool for short tasks: no thread hop, no process hop. A long sync task
blocks the loop while it runs; the lease keeper runs on its own thread so the task's
message is not redelivered meanwhile.
"""

from __future__ import annotations

from typing import Any

from celeriac.context import Context
from celeriac.execution import Outcome, run_async, run_sync
from celeriac.task import Task
from celeriac.worker.pools.base import Pool


class SoloPool(Pool):
    name = "solo"

    def __init__(self, capacity: int = 1) -> None:
        super().__init__(1)

    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        if task.is_coroutine:
            return await run_async(task, args, kwargs, request, request.timelimit[1])
        return run_sync(task, args, kwargs, request)
