"""The result backend contract, and Celery's result format shared by every backend.

A result is Celery's meta dict: ``{"status", "result", "traceback", "children",
"date_done", "task_id"}`` (plus ``group_id``/``parent_id`` when present), stored as JSON
with kombu's ``__type__`` wrappers, or pickled (``result_serializer``, backends/codec.py).
A failure's ``result`` is
``{"exc_type", "exc_message", "exc_module"}``; ``rebuild_exception`` turns it back into
an exception only when the named class really is an exception class.

Every backend keeps these rules (tests/contract/backend_suite.py checks them):
- a stored SUCCESS is never overwritten (a late duplicate run cannot change it);
- ``wait`` returns as soon as a READY state is stored, including one stored before
  the wait began; it returns None on timeout;
- results expire after ``expires_s`` where the backend supports expiry.
"""

from __future__ import annotations

import abc
import builtins
import contextvars
import datetime as dt
import importlib
import sys
import traceback as tb
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from celeriac import states
from celeriac.backends.codec import ENCODE_ERRORS, JSON_CODEC, ResultCodec
from celeriac.serialization import json_dumps

Meta = dict[str, Any]

#: (reply_to, correlation_id) of the task message whose results are being stored: the
#: worker sets it per delivery; ``rpc://`` sends results there, other backends ignore it
result_route: contextvars.ContextVar[tuple[str | None, str | None] | None] = (
    contextvars.ContextVar("celeriac_result_route", default=None))


class ResultBackend(abc.ABC):
    """Stores task results by id. See the module docstring."""

    schemes: tuple[str, ...] = ()
    #: stores pickled results when result_serializer is 'pickle' (else JSON, warned)
    pickles: bool = True

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})
        #: result_serializer / result_accept_content (the app adds them to the options)
        self.codec = ResultCodec.from_options(self.options)
        if not self.pickles and self.codec.content_type != JSON_CODEC.content_type:
            import warnings

            from celeriac.errors import UnsupportedSetting

            warnings.warn(f"result_serializer={self.options.get('result_serializer')!r} has "
                          f"no effect on {type(self).__name__}: its results are JSON",
                          UnsupportedSetting, stacklevel=2)
            self.codec = ResultCodec(accept=self.codec.accept)

    async def connect(self) -> None:
        """Open connections; raise BrokerConnectionError (URL masked) if unreachable."""

    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        """Save a task's state; never replaces a stored SUCCESS."""

    @abc.abstractmethod
    async def get(self, task_id: str) -> Meta | None:
        """The stored meta, or None (PENDING) when there is none."""

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        """Metas of several tasks; backends override this with one round trip."""
        found = {}
        for task_id in task_ids:
            meta = await self.get(task_id)
            if meta is not None:
                found[task_id] = meta
        return found

    @abc.abstractmethod
    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        """Wait until the task is READY; returns its meta, or None on timeout."""

    @abc.abstractmethod
    async def forget(self, task_id: str) -> None:
        """Delete a stored result."""


class BlockingWaitUnsupported(Exception):
    """This server cannot serve a blocking wait (Redis before 6: no RESP3)."""


@runtime_checkable
class BlockingWaiter(Protocol):
    """A backend that waits for a result in the sync caller's own thread, no bridge
    loop in between (Redis: celeriac.backends.redis.wait). ``wait_blocking`` raises
    BlockingWaitUnsupported when the server cannot; the app then waits on the bridge."""

    def wait_blocking(self, task_id: str, timeout_s: float | None) -> Meta | None: ...

    def close_blocking(self) -> None: ...


class DisabledBackend(ResultBackend):
    """No result backend configured: storing is a no-op, reading says how to fix it."""

    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        return None

    async def get(self, task_id: str) -> Meta | None:
        raise NotImplementedError(_NO_BACKEND)

    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        raise NotImplementedError(_NO_BACKEND)

    async def forget(self, task_id: str) -> None:
        return None


_NO_BACKEND = (
    "no result backend is configured: set result_backend "
    "(e.g. 'redis://localhost/0' or 'sqlite:///results.db')"
)


# -- Celery's result format ------------------------------------------------------------


