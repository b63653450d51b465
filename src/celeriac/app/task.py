"""``celeriac.app.task``: Celery's ``celery.app.task`` path for the task class and the
request context (both defined in celeriac.task and celeriac.context)."""

from __future__ import annotations

from celeriac.context import Context
from celeriac.task import Task

__all__ = ["Context", "Task"]
