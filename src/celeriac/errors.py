"""Exceptions raised by celeriac, with Celery's names and tree.

    CeleriacError (= CeleryError)
    ├── ConfigurationError        a setting or URL that cannot work (said before connecting)
    │   └── ImproperlyConfigured  Celery's name for it
    ├── SecurityError             a signing key or message signature that cannot work
    ├── OperationalError          talking to the broker failed (kombu's name in Celery)
    │   ├── BrokerConnectionError the broker cannot be reached / refused us (URL masked)
    │   └── PublishError          the broker refused a message (nack, unroutable, error)
    │       └── UnconfirmedPublish  refused after a sync publish returned (reply window)
    ├── TaskMessageError          a message that cannot become a task run; dead-lettered
    │   ├── DecodeError           the body does not parse
    │   ├── ContentDisallowed     content type outside accept_content
    │   └── InvalidTaskError      the message is not a valid task (also a TaskError)
    │       └── InvalidTaskArguments  the arguments do not fit the task's signature
    ├── TaskPredicate             raised by a task to tell the worker what to do
    │   ├── Retry                 raised by Task.retry(); the worker republishes the task
    │   ├── Ignore                store no state, ack the message
    │   └── Reject                requeue (requeue=True) or dead-letter the message
    ├── TaskError
    │   ├── NotRegistered         no task by that name in this worker (a TaskMessageError)
    │   ├── QueueNotFound         routed to a queue task_queues does not declare
    │   ├── IncompleteStream, AlreadyRegistered   (Celery's, never raised here)
    │   ├── TimeoutError          AsyncResult.get() waited longer than its timeout
    │   ├── MaxRetriesExceededError  retry() past max_retries with no exception to re-raise
    │   ├── TaskRevokedError      the task expired or was revoked before it ran
    │   └── ChordError            a chord's header failed (the body fails with it)
    ├── BackendError
    │   ├── BackendGetMetaError   reading a result failed
    │   └── BackendStoreError     the result backend refused to store a result
    ├── EncodeError               a task's result cannot be serialized (kombu's, on the wire)
    ├── SoftTimeLimitExceeded     raised inside a task at its soft time limit
    ├── TimeLimitExceeded         the result of a task ended at its hard time limit
    ├── WorkerLostError           the pool's child running the task died
    └── Terminated                the task was terminated (revoke(terminate=True))
    CeleryWarning(UserWarning) and its subclasses; WorkerShutdown, WorkerTerminate
    (SystemExit): as Celery's.

The names match Celery's (``celery.exceptions``; EncodeError and OperationalError are
kombu's), so ``except`` clauses carry over, and results store them under Celery's module
names (backends/base.py, CELERY_TWINS) so a Celery client raises its own class.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from types import TracebackType
from typing import Any, NoReturn


class CeleriacError(Exception):
    """Base class of every celeriac exception."""


#: Celery's name for the base class
CeleryError = CeleriacError


# -- warnings, as Celery's ----------------------------------------------------------------
class CeleryWarning(UserWarning):
    """Base class of celeriac's warnings."""


class AlwaysEagerIgnored(CeleryWarning):
    """``send_task`` does not run eagerly under ``task_always_eager``."""


class DuplicateNodenameWarning(CeleryWarning):
    """Several workers use one node name."""


class DuplicateTaskNameWarning(CeleryWarning):
    """Several functions are registered under one task name."""


class FixupWarning(CeleryWarning):
    """A framework fix-up (Django) could not do its part."""


class NotConfigured(CeleryWarning):
    """No configuration was found."""


class SecurityWarning(CeleryWarning):
    """A setting that is unsafe (pickle accepted without signing, ...)."""


class UnsupportedSetting(CeleryWarning):
    """A Celery setting celeriac accepts but does not act on (config.UNSUPPORTED)."""


class CPendingDeprecationWarning(PendingDeprecationWarning):
    """Something that will be deprecated."""


class CDeprecationWarning(DeprecationWarning):
    """Something that is deprecated."""


# -- configuration and connections ---------------------------------------------------------
class ConfigurationError(CeleriacError):
    """A setting, URL or CLI argument that cannot work."""


class ImproperlyConfigured(ConfigurationError):
    """Celery's name for a configuration error."""


class SecurityError(CeleriacError):
    """Message signing cannot work as configured."""


class OperationalError(CeleriacError):
    """Talking to the broker failed; Celery's (kombu's) name for it."""


class BrokerConnectionError(OperationalError):
    """The broker or result backend cannot be reached; the message masks passwords."""


class PublishError(OperationalError):
    """The broker refused a published message (nack, unroutable, an error reply)."""


class UnconfirmedPublish(PublishError):
    """Earlier sync publishes the broker refused after the call returned (the reply or
    confirm window); ``task_ids`` names them."""

    def __init__(self, text: str, task_ids: Sequence[str]) -> None:
        super().__init__(text)
        self.task_ids = list(task_ids)


