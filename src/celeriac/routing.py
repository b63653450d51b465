"""Where a task message goes: queue, exchange, routing key, from ``task_routes``.

Precedence, as in Celery: options given to ``apply_async`` > the task's own options
(``@app.task(queue=...)``) > ``task_routes`` > ``task_default_queue``.
``task_routes`` is a dict ``{name or glob: route}`` (a route is a dict or a queue name),
a callable ``(name, args, kwargs, options, task=None) -> route | None``, or a list of
those tried in order.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

Route = dict[str, Any]
RouterFn = Callable[..., Any]


def _as_route(value: Any) -> Route | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"queue": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a route must be a dict or a queue name, not {type(value).__name__}")


def _match_mapping(table: Mapping[Any, Any], name: str) -> Route | None:
    if name in table:
        return _as_route(table[name])
    for pattern, route in table.items():
        if isinstance(pattern, re.Pattern):
            if pattern.match(name):
                return _as_route(route)
        elif isinstance(pattern, str) and any(c in pattern for c in "*?[") and \
                fnmatch.fnmatchcase(name, pattern):
            return _as_route(route)
    return None


class Router:
    """Resolves a task's destination from the app's ``task_routes``."""

    def __init__(self, routes: Any) -> None:
        if routes is None:
            self._routers: list[Any] = []
        elif isinstance(routes, (list, tuple)):
            self._routers = list(routes)
        else:
            self._routers = [routes]

    def lookup(self, name: str, args: Any, kwargs: Any, options: dict[str, Any],
               task: Any = None) -> Route | None:
        for router in self._routers:
            if isinstance(router, Mapping):
                route = _match_mapping(router, name)
            elif callable(router):
                route = _as_route(router(name, args, kwargs, options, task=task))
            else:
                raise TypeError(f"task_routes entries must be dicts or callables: {router!r}")
            if route:
                return route
        return None
