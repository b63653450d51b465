"""Prometheus metrics (prometheus-client, extra ``metrics``), for a worker's
``--metrics-port`` and the dashboard's ``/metrics``:

- ``celeriac_tasks_total{task,state}``: tasks finished, by Celery's state names
  (SUCCESS, FAILURE, RETRY, REVOKED);
- ``celeriac_task_runtime_seconds{task}``: a histogram of run times;
- ``celeriac_queue_length{queue}``: ready messages; ``celeriac_dead_letters{queue}``;
- ``celeriac_workers``: workers online (1 from a worker; the fleet at the dashboard).

A worker counts in its main process, where the executor records each outcome
(``Executor.on_outcome``): prefork children run tasks but never count them, so no
count is lost or doubled when a child is replaced. Queue figures are polled from the
broker every ``poll_s`` seconds (``observe.queues``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from celeriac.brokers.base import Broker
from celeriac.observe.queues import BrokerStats, queue_stats
from celeriac.utils.aio import cancel_and_wait

logger = logging.getLogger("celeriac.metrics")

#: run-time buckets (seconds): sub-millisecond tasks to ten-minute ones
RUNTIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0, 300.0, 600.0)


class Metrics:
    """The five metrics in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.tasks = Counter("celeriac_tasks", "Tasks finished, by task name and state.",
                             ["task", "state"], registry=self.registry)
        self.runtime = Histogram("celeriac_task_runtime_seconds", "Task run time.",
                                 ["task"], buckets=RUNTIME_BUCKETS, registry=self.registry)
        self.queue_length = Gauge("celeriac_queue_length", "Ready messages in a queue.",
                                  ["queue"], registry=self.registry)
        self.dead_letters = Gauge("celeriac_dead_letters", "Dead letters of a queue.",
                                  ["queue"], registry=self.registry)
        self.workers = Gauge("celeriac_workers", "Workers online.", registry=self.registry)

    def on_outcome(self, task: str, state: str, runtime_s: float | None) -> None:
        """One finished task (the executor's hook)."""
        self.tasks.labels(task, state).inc()
        if runtime_s is not None:
            self.runtime.labels(task).observe(runtime_s)

    def set_broker_stats(self, stats: BrokerStats) -> None:
        for queue in stats.queues.values():
            if queue.ready is not None:
                self.queue_length.labels(queue.queue).set(queue.ready)
            self.dead_letters.labels(queue.queue).set(queue.dead_letters)

    def serve(self, port: int, address: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` from a thread; returns (server, thread)."""
        return start_http_server(port, address, registry=self.registry)


async def poll_queues(metrics: Metrics, broker: Broker, queues: Iterable[str],
                      poll_s: float) -> None:
    """Refresh the queue gauges until cancelled; a failed read is logged and retried."""
    names = list(queues)
    while True:
        try:
            metrics.set_broker_stats(await queue_stats(broker, names))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("metrics: reading queue sizes failed: %s", exc)
        await asyncio.sleep(poll_s)


class WorkerExporter:
    """A worker's ``--metrics-port``: the counters fed by the executor's outcome hook,
    the queue gauges polled on a broker connection of its own, served from a thread."""

    def __init__(self, app: Any, queues: Iterable[str], port: int,
                 address: str = "127.0.0.1", poll_s: float = 5.0) -> None:
        self.app, self.queues, self.port, self.address = app, list(queues), port, address
        self.poll_s = poll_s
        self.metrics = Metrics()
        self.metrics.workers.set(1)
        self._server: Any = None
        self._broker: Broker | None = None
        self._polling: asyncio.Task[None] | None = None

    async def start(self, on_outcome: list[Any]) -> None:
        on_outcome.append(self.metrics.on_outcome)
        self._server = self.metrics.serve(self.port, self.address)
        self._broker = self.app._new_broker()
        await self._broker.connect()
        self._polling = asyncio.create_task(
            poll_queues(self.metrics, self._broker, self.queues, self.poll_s))
        logger.info("metrics: serving http://%s:%s/metrics", self.address, self.port)

    async def stop(self) -> None:
        await cancel_and_wait(self._polling)
        if self._broker is not None:
            await self._broker.close()
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            thread.join(5)