# -- messages that cannot become a run -----------------------------------------------------
class TaskMessageError(CeleriacError):
    """A message that cannot become a task run. The worker dead-letters it."""


class DecodeError(TaskMessageError):
    """The message body or envelope does not parse."""


class ContentDisallowed(TaskMessageError):
    """The content type is not in ``accept_content``."""


class TaskError(CeleriacError):
    """Celery's base class of task-related errors."""


class InvalidTaskError(TaskMessageError, TaskError):
    """The message is not a valid task (Celery's name)."""


class InvalidTaskArguments(InvalidTaskError, TypeError):
    """The message's args/kwargs do not fit the task's signature."""


class NotRegistered(TaskMessageError, TaskError, KeyError):
    """No task of that name is registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class QueueNotFound(TaskError, KeyError):
    """A task was routed to a queue ``task_queues`` does not declare (and
    ``task_create_missing_queues`` is off)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "queue not found"


class IncompleteStream(TaskError):
    """Celery's: the end of a stream came before its data was complete."""


class AlreadyRegistered(TaskError):
    """Celery's: the task is already registered (Celery never raises it either)."""


class TimeoutError(TaskError):
    """``AsyncResult.get()`` waited longer than its timeout."""


class MaxRetriesExceededError(TaskError):
    """``retry()`` was called past ``max_retries`` and had no exception to re-raise."""

    def __init__(self, *args: Any, task_args: Any = None, task_kwargs: Any = None) -> None:
        self.task_args = list(task_args or [])
        self.task_kwargs = dict(task_kwargs or {})
        super().__init__(*args)


class TaskRevokedError(TaskError):
    """The task was revoked or expired before it ran."""


class ChordError(TaskError):
    """A chord's header task failed, or its body could not be sent: the body's result
    is this error, and the body's errbacks run once."""


# -- what a task raises to steer the worker ------------------------------------------------
class TaskPredicate(CeleriacError):
    """Raised by a task to tell the worker what to do with it instead of failing."""


class Retry(TaskPredicate):
    """Raised by ``Task.retry()``: tells the worker to republish the task later.

    Carries the delay (``when``: seconds or a datetime), the exception that caused it
    and the options for the new message.
    """

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | dt.datetime | None = None,
        is_eager: bool = False,
        sig: Any = None,
        *,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        self.is_eager = is_eager
        self.sig = sig
        self.options = options or {}
        super().__init__(message, exc, when)

    def humanize(self) -> str:
        if isinstance(self.when, (int, float)):
            return f"in {self.when:g}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        return f"Retry {self.humanize()}" + (f": {self.exc!r}" if self.exc else "")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_retry, (self.message, self.exc, self.when, self.options))


def _retry(message: str | None, exc: BaseException | None, when: Any,
           options: dict[str, Any]) -> Retry:
    return Retry(message, exc, when, options=options)


class Ignore(TaskPredicate):
    """Raised by a task: the worker stores no state for it and acks the message."""


class Reject(TaskPredicate):
    """Raised by a task: the worker rejects the message, back to the queue when
    ``requeue`` is true, else to the dead-letter store with ``reason``."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __repr__(self) -> str:
        return f"reject requeue={self.requeue}: {self.reason}"


# -- results -------------------------------------------------------------------------------
class BackendError(CeleriacError):
    """Reading or writing the result backend failed."""


class BackendGetMetaError(BackendError):
    """Reading a task's result failed."""

    def __init__(self, *args: Any, task_id: str = "") -> None:
        self.task_id = task_id
        super().__init__(*args)


class BackendStoreError(BackendError):
    """The result backend refused to store a result (too large, an error reply).
    Celery's ``celery.exceptions.BackendStoreError``."""

    def __init__(self, *args: Any, state: str = "", task_id: str = "") -> None:
        self.state = state
        self.task_id = task_id
        super().__init__(*args)


class EncodeError(CeleriacError):
    """A value cannot be serialized: a task's result the result backend cannot encode.
    Stored as ``kombu.exceptions.EncodeError``, the type a Celery worker stores."""


# -- limits and the pool (billiard's in Celery) --------------------------------------------
class SoftTimeLimitExceeded(CeleriacError):
    """Raised inside a task when its soft time limit passes."""


class TimeLimitExceeded(CeleriacError):
    """A task was ended at its hard time limit."""


class WorkerLostError(CeleriacError):
    """The pool's child process running the task died before it answered."""


class Terminated(CeleriacError):
    """The task was terminated while it ran."""


class WorkerShutdown(SystemExit):
    """Raised in the worker: shut down warmly."""


class WorkerTerminate(SystemExit):
    """Raised in the worker: shut down at once."""


def reraise(tp: type[BaseException] | None, value: BaseException,
            tb: TracebackType | None = None) -> NoReturn:
    """Raise ``value`` with traceback ``tb`` (Celery's helper)."""
    if value.__traceback__ is not tb:
        raise value.with_traceback(tb)
    raise value
