"""Tasks a client can ask to stop (Celery's ``celery.contrib.abortable``).

The client calls ``abort()`` on the task's result; that stores the state ``ABORTED`` in
the result backend. The task, written with ``base=AbortableTask`` and ``bind=True``,
polls ``self.is_aborted()`` (a backend read) at points where stopping is safe, and
returns early. Nothing is interrupted: a task that never polls runs to the end. It works
across processes and with any result backend, since the state is an ordinary stored
result::

    @app.task(bind=True, base=AbortableTask)
    def crunch(self, items):
        for n, item in enumerate(items):
            if n % 100 == 0 and self.is_aborted():
                return "aborted"
            work(item)

    result = crunch.delay(items)     # an AbortableAsyncResult
    result.abort()

Unlike Celery's, ``abort()`` leaves a finished task's result alone (Celery overwrites it
with ABORTED, and ``get()`` then waits for a result that never comes).
"""

from __future__ import annotations

from typing import Any

from celeriac import states
from celeriac.backends.base import make_meta
from celeriac.result import AsyncResult, EagerResult
from celeriac.task import Task

__all__ = ["ABORTED", "AbortableAsyncResult", "AbortableTask"]

#: the state ``abort()`` stores: the task should stop as soon as it can
ABORTED = "ABORTED"

#: what sending returns (named here: inside AbortableTask, AsyncResult is the method)
SentResult = AsyncResult[Any]


class AbortableAsyncResult(AsyncResult[Any]):
    """An AsyncResult that can ask its task to stop."""

    def is_aborted(self) -> bool:
        """True once ``abort()`` was called (and the task has not finished since)."""
        return self.state == ABORTED

    def abort(self) -> None:
        """Store ABORTED as the task's state, unless it has finished already. The task
        stops at its next ``is_aborted()`` check, if it makes one."""
        app = self.app
        task_id = self.id
        expires_s = app.conf.seconds("result_expires")

        async def store() -> None:
            backend = await app.clients.backend()
            meta = await backend.get(task_id)
            if meta is not None and meta.get("status") in states.READY_STATES:
                return
            await backend.store(task_id, make_meta(task_id, ABORTED, None), expires_s)

        app.run_sync(store())


class AbortableTask(Task[..., Any]):
    """Base class of tasks that poll ``is_aborted()``; their results are abortable."""

    abstract = True

    def AsyncResult(self, task_id: str) -> AbortableAsyncResult:
        return AbortableAsyncResult(task_id, app=self.app)

    def apply_async(self, args: Any = None, kwargs: Any = None,
                    **options: Any) -> SentResult:
        """As Task's, returning an AbortableAsyncResult (an EagerResult when eager)."""
        return self._abortable(super().apply_async(args, kwargs, **options))

    async def aapply_async(self, args: Any = None, kwargs: Any = None,
                           **options: Any) -> SentResult:
        return self._abortable(await super().aapply_async(args, kwargs, **options))

    def _abortable(self, result: SentResult) -> SentResult:
        return result if isinstance(result, EagerResult) else self.AsyncResult(result.id)

    def is_aborted(self, **kwargs: Any) -> bool:
        """True once a client called ``abort()`` on this call (or on ``task_id``). Each
        call reads the result backend: check every so often, not in a tight loop."""
        task_id = kwargs.get("task_id", self.request.id)
        if task_id is None:
            return False
        return self.AsyncResult(task_id).is_aborted()
