"""celeriac: a distributed task queue that speaks Celery's API and wire format.

Change ``from celery import Celery`` to ``from celeriac import Celery`` and keep going.
"""

from __future__ import annotations

__version__ = "0.1.0"

import uuid as _uuid

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


def uuid() -> str:
    """A new task id (Celery's ``celery.uuid``)."""
    return str(_uuid.uuid4())


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
