"""``task.request``: what the running task knows about its own call.

Kept in a ContextVar, so each thread and each asyncio task sees its own request even
when thousands of coroutine tasks run at once on one loop.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Context:
    """Celery's ``Task.request`` fields."""

    id: str | None = None
    task: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    eta: dt.datetime | None = None
    expires: dt.datetime | None = None
    hostname: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=dict)
    is_eager: bool = False
    called_directly: bool = True
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    origin: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    ignore_result: bool = False
    timelimit: tuple[float | None, float | None] = (None, None)
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    shadow: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    utc: bool = True
    #: set by retry() when it gives up; the worker then dead-letters the message
    retries_exhausted: bool = False
    #: options the message was published with (queue, priority, ...), reused by retry()
    options: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Context:
        """A Context holding ``fields``, which must name every field (a WorkerRequest:
        those it does not read later, plus ``_source``). The worker makes one per task;
        this skips ``__init__``'s keyword handling, about half the cost."""
        context = cls.__new__(cls)
        context.__dict__ = fields
        return context


class _ReadLater:
    """A request field filled from the message the first time it is read, then kept in
    the instance. Not a data descriptor: assigning the field simply stores the value."""

    def __init__(self, fill: Callable[[Any], Any]) -> None:
        self.fill = fill
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, request: Any, owner: type | None = None) -> Any:
        if request is None:
            return self
        value = request.__dict__[self.name] = self.fill(request._source)
        return value


def _delivery_info(source: Any) -> dict[str, Any]:
    _, message, redelivered, _ = source
    return {"exchange": message.exchange, "routing_key": message.routing_key,
            "priority": message.priority, "redelivered": redelivered}


class WorkerRequest(Context):
    """``task.request`` as the worker makes it, one per task: the fields the worker
    itself needs are set at once, the others are read from the message only if the task
    reads them (building all of them was a fifth of the worker's own cost per task).
    Fields that convert a header (retries, timelimit) are set at once, so a bad value
    is dead-lettered before the run, as before.
    ``_source`` is (TaskCall, Message, redelivered, hostname): a tuple, the cheapest
    thing to build per task. Pickles (prefork) as a plain, full Context."""

    eta = _ReadLater(lambda s: s[0].eta)
    expires = _ReadLater(lambda s: s[0].expires)
    hostname = _ReadLater(lambda s: s[3])
    delivery_info = _ReadLater(_delivery_info)
    root_id = _ReadLater(lambda s: s[0].headers.get("root_id"))
    group = _ReadLater(lambda s: s[0].headers.get("group"))
    group_index = _ReadLater(lambda s: s[0].headers.get("group_index"))
    origin = _ReadLater(lambda s: s[0].headers.get("origin"))
    reply_to = _ReadLater(lambda s: s[1].properties.get("reply_to"))
    correlation_id = _ReadLater(lambda s: s[1].properties.get("correlation_id"))
    callbacks = _ReadLater(lambda s: s[0].callbacks)
    errbacks = _ReadLater(lambda s: s[0].errbacks)
    chain = _ReadLater(lambda s: s[0].chain)
    chord = _ReadLater(lambda s: s[0].chord)
    options = _ReadLater(lambda s: {})
    properties = _ReadLater(lambda s: s[1].properties)
    shadow = _ReadLater(lambda s: s[0].headers.get("shadow"))
    content_type = _ReadLater(lambda s: s[1].content_type)
    content_encoding = _ReadLater(lambda s: s[1].content_encoding)

    def full(self) -> Context:
        """A plain Context with every field read."""
        return Context.from_fields({f.name: getattr(self, f.name) for f in fields(Context)})

    def __reduce__(self) -> Any:
        return Context.from_fields, (self.full().__dict__,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Context):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Context))

    __hash__ = None  # type: ignore[assignment]  # as Context's (a dataclass with eq)


_EMPTY = Context()
current_request: contextvars.ContextVar[Context] = contextvars.ContextVar(
    "celeriac_request", default=_EMPTY
)


def get_current_task() -> Any:
    """The task running in this thread or asyncio task (found by its request's name in
    the apps' registries), or None."""
    request = current_request.get()
    if request.id is None or not request.task:
        return None
    from celeriac.app import _all_apps

    for app in reversed(_all_apps):
        task = app._tasks.get(request.task)
        if task is not None:
            return task
    return None


class _CurrentTask:
    """Celery's ``current_task``: stands for the running task (false outside one)."""

    __slots__ = ()

    def _get_current_object(self) -> Any:
        return get_current_task()

    def __getattr__(self, name: str) -> Any:
        task = get_current_task()
        if task is None:
            raise AttributeError(f"no task is running here ({name!r})")
        return getattr(task, name)

    def __bool__(self) -> bool:
        return get_current_task() is not None

    def __eq__(self, other: object) -> bool:
        return bool(get_current_task() == other)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return repr(get_current_task())


current_task: Any = _CurrentTask()
