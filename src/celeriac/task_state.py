"""Task classes registered as classes (``app.register_task``), the app's own ``app.Task``,
and ``update_state``: the parts of Celery's Task API that live outside one call.

``class T(app.Task)`` subclasses the app's task class bound to the app;
``app.register_task(T())`` (or the class) registers it under ``T.name`` (or
``module.ClassName``), with ``run`` as its function. ``Celery(task_cls=...)`` or
``app.Task = ...`` replaces the base of every task the app makes afterwards.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from celeriac.backends.base import make_meta

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.task import Task


def bind_task_class(app: Celery, base: type[Task[Any, Any]]) -> type[Task[Any, Any]]:
    """``app.Task``: ``base`` bound to ``app``, for ``class T(app.Task)``."""
    return type(base.__name__, (base,), {"app": app, "__module__": base.__module__,
                                         "__qualname__": base.__qualname__,
                                         "_bound_base": base})


def register_class_task(app: Celery, task: Task[Any, Any] | type[Task[Any, Any]]
                        ) -> Task[Any, Any]:
    """Register a Task class or instance whose ``run`` is the task's function."""
    cls = task if isinstance(task, type) else type(task)
    if not cls.name:
        cls.name = f"{cls.__module__}.{cls.__name__}"
    if getattr(cls, "app", None) is not app:
        cls.app = app
    cls.is_coroutine = inspect.iscoroutinefunction(cls.run)
    instance = cls() if isinstance(task, type) else task
    # arguments are checked against run() without self
    instance.__dict__["_fun"] = instance.run
    app._tasks[cls.name] = instance
    return instance


def store_state(task: Task[Any, Any], task_id: str | None, state: str | None,
                meta: Any) -> None:
    """Store ``state`` and ``meta`` as the task's result (not READY: the worker stores
    the final one later); from sync code, through the app's bridge loop."""
    if task_id is None:
        raise RuntimeError("update_state() outside a task needs a task_id")
    app = task.app
    stored = make_meta(task_id, state or "PENDING", meta,
                       parent_id=task.request.parent_id)
    expires_s = app.conf.seconds("result_expires")

    async def store() -> None:
        backend = await app.clients.backend()
        await backend.store(task_id, stored, expires_s)

    app.run_sync(store())
