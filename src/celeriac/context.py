"""``task.request``: what the running task knows about its own call.

Kept in a ContextVar, so each thread and each asyncio task sees its own request even
when thousands of coroutine tasks run at once on one loop.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from dataclasses import dataclass, field
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
    #: set by retry() when it gives up; the worker then dead-letters the message
    retries_exhausted: bool = False
    #: options the message was published with (queue, priority, ...), reused by retry()
    options: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Context:
        """A Context holding ``fields``, which must name every field (the worker makes
        one per task; this skips ``__init__``'s keyword handling, about half the cost)."""
        context = cls.__new__(cls)
        context.__dict__ = fields
        return context


_EMPTY = Context()
current_request: contextvars.ContextVar[Context] = contextvars.ContextVar(
    "celeriac_request", default=_EMPTY
)
