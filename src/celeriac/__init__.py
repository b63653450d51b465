"""celeriac: a distributed task queue that speaks Celery's API and wire format.

Change ``from celery import Celery`` to ``from celeriac import Celery`` and keep going.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

from celeriac import states
from celeriac.app import Celery, current_app, shared_task
from celeriac.canvas import (
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    subtask,
    xmap,
    xstarmap,
)
from celeriac.context import Context, current_task
from celeriac.errors import (
    CeleriacError,
    ChordError,
    ConfigurationError,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    NotRegistered,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
    TimeoutError,
)
from celeriac.queues import Exchange, Queue
from celeriac.result import AsyncResult, EagerResult
from celeriac.result_group import GroupResult, ResultSet, result_from_tuple
from celeriac.task import Task
from celeriac.utils import uuid


def bugreport(app: Any = None) -> str:
    """Versions, platform and changed settings for a bug report (Celery's
    ``celery.bugreport``); of ``app``, else the current app."""
    from celeriac.report import report_text

    return report_text(app if app is not None else current_app())


__all__ = [
    "AsyncResult",
    "CeleriacError",
    "Celery",
    "ChordError",
    "ConfigurationError",
    "Context",
    "EagerResult",
    "Exchange",
    "GroupResult",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "NotRegistered",
    "Queue",
    "ResultSet",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "__version__",
    "bugreport",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "current_task",
    "group",
    "maybe_signature",
    "result_from_tuple",
    "shared_task",
    "signature",
    "states",
    "subtask",
    "uuid",
    "xmap",
    "xstarmap",
]
