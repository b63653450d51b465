"""Where a task message goes: queue, exchange, routing key, from ``task_routes``.

Precedence, as in Celery: options given to ``apply_async`` > the task's own options
(``@app.task(queue=...)``) > ``task_routes`` > ``task_default_queue``.
``task_routes`` is a dict ``{name or glob: route}`` (a route is a dict or a queue name),
a callable ``(name, args, kwargs, options, task=None, **kw) -> route | None`` (or its
import path, ``'proj.routers.route_task'``), or a list of those tried in order. Glob
keys (``'feed.tasks.*'``) and ``re.compile`` keys match the task's name. A router that
raises is logged with its traceback and skipped: the task is still sent.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("celeriac.app")

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
            routers: list[Any] = []
        elif isinstance(routes, (list, tuple)):
            routers = list(routes)
        else:
            routers = [routes]
        self._routers = [_load(router) for router in routers]

    def lookup(self, name: str, args: Any, kwargs: Any, options: dict[str, Any],
               task: Any = None) -> Route | None:
        for router in self._routers:
            if isinstance(router, Mapping):
                route = _match_mapping(router, name)
            elif callable(router):
                try:
                    route = _as_route(router(name, args, kwargs, options, task=task))
                except Exception:
                    logger.exception("task router %r failed for %s; trying the next",
                                     router, name)
                    continue
            else:
                raise TypeError(f"task_routes entries must be dicts or callables: {router!r}")
            if route:
                return route
        return None


def _load(router: Any) -> Any:
    """A router given by its import path, imported; anything else as it is."""
    if isinstance(router, str):
        from celeriac.config import import_object

        return import_object(router)
    return router
