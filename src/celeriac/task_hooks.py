"""A task class's hooks, run where the task runs, as Celery's tracer runs them.

``before_start`` runs just before the function; after it, by outcome: SUCCESS ->
``on_success``, RETRY -> ``on_retry``, FAILURE -> ``on_failure``, then ``after_return``
for every outcome but RETRY, IGNORED and REJECTED. They run inside the task's request
(``self.request`` is the call's), in the process and thread that ran the task: a prefork
child, not the worker's parent. A hook that raises is logged with its traceback and the
task's outcome stands. Tasks that override none of them pay one dict lookup.
"""

from __future__ import annotations

import logging
import traceback as tb
from types import TracebackType
from typing import TYPE_CHECKING, Any

from celeriac import states

if TYPE_CHECKING:
    from celeriac.execution import Outcome
    from celeriac.task import Task

logger = logging.getLogger("celeriac.worker")

_NAMES = ("before_start", "on_success", "on_failure", "on_retry", "after_return")
#: task class -> the hooks it overrides (empty: nothing to call)
_OVERRIDDEN: dict[type, frozenset[str]] = {}


class ExceptionInfo:
    """Celery's ``einfo``: the exception, its type, traceback object and text."""

    def __init__(self, exc: BaseException, text: str | None = None) -> None:
        self.exception = exc
        self.type = type(exc)
        self.tb: TracebackType | None = exc.__traceback__
        self.traceback = text or "".join(tb.format_exception(self.type, exc, self.tb))

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"


def overridden(task: Task[Any, Any]) -> frozenset[str]:
    """The hooks the task's class overrides (computed once per class)."""
    cls = type(task)
    try:
        return _OVERRIDDEN[cls]
    except KeyError:
        from celeriac.task import Task

        found = frozenset(n for n in _NAMES if getattr(cls, n) is not getattr(Task, n))
        _OVERRIDDEN[cls] = found
        return found


def before_start(task: Task[Any, Any], task_id: Any, args: list[Any],
                 kwargs: dict[str, Any]) -> None:
    """Run ``before_start``; what it raises fails the task, as in Celery."""
    task.before_start(task_id, args, kwargs)


def after(task: Task[Any, Any], hooks: frozenset[str], outcome: Outcome,
          task_id: str | None, args: list[Any], kwargs: dict[str, Any]) -> None:
    """The hooks for this outcome; marks it as hooked (the worker's parent then does
    not run ``on_failure`` again)."""
    outcome.hooked = True
    state, einfo = outcome.state, None
    if state == states.SUCCESS:
        if "on_success" in hooks:
            _call(task.on_success, outcome.value, task_id, args, kwargs)
    elif state == states.RETRY:
        retry = outcome.retry
        exc = retry.exc if retry is not None else outcome.value
        einfo = ExceptionInfo(exc or retry or Exception("retry"))
        if "on_retry" in hooks:
            _call(task.on_retry, exc, task_id, args, kwargs, einfo)
        return
    elif state == states.FAILURE:
        einfo = ExceptionInfo(outcome.value, outcome.traceback)
        if "on_failure" in hooks:
            _call(task.on_failure, outcome.value, task_id, args, kwargs, einfo)
    else:  # IGNORED, REJECTED
        return
    if "after_return" in hooks:
        _call(task.after_return, state, outcome.value, task_id, args, kwargs, einfo)


def on_failure_in_parent(task: Task[Any, Any], outcome: Outcome, task_id: str,
                         args: list[Any], kwargs: dict[str, Any]) -> None:
    """A failure the worker itself decided (time limit, lost child, a result the
    backend refused): ``on_failure`` and ``after_return`` run here, once."""
    if outcome.hooked:
        return
    hooks = overridden(task) & {"on_failure", "after_return"}
    if hooks:
        after(task, hooks, outcome, task_id, args, kwargs)
    outcome.hooked = True


def _call(hook: Any, *args: Any) -> None:
    try:
        hook(*args)
    except Exception:
        logger.exception("task hook %s failed", getattr(hook, "__qualname__", hook))
