"""Celery's ``celery.exceptions`` names, for ``from celeriac.exceptions import ...``.

The classes live in ``celeriac.errors`` (its docstring draws the tree); this module
only re-exports Celery's names.
"""

from __future__ import annotations

from celeriac.errors import (
    AlreadyRegistered,
    AlwaysEagerIgnored,
    BackendError,
    BackendGetMetaError,
    BackendStoreError,
    CDeprecationWarning,
    CeleryError,
    CeleryWarning,
    ChordError,
    CPendingDeprecationWarning,
    DuplicateNodenameWarning,
    DuplicateTaskNameWarning,
    FixupWarning,
    Ignore,
    ImproperlyConfigured,
    IncompleteStream,
    InvalidTaskError,
    MaxRetriesExceededError,
    NotConfigured,
    NotRegistered,
    OperationalError,
    QueueNotFound,
    Reject,
    Retry,
    SecurityError,
    SecurityWarning,
    SoftTimeLimitExceeded,
    TaskError,
    TaskPredicate,
    TaskRevokedError,
    Terminated,
    TimeLimitExceeded,
    TimeoutError,
    WorkerLostError,
    WorkerShutdown,
    WorkerTerminate,
    reraise,
)

#: Celery's old name for Retry
RetryTaskError = Retry

__all__ = [
    "AlreadyRegistered", "AlwaysEagerIgnored", "BackendError", "BackendGetMetaError",
    "BackendStoreError", "CDeprecationWarning", "CPendingDeprecationWarning",
    "CeleryError", "CeleryWarning", "ChordError", "DuplicateNodenameWarning",
    "DuplicateTaskNameWarning", "FixupWarning", "Ignore", "ImproperlyConfigured",
    "IncompleteStream", "InvalidTaskError", "MaxRetriesExceededError", "NotConfigured",
    "NotRegistered", "OperationalError", "QueueNotFound", "Reject", "Retry",
    "RetryTaskError", "SecurityError", "SecurityWarning", "SoftTimeLimitExceeded",
    "TaskError", "TaskPredicate", "TaskRevokedError", "Terminated", "TimeLimitExceeded",
    "TimeoutError", "WorkerLostError", "WorkerShutdown", "WorkerTerminate", "reraise",
]
