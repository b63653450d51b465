"""``task_annotations``: task attributes set from the configuration, as Celery does.

``{'tasks.add': {'rate_limit': '10/s'}}`` sets ``rate_limit`` on that task's class;
``{'*': {...}}`` on every task; a list of such dicts (or objects with ``annotate(task)``
/ ``annotate_any()`` methods, or their import paths) is searched in order: the first
one naming the task applies, then the first with ``'*'`` (so, as in Celery, ``'*'``
wins where both set an attribute). A key ``'@on_failure'`` wraps that method:
``around(original)`` returns the replacement. Applied when the app finalizes (a worker
does before it starts), and to tasks registered after that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celeriac.config import import_object


def _prepared(configured: Any) -> list[Any]:
    if not configured:
        return []
    items = configured if isinstance(configured, (list, tuple)) else [configured]
    found = []
    for item in items:
        if isinstance(item, str):
            item = import_object(item)
            item = item() if isinstance(item, type) else item
        found.append(item)
    return found


def _specific(item: Any, task: Any) -> Mapping[str, Any] | None:
    if isinstance(item, Mapping):
        value = item.get(task.name)
        return dict(value) if value is not None else None
    method = getattr(item, "annotate", None)
    return method(task) if method is not None else None


def _any(item: Any) -> Mapping[str, Any] | None:
    if isinstance(item, Mapping):
        value = item.get("*")
        return dict(value) if value is not None else None
    method = getattr(item, "annotate_any", None)
    return method() if method is not None else None


def annotate(configured: Any, tasks: Iterable[Any]) -> None:
    """Apply ``task_annotations`` to each task's class."""
    items = _prepared(configured)
    if not items:
        return
    for task in tasks:
        specific = next((m for m in (_specific(i, task) for i in items) if m), None)
        anything = next((m for m in (_any(i) for i in items) if m), None)
        cls = type(task)
        for found in (specific, anything):
            for key, value in (found or {}).items():
                if key.startswith("@"):
                    original = getattr(cls, key[1:])
                    original = getattr(original, "__wrapped__", original)
                    wrapped = value(original)
                    wrapped.__wrapped__ = original
                    setattr(cls, key[1:], wrapped)
                else:
                    setattr(cls, key, value)