def make_meta(
    task_id: str,
    status: str,
    result: Any,
    traceback: str | None = None,
    *,
    children: list[Any] | None = None,
    group_id: str | None = None,
    parent_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Meta:
    """Build the meta dict Celery stores. ``result`` is already JSON-able."""
    meta: Meta = {
        "status": status,
        "result": result,
        "traceback": traceback,
        "children": children,
        "date_done": (
            dt.datetime.now(dt.UTC).isoformat() if status in states.READY_STATES else None
        ),
        "task_id": task_id,
    }
    if group_id is not None:
        meta["group_id"] = group_id
    if parent_id is not None:
        meta["parent_id"] = parent_id
    if extra:
        meta.update(extra)
    return meta


def encode_meta(meta: Meta, codec: ResultCodec = JSON_CODEC) -> bytes:
    """The bytes a backend stores (backends/codec.py): EncodeError, naming the type, for
    a result the serializer cannot carry, before anything is written."""
    return codec.encode(meta)


def decode_meta(raw: bytes | str, codec: ResultCodec = JSON_CODEC) -> Meta:
    """A stored meta; pickle only when ``codec`` accepts it (ContentDisallowed)."""
    return codec.decode(raw)


#: celeriac exceptions that Celery has under the same name in ``celery.exceptions``: they
#: travel under Celery's module so a Celery client raises its own class, and back.
CELERY_TWINS = frozenset({
    "CeleryError", "ImproperlyConfigured", "SecurityError", "TaskPredicate", "Retry",
    "Ignore", "Reject", "TaskError", "QueueNotFound", "IncompleteStream", "NotRegistered",
    "AlreadyRegistered", "TimeoutError", "MaxRetriesExceededError", "TaskRevokedError",
    "InvalidTaskError", "ChordError", "BackendError", "BackendGetMetaError",
    "BackendStoreError", "SoftTimeLimitExceeded", "TimeLimitExceeded", "WorkerLostError",
    "Terminated",
})
#: the same for the kombu exceptions Celery stores: an unencodable result is a FAILURE
#: with ``kombu.exceptions.EncodeError``, which a Celery client raises as kombu's own
KOMBU_TWINS = frozenset({"EncodeError", "OperationalError"})
#: Celery's prefork pool stores its limits and lost children under billiard's module
BILLIARD_TWINS = frozenset({"SoftTimeLimitExceeded", "TimeLimitExceeded",
                            "WorkerLostError", "Terminated"})


def exception_to_result(exc: BaseException) -> dict[str, Any]:
    """``ValueError('bad', 42)`` -> Celery's ``{"exc_type", "exc_message", "exc_module"}``."""
    cls = type(exc)
    args = list(exc.args)
    try:
        json_dumps(args)
    except ENCODE_ERRORS:
        args = [repr(a) for a in args]
    module = cls.__module__
    if module.startswith("celeriac."):  # errors.py, or a pool's own WorkerLostError
        if cls.__name__ in CELERY_TWINS:
            module = "celery.exceptions"
        elif cls.__name__ in KOMBU_TWINS:
            module = "kombu.exceptions"
    return {"exc_type": cls.__qualname__, "exc_message": args, "exc_module": module}


def format_traceback(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


class RemoteError(Exception):
    """Stands in for a failure whose exception class cannot be rebuilt here."""

    def __init__(self, exc_type: str, exc_module: str, message: Any) -> None:
        self.exc_type = exc_type
        self.exc_module = exc_module
        super().__init__(f"{exc_module}.{exc_type}: {message}")


def rebuild_exception(result: Any) -> BaseException:
    """Celery's failure dict -> an exception instance.

    Only classes that are really exceptions are rebuilt, and only from modules that are
    already imported or are builtins: a stored result can never make us import code.
    """
    if isinstance(result, BaseException):
        return result
    if not isinstance(result, dict) or "exc_type" not in result:
        return RemoteError("Exception", "builtins", result)
    name = str(result.get("exc_type"))
    module_name = str(result.get("exc_module") or "builtins")
    message = result.get("exc_message")
    args = tuple(message) if isinstance(message, (list, tuple)) else (message,)
    cls: Any = None
    if (module_name == "celery.exceptions" and name in CELERY_TWINS) or (
            module_name == "kombu.exceptions" and name in KOMBU_TWINS) or (
            module_name == "billiard.exceptions" and name in BILLIARD_TWINS):
        module_name = "celeriac.errors"
    if module_name == "builtins":
        cls = getattr(builtins, name, None)
    else:
        module = sys.modules.get(module_name)
        if module is None and module_name.startswith("celeriac."):
            module = importlib.import_module(module_name)
        if module is not None:
            cls = module
            for part in name.split("."):
                cls = getattr(cls, part, None)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            return cls(*args)
        except Exception:
            pass
    return RemoteError(name, module_name, message)
