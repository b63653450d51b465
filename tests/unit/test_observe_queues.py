"""observe.queues and observe.metrics on the memory broker: ready depth per queue, dead
letters per queue, the gauges set from them, and outcomes counted by state."""

from __future__ import annotations

import pytest

from celeriac.brokers.base import Delivery
from celeriac.observe.queues import queue_stats
from celeriac.testing import memory_app


async def test_queue_stats_counts_ready_and_dead_letters_per_queue() -> None:
    app = memory_app("observe")
    broker = await app.clients.broker()
    for queue, n in (("a", 3), ("b", 1)):
        for i in range(n):
            message, _ = app._build_message("t", (i,), None, None, {"queue": queue})
            await broker.publish([message])
    [delivery] = await broker.fetch(["b"], 1, 0.1)
    assert isinstance(delivery, Delivery)
    await broker.dead_letter(delivery, "test")
    stats = await queue_stats(broker, ["a", "b", "idle"])
    assert {q: (s.ready, s.dead_letters) for q, s in stats.queues.items()} == {
        "a": (3, 0), "b": (0, 1), "idle": (0, 0)}
    assert stats.dead_letters == 1 and stats.delayed is None

    prometheus = pytest.importorskip("prometheus_client")
    from celeriac.observe.metrics import Metrics

    metrics = Metrics()
    metrics.set_broker_stats(stats)
    metrics.on_outcome("t", "SUCCESS", 0.02)
    metrics.on_outcome("t", "FAILURE", 0.5)
    metrics.on_outcome("t", "REVOKED", None)
    text = prometheus.generate_latest(metrics.registry).decode()
    assert 'celeriac_queue_length{queue="a"} 3.0' in text
    assert 'celeriac_dead_letters{queue="b"} 1.0' in text
    assert 'celeriac_tasks_total{state="REVOKED",task="t"} 1.0' in text
    assert 'celeriac_task_runtime_seconds_count{task="t"} 2.0' in text
    await app.clients.close()
