"""celeriac: a distributed task queue that speaks Celery's API and wire format.

Change ``from celery import Celery`` to ``from celeriac import Celery`` and keep going.
"""

from __future__ import annotations

__version__ = "0.1.0"

from celeriac import states
from celeriac.app import Celery, current_app, shared_task
from celeriac.canvas import Signature, chain, signature
from celeriac.context import Context
from celeriac.errors import (
    CeleriacError,
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
from celeriac.result import AsyncResult, EagerResult
from celeriac.task import Task

__all__ = [
    "AsyncResult",
    "CeleriacError",
    "Celery",
    "ConfigurationError",
    "Context",
    "EagerResult",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "NotRegistered",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "__version__",
    "chain",
    "current_app",
    "shared_task",
    "signature",
    "states",
]
