"""What every pool offers the executor: run one task call, get an Outcome back."""

from __future__ import annotations

import abc
from typing import Any

from celeriac.context import Context
from celeriac.execution import Outcome
from celeriac.task import Task


class Pool(abc.ABC):
    """Runs task calls with at most ``capacity`` at once (the executor keeps count)."""

    name: str = ""
    #: said after the name in the banner, e.g. which implementation a -P alias got
    note: str = ""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        #: ``run`` calls the consumer keeps going at once; a pool that queues and batches
        #: them (prefork) asks for more than ``capacity``
        self.calls_at_once = self.capacity

    def window(self, configured: int) -> int:
        """Deliveries the worker should hold now (prefetch), given the configured
        ``concurrency x prefetch multiplier``; a pool that measures its tasks adapts it."""
        return configured

    async def start(self) -> None:
        """Start processes or threads. Called on the worker's loop before consuming."""

    @abc.abstractmethod
    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        """Run one call to completion (or to its time limit) and say how it went."""

    async def stop(self) -> None:
        """Release resources once no call is running (warm shutdown)."""

    def terminate(self) -> None:
        """Stop at once, abandoning running calls (cold shutdown)."""

    def terminate_job(self, task_id: str, signum: int) -> str | None:
        """Stop one running sync call (remote ``revoke(terminate=True)``): None when
        done, else why not. Threads cannot be stopped from outside; async calls are
        cancelled by the executor, not here."""
        return (f"the {self.name} pool cannot stop a running sync task: it runs to its "
                f"end (prefork can; async tasks are cancelled on any pool)")

    def describe(self) -> str:
        return f"{self.capacity} ({self.name}{', ' + self.note if self.note else ''})"
