"""Celery's ``celery.bootsteps``: an application's own steps, started and stopped with
the worker::

    class Liveness(bootsteps.StartStopStep):
        def start(self, worker):
            self.tref = worker.timer.call_repeatedly(1.0, Path("/tmp/alive").touch)

        def stop(self, worker):
            self.tref.cancel()

    app.steps["worker"].add(Liveness)

``app.steps["worker"]`` steps get the Worker as ``parent`` (``app``, ``hostname``,
``pool``, ``timer``); ``app.steps["consumer"]`` steps get Celery's consumer as
celeriac shows it (worker/consumer_view.py). worker/steps.py runs them: when and in
what order is written there. What differs from Celery: there is no graph of Celery's
own steps to join (a ``requires`` naming one is met: they are all up before any user
step starts), and a ``ConsumerStep`` (kombu consumers on the worker's connection)
cannot start: celeriac has no kombu connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celeriac.errors import ConfigurationError

__all__ = ["ConsumerStep", "StartStopStep", "Step"]


class StepType(type):
    """Names each step class ``module.ClassName`` unless it sets ``name``, as Celery."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        module = attrs.get("__module__")
        attrs["name"] = attrs.get("name") or (f"{module}.{name}" if module else name)
        return super().__new__(mcs, name, bases, attrs)

    def __repr__(cls) -> str:
        return f"step:{cls.name}{{{cls.requires!r}}}"  # type: ignore[attr-defined]


class Step(metaclass=StepType):
    """A bootstep. ``__init__(parent, **options)`` runs when the worker makes its steps
    (after the task modules are imported); define ``start``/``stop``/``shutdown`` as
    needed (``async def`` works too)."""

    #: ``module.ClassName`` unless set
    name: str = ""
    #: short name for logs
    label: str | None = None
    conditional = False
    #: steps that must start before this one (classes or ``"module:Class"``)
    requires: Iterable[Any] = ()
    last = False
    #: the default of ``include_if``
    enabled = True

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        pass

    def include_if(self, parent: Any) -> bool:
        """Whether this step runs in this worker."""
        return bool(self.enabled)

    def create(self, parent: Any) -> Any:
        """Called once the step is included; a StartStopStep keeps what it returns as
        ``obj`` and starts and stops that."""
        return None

    @property
    def alias(self) -> str:
        return self.label or self.name.rsplit(".", 1)[-1]

    def info(self, obj: Any) -> Any:
        return None

    def __repr__(self) -> str:
        return f"<step: {self.alias}>"


class StartStopStep(Step):
    """A step that is started and stopped; by default it starts and stops ``obj``."""

    obj: Any = None

    def start(self, parent: Any) -> Any:
        if self.obj:
            return self.obj.start()
        return None

    def stop(self, parent: Any) -> Any:
        if self.obj:
            return self.obj.stop()
        return None

    def close(self, parent: Any) -> None:
        pass

    def terminate(self, parent: Any) -> Any:
        if self.obj:
            return getattr(self.obj, "terminate", self.obj.stop)()
        return None


class ConsumerStep(StartStopStep):
    """Celery's step for kombu consumers of the application's own queues. celeriac's
    worker has no kombu connection or channel to give ``get_consumers``: starting one
    fails with a clear error (the worker then stops). Consume such messages with a task
    on a queue of its own (``-Q``), or a StartStopStep that runs its own client."""

    requires = ("celery.worker.consumer:Connection",)
    consumers: Any = None

    def get_consumers(self, channel: Any) -> Any:
        raise NotImplementedError("missing get_consumers")

    def start(self, c: Any) -> None:
        raise ConfigurationError(
            f"{type(self).__name__} is a ConsumerStep: its kombu consumers need a channel "
            f"of the worker's kombu connection, which celeriac does not have; consume "
            f"with a task on a queue of its own (-Q) or a StartStopStep with its own client")

    def stop(self, c: Any) -> None:
        pass

    def shutdown(self, c: Any) -> None:
        pass
