"""The application's bootsteps (celeriac.bootsteps) in a running worker.

Worker.run calls, in this order (Celery's, for what celeriac has of it):

- ``build`` after the task modules are imported (they may add steps): each class in
  ``app.steps["worker"]`` is made as ``Step(worker, **options)``, each in
  ``app.steps["consumer"]`` as ``Step(consumer_view, **options)`` (options: the ones the
  worker was made with); then ``include_if(parent)`` and ``create(parent)``.
- ``start`` once the worker is up (connections, pool, control, signal handlers) and
  before the first fetch: worker steps, then consumer steps, each in ``requires`` order.
  A step that raises: one critical log line (the traceback at debug level), the steps
  already started are stopped, and the worker shuts down with exit status 1.
- ``stop`` at shutdown, once fetching has stopped and before running tasks are waited
  for: ``close`` then, last started first, ``stop`` (a cold shutdown: ``terminate`` for
  worker steps, as Celery).
- ``shutdown`` at exit, before the connections close: consumer steps only (Celery's
  Worker never calls it on worker steps).

``requires`` orders the application's steps among themselves (a required step not added
is added, as Celery does). A requirement naming one of Celery's own steps
(``celery.worker.components:Pool``, ...) is already met here and is ignored with a
debug line. Sync methods run on the worker's event loop; ``async def`` ones are awaited.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from celeriac.config import import_object
from celeriac.errors import ConfigurationError

logger = logging.getLogger("celeriac.worker")
EX_FAILURE = 1


def _resolve(requirement: Any, owner: type) -> type | None:
    """A ``requires`` entry -> a step class, or None for one of Celery's own steps."""
    if isinstance(requirement, type):
        return requirement
    path = str(requirement)
    if path.startswith("celery."):
        logger.debug("bootstep %s requires %s: a Celery step, up before any user step "
                     "in celeriac", owner.__name__, path)
        return None
    try:
        found = import_object(path)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"bootstep {owner.__name__} requires {path!r}, which "
                                 f"cannot be imported: {exc}") from None
    if not isinstance(found, type):
        raise ConfigurationError(f"bootstep {owner.__name__} requires {path!r}, "
                                 f"which is not a step class")
    return found


def order(classes: Iterable[type]) -> list[type]:
    """The step classes with what they require, required ones first; otherwise by name
    (a set has no order of its own). A cycle is a ConfigurationError."""
    pending = sorted(set(classes), key=lambda c: str(getattr(c, "name", c.__name__)))
    deps: dict[type, list[type]] = {}
    while pending:
        cls = pending.pop(0)
        if cls in deps:
            continue
        found = [r for r in (_resolve(x, cls) for x in getattr(cls, "requires", ()) or ())
                 if r is not None]
        deps[cls] = found
        pending.extend(r for r in found if r not in deps)
    done: list[type] = []
    visiting: set[type] = set()

    def visit(cls: type) -> None:
        if cls in done:
            return
        if cls in visiting:
            raise ConfigurationError(f"bootsteps require each other in a cycle at "
                                     f"{cls.__name__}")
        visiting.add(cls)
        for dep in deps[cls]:
            visit(dep)
        visiting.discard(cls)
        done.append(cls)

    for cls in deps:
        visit(cls)
    return done


def _alias(step: Any) -> str:
    return str(getattr(step, "alias", type(step).__name__))


async def _call(step: Any, method: str, parent: Any) -> None:
    fun = getattr(step, method, None)
    if fun is None:
        return
    result = fun(parent)
    if inspect.isawaitable(result):
        await result


class Bootsteps:
    """One worker's steps: (step, parent, blueprint) in start order."""

    def __init__(self, steps: list[tuple[Any, Any, str]]) -> None:
        self.steps = steps
        self.started: list[tuple[Any, Any, str]] = []
        self._stopped = False

    @classmethod
    def build(cls, app: Any, worker: Any, consumer_view: Any,
              options: Mapping[str, Any]) -> Bootsteps:
        made: list[tuple[Any, Any, str]] = []
        for blueprint, parent in (("worker", worker), ("consumer", consumer_view)):
            classes = order(app.steps.get(blueprint, ()))
            if classes:
                logger.debug("| %s: New boot order: {%s}", blueprint.capitalize(),
                             ", ".join(c.__name__ for c in classes))
            for step_cls in classes:
                try:
                    step = step_cls(parent, **options)
                    if step.include_if(parent):
                        obj = step.create(parent)
                        if hasattr(step, "obj"):
                            step.obj = obj
                        made.append((step, parent, blueprint))
                except Exception as exc:
                    raise ConfigurationError(f"bootstep {step_cls.__name__} could not be "
                                             f"made: {exc!r}") from exc
        return cls(made)

    async def start(self) -> bool:
        """Start every step in order; False (and the started ones stopped) if one
        raised."""
        for step, parent, blueprint in self.steps:
            logger.debug("| %s: Starting %s", blueprint.capitalize(), _alias(step))
            try:
                await _call(step, "start", parent)
            except Exception as exc:
                logger.critical("Unrecoverable error: bootstep %s failed to start: %r",
                                _alias(step), exc)
                logger.debug("bootstep %s", _alias(step), exc_info=True)
                await self.stop(cold=False)
                return False
            self.started.append((step, parent, blueprint))
        return True

    async def stop(self, cold: bool) -> None:
        """``close`` each started step, then ``stop`` (cold: worker steps ``terminate``)
        the last started first. Errors are logged; every step gets its call."""
        if self._stopped:
            return
        self._stopped = True
        for step, parent, blueprint in self.started:
            await self._quietly(step, "close", parent, blueprint)
        for step, parent, blueprint in reversed(self.started):
            method = "terminate" if cold and blueprint == "worker" and \
                hasattr(step, "terminate") else "stop"
            await self._quietly(step, method, parent, blueprint)

    async def shutdown(self) -> None:
        """``shutdown`` for the started consumer steps, last started first."""
        for step, parent, blueprint in reversed(self.started):
            if blueprint == "consumer":
                await self._quietly(step, "shutdown", parent, blueprint)

    @staticmethod
    async def _quietly(step: Any, method: str, parent: Any, blueprint: str) -> None:
        try:
            await _call(step, method, parent)
        except Exception as exc:
            logger.exception("Error on %s %s: %r", method, _alias(step), exc)
