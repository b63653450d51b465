"""``celeriac.app``, a package as Celery's ``celery.app``: the application class and
current app (base.py), the send path (sending.py), and ``celeriac.app.task`` (Celery's
``celery.app.task``). Every name importable from ``celeriac.app`` before it became a
package still is."""

from __future__ import annotations

from celeriac.app.base import (
    BoundTaskDecorator,
    Celery,
    TaskDecorator,
    _all_apps,
    _shared,
    current_app,
    new_task_id,
    shared_task,
)
from celeriac.app.sending import Call, Sending
from celeriac.task import Task

__all__ = ["BoundTaskDecorator", "Call", "Celery", "Sending", "Task", "TaskDecorator",
           "_all_apps", "_shared", "current_app", "new_task_id", "shared_task"]
