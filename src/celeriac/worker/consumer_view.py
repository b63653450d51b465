"""Celery's worker Consumer, as an application's code sees it: ``state.consumer`` in a
custom remote control command and the ``parent`` of a consumer bootstep.

It has the parts Celery's documentation shows such code using, where celeriac has the
same thing: ``app``, ``hostname``, ``controller`` (the Worker), ``pool``, ``timer``,
``qos`` (the prefetch window: ``value``, ``set``, ``increment_eventually``,
``decrement_eventually``), ``event_dispatcher`` (None without events),
``add_task_queue``, ``cancel_task_queue``, ``reset_rate_limits`` and ``call_soon``.
Celery's others (``connection``, ``task_consumer``, ``strategies``, ``gossip``, ...)
are kombu's or Celery's internals with no twin here: asking for one raises an
AttributeError that says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.worker.consumer import Consumer
    from celeriac.worker.worker import Worker

#: what the view offers (listed in the error for anything else)
OFFERED = ("app", "hostname", "controller", "pool", "timer", "qos", "event_dispatcher",
           "add_task_queue", "cancel_task_queue", "reset_rate_limits", "call_soon")


class QoS:
    """kombu's ``QoS`` over the consumer's prefetch window. ``value`` is the window
    asked for; the prefork pool sizes its own from measured run times, and no window
    goes below the pool's capacity (``inspect stats``' prefetch_count is the one in use)."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    @property
    def value(self) -> int:
        return self._consumer.configured_window

    def set(self, pcount: int) -> int:
        self._consumer.set_prefetch(int(pcount))
        return self.value

    def increment_eventually(self, n: int = 1) -> int:
        return self.set(self.value + max(int(n), 0))

    def decrement_eventually(self, n: int = 1) -> int:
        return self.set(self.value - max(int(n), 0))

    def update(self) -> int:
        return self.value


class ConsumerView:
    """See the module docstring."""

    def __init__(self, worker: Worker) -> None:
        self.controller = worker
        self.app = worker.app
        self.hostname = worker.hostname
        self._qos: QoS | None = None

    @property
    def _consumer(self) -> Consumer:
        consumer = self.controller.consumer
        if consumer is None:
            raise RuntimeError("the worker's consumer is not made yet (use it from a "
                               "bootstep's start(), not its __init__)")
        return consumer

    @property
    def pool(self) -> Any:
        return self.controller.pool

    @property
    def timer(self) -> Any:
        return self.controller.timer

    @property
    def qos(self) -> QoS:
        if self._qos is None:
            self._qos = QoS(self._consumer)
        return self._qos

    @property
    def event_dispatcher(self) -> Any:
        control = self.controller.control
        return control.state.events if control is not None else None

    def add_task_queue(self, queue: str, exchange: Any = None, exchange_type: Any = None,
                       routing_key: Any = None, **options: Any) -> None:
        """Consume from one more queue, by name (as the add_consumer command)."""
        queues = self._consumer.queues
        if queue not in queues:
            queues.append(queue)

    def cancel_task_queue(self, queue: str) -> None:
        """Stop consuming from a queue (never the last one)."""
        queues = self._consumer.queues
        if queue in queues and len(queues) > 1:
            queues.remove(queue)

    def reset_rate_limits(self) -> None:
        """Read every task's ``rate_limit`` again."""
        limiter = self._consumer.limiter
        for name in self.app.tasks:
            limiter.reset(name)

    def call_soon(self, fun: Any, *args: Any) -> Any:
        """Run ``fun(*args)`` on the worker's loop soon (from any thread)."""
        return self.controller.timer.call_after(0.0, fun, args)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"celeriac's consumer has no {name!r}: Celery's Consumer internals (kombu "
            f"connections, channels, strategies) have no twin in celeriac; it offers "
            f"{', '.join(OFFERED)}")

    def __repr__(self) -> str:
        return f"<Consumer: {self.hostname}>"
