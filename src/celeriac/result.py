"""AsyncResult: the handle ``.delay()`` returns; reads the task's state from the backend.

``get()`` blocks until the task is ready and returns its value, or re-raises its
exception (rebuilt as its own type where that type is a real exception class).
``aget()`` is the awaitable twin. ``AsyncResult[R]`` carries the task's return type.
``parent`` is the result of the step before in a chain (or a chord's header);
``children`` are the results a task's own calls started (read from the stored result).
Groups' results (GroupResult, ResultSet) are in ``celeriac.result_group``.

Inside a task run by a worker, ``get()`` raises RuntimeError, as Celery's does: a task
waiting for another can deadlock the pool. ``with allow_join_result():`` or
``get(disable_sync_subtasks=False)`` lifts the rule for one wait.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from celeriac import states
from celeriac.backends.base import Meta, rebuild_exception
from celeriac.context import current_request
from celeriac.errors import TimeoutError

if TYPE_CHECKING:
    from celeriac.app import Celery

R = TypeVar("R")

E_WOULDBLOCK = ("Never call result.get() within a task! See "
                "https://docs.celeryq.dev/en/latest/userguide/tasks.html"
                "#avoid-launching-synchronous-subtasks")
_join_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "celeriac_join_allowed", default=False)


def task_join_will_block() -> bool:
    """True inside a task a worker runs (not eager, not a plain call)."""
    request = current_request.get()
    return request.id is not None and not request.is_eager and not request.called_directly


def assert_will_not_block() -> None:
    """Raise RuntimeError when waiting here would block a worker's task (Celery's rule)."""
    if not _join_allowed.get() and task_join_will_block():
        raise RuntimeError(E_WOULDBLOCK)


@contextlib.contextmanager
def allow_join_result() -> Iterator[None]:
    """Let ``get()`` wait inside a task (``with allow_join_result(): r.get()``)."""
    token = _join_allowed.set(True)
    try:
        yield
    finally:
        _join_allowed.reset(token)


@contextlib.contextmanager
def denied_join_result() -> Iterator[None]:
    """Restore the rule inside an ``allow_join_result`` block."""
    token = _join_allowed.set(False)
    try:
        yield
    finally:
        _join_allowed.reset(token)


class ResultBase:
    """Base class of every result (Celery's ``celery.result.ResultBase``)."""

    #: the result of the step before (a chain's parent), if known
    parent: Any = None


class AsyncResult(ResultBase, Generic[R]):
    """A task's result, looked up by id in the app's result backend."""

    def __init__(self, id: str, app: Celery | None = None,
                 parent: AsyncResult[Any] | Any = None, **_ignored: Any) -> None:
        if app is None:
            from celeriac.app import current_app

            app = current_app()
        self.id = id
        self.app = app
        self.parent = parent
        self._meta: Meta | None = None

    task_id = property(lambda self: self.id)

    def revoke(self, connection: Any = None, terminate: bool = False,
               signal: str | None = None, wait: bool = False,
               timeout: float | None = None) -> None:
        """Revoke this task on every worker (and those started later: see
        ``celeriac.control``); ``terminate`` stops it if it is running."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal or "SIGTERM",
                                reply=wait, timeout=timeout or 1.0)

    # -- reading ----------------------------------------------------------------------
    def _cached_or_fetch(self) -> Meta | None:
        if self._meta is not None and self._meta.get("status") in states.READY_STATES:
            return self._meta
        meta = self.app.run_sync(self._fetch())
        if meta is not None:
            self._meta = meta
        return meta

    async def _fetch(self) -> Meta | None:
        backend = await self.app.clients.backend()
        return await backend.get(self.id)

    async def _wait(self, timeout_s: float | None) -> Meta | None:
        backend = await self.app.clients.backend()
        return await backend.wait(self.id, timeout_s)

    def _value(self, meta: Meta, propagate: bool) -> R:
        status = meta.get("status")
        if status in states.PROPAGATE_STATES:
            exc = rebuild_exception(meta.get("result"))
            if propagate:
                raise exc
            return exc  # type: ignore[return-value]
        return cast(R, meta.get("result"))

    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, disable_sync_subtasks: bool = True,
            **_ignored: Any) -> R:
        """Wait for the task and return its value; re-raise its exception if it failed.

        Raises celeriac.TimeoutError when ``timeout`` seconds pass first, RuntimeError
        inside a worker's task (see the module docstring).
        """
        if disable_sync_subtasks and not isinstance(self, EagerResult):
            assert_will_not_block()
        meta = self._meta if self.ready_cached else self.app.wait_for_result(self.id, timeout)
        if meta is None:
            raise TimeoutError(f"task {self.id} did not finish within {timeout}s")
        self._meta = meta
        return self._value(meta, propagate)

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Awaitable ``get`` for async applications (waits on the caller's loop)."""
        meta = self._meta if self.ready_cached else await self._wait(timeout)
        if meta is None:
            raise TimeoutError(f"task {self.id} did not finish within {timeout}s")
        self._meta = meta
        return self._value(meta, propagate)

    wait = get

    @property
    def ready_cached(self) -> bool:
        return self._meta is not None and self._meta.get("status") in states.READY_STATES

    @property
    def state(self) -> str:
        meta = self._cached_or_fetch()
        return str(meta["status"]) if meta else states.PENDING

    status = state

    @property
    def info(self) -> Any:
        meta = self._cached_or_fetch()
        if meta is None:
            return None
        if meta.get("status") in states.EXCEPTION_STATES and meta.get("result") is not None:
            return rebuild_exception(meta["result"])
        return meta.get("result")

    result = info

    @property
    def traceback(self) -> str | None:
        meta = self._cached_or_fetch()
        return meta.get("traceback") if meta else None

    @property
    def date_done(self) -> str | None:
        meta = self._cached_or_fetch()
        return meta.get("date_done") if meta else None

    def _extended(self, key: str) -> Any:
        """A field stored with the result under ``result_extended`` (None otherwise)."""
        meta = self._cached_or_fetch()
        return meta.get(key) if meta else None

    name = property(lambda self: self._extended("name"), doc="The task's name "
                    "(result_extended).")
    args = property(lambda self: self._extended("args"), doc="Positional arguments "
                    "(result_extended).")
    kwargs = property(lambda self: self._extended("kwargs"), doc="Keyword arguments "
                      "(result_extended).")
    worker = property(lambda self: self._extended("worker"), doc="The worker's hostname "
                      "(result_extended).")
    retries = property(lambda self: self._extended("retries"), doc="Retries so far "
                       "(result_extended).")
    queue = property(lambda self: self._extended("queue"), doc="The queue it came from "
                     "(result_extended).")

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    @property
    def children(self) -> list[Any] | None:
        """Results of the calls this task made, as stored with its result."""
        from celeriac.result_group import result_from_tuple

        meta = self._cached_or_fetch()
        if not meta or not meta.get("children"):
            return None
        return [result_from_tuple(child, self.app) for child in meta["children"]]

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Any:
        """Yield (result, value) for this result and its children, depth first, each
        waited for (Celery's ``collect``)."""
        for result in self._walk():
            value = result.get(**kwargs)
            yield result, value

    def _walk(self) -> Any:
        stack: list[Any] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(getattr(node, "children", None) or []))

    def as_tuple(self) -> tuple[Any, Any]:
        """Celery's nested-tuple form (``result_from_tuple`` reads it back)."""
        parent = self.parent
        return (self.id, parent.as_tuple() if parent is not None else None), None

    def as_list(self) -> list[str]:
        ids = [self.id]
        node = self.parent
        while node is not None:
            ids.append(node.id)
            node = getattr(node, "parent", None)
        return ids

    def forget(self) -> None:
        """Delete the stored result."""
        self._meta = None
        self.app.run_sync(self._forget())

    async def _forget(self) -> None:
        backend = await self.app.clients.backend()
        await backend.forget(self.id)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        return other == self.id if isinstance(other, str) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __str__(self) -> str:
        return self.id


class EagerResult(AsyncResult[R]):
    """The result of ``task.apply()``: already known, no backend involved."""

    def __init__(self, id: str, value: Any, state: str, traceback: str | None = None,
                 app: Celery | None = None) -> None:
        super().__init__(id, app)
        result = value
        if state in states.PROPAGATE_STATES and isinstance(value, BaseException):
            result = value
        self._meta = {"status": state, "result": result, "traceback": traceback,
                      "task_id": id}

    def _cached_or_fetch(self) -> Meta | None:
        return self._meta

    @property
    def ready_cached(self) -> bool:
        return True

    def forget(self) -> None:
        return None


def __getattr__(name: str) -> Any:
    """``celeriac.result.GroupResult`` etc., as ``celery.result`` has them."""
    if name in ("GroupResult", "ResultSet", "result_from_tuple"):
        from celeriac import result_group

        return getattr(result_group, name)
    raise AttributeError(name)
