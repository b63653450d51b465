"""Exceptions raised by celeriac.

    CeleriacError
    ├── ConfigurationError        a setting or URL that cannot work (said before connecting)
    ├── BrokerConnectionError     the broker cannot be reached / refused us (URL masked)
    ├── PublishError              the broker refused a message (nack, unroutable, error)
    │   └── UnconfirmedPublish    refused after a sync publish returned (reply window)
    ├── TaskMessageError          a message that cannot become a task run; dead-lettered
    │   ├── DecodeError           the body does not parse
    │   ├── ContentDisallowed     content type outside accept_content
    │   ├── NotRegistered         no task by that name in this worker
    │   └── InvalidTaskArguments  the arguments do not fit the task's signature
    ├── EncodeError               a task's result cannot be serialized (kombu's, on the wire)
    ├── BackendStoreError         the result backend refused to store a result
    ├── TimeoutError              AsyncResult.get() waited longer than its timeout
    ├── Retry                     raised by Task.retry(); the worker republishes the task
    ├── MaxRetriesExceededError   retry() past max_retries with no exception to re-raise
    ├── SoftTimeLimitExceeded     raised inside a task at its soft time limit
    ├── TimeLimitExceeded         the result of a task ended at its hard time limit
    ├── TaskRevokedError          the task expired or was revoked before it ran
    └── ChordError                a chord's header failed (the body fails with it)

The names match Celery's (``celery.exceptions``; EncodeError is kombu's), so ``except``
clauses carry over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any


class CeleriacError(Exception):
    """Base class of every celeriac exception."""


class ConfigurationError(CeleriacError):
    """A setting, URL or CLI argument that cannot work."""


class ImproperlyConfigured(ConfigurationError):
    """Celery's name for a configuration error."""


class BrokerConnectionError(CeleriacError):
    """The broker or result backend cannot be reached; the message masks passwords."""


class PublishError(CeleriacError):
    """The broker refused a published message (nack, unroutable, an error reply)."""


class UnconfirmedPublish(PublishError):
    """Earlier sync publishes the broker refused after the call returned (the reply or
    confirm window); ``task_ids`` names them."""

    def __init__(self, text: str, task_ids: Sequence[str]) -> None:
        super().__init__(text)
        self.task_ids = list(task_ids)


class TaskMessageError(CeleriacError):
    """A message that cannot become a task run. The worker dead-letters it."""


class DecodeError(TaskMessageError):
    """The message body or envelope does not parse."""


class ContentDisallowed(TaskMessageError):
    """The content type is not in ``accept_content``."""


class NotRegistered(TaskMessageError, KeyError):
    """No task of that name is registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class InvalidTaskArguments(TaskMessageError, TypeError):
    """The message's args/kwargs do not fit the task's signature."""


class EncodeError(CeleriacError):
    """A value cannot be serialized: a task's result the result backend cannot encode.
    Stored as ``kombu.exceptions.EncodeError``, the type a Celery worker stores."""


class BackendStoreError(CeleriacError):
    """The result backend refused to store a result (too large, an error reply).
    Celery's ``celery.exceptions.BackendStoreError``."""


class TimeoutError(CeleriacError):
    """``AsyncResult.get()`` waited longer than its timeout."""


class Retry(CeleriacError):
    """Raised by ``Task.retry()``: tells the worker to republish the task later.

    Carries the delay (``when``: seconds or a datetime), the exception that caused it
    and the options for the new message.
    """

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | dt.datetime | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
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
        return (type(self), (self.message, self.exc, self.when, self.options))


class Ignore(CeleriacError):
    """Raised by a task (``Task.replace`` does) to tell the worker to record nothing:
    no result, no callbacks, no chord part; the message is acked."""


class MaxRetriesExceededError(CeleriacError):
    """``retry()`` was called past ``max_retries`` and had no exception to re-raise."""


class SoftTimeLimitExceeded(CeleriacError):
    """Raised inside a task when its soft time limit passes."""


class TimeLimitExceeded(CeleriacError):
    """A task was ended at its hard time limit."""


class TaskRevokedError(CeleriacError):
    """The task was revoked or expired before it ran."""


class ChordError(CeleriacError):
    """A chord's header task failed, or its body could not be sent: the body's result
    is this error, and the body's errbacks run once."""
