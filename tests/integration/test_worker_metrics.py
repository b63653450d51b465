"""A real prefork worker's --metrics-port, scraped: every outcome counted once in the
main process (SUCCESS, FAILURE, RETRY, REVOKED), run times in the histogram, the queue
and dead-letter gauges read from the broker."""

from __future__ import annotations

import datetime as dt
import socket
import time
import urllib.request

import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Harness


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _wait(port: int, key: tuple[str, tuple[tuple[str, str], ...]], value: float,
          timeout_s: float = 20) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(port)
        if samples.get(key) == value:
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} != {value}: {samples.get(key)}")
        time.sleep(0.1)


def test_prefork_worker_metrics_scraped(redis_harness: Harness) -> None:
    port = _free_port()
    worker = redis_harness.worker("-P", "prefork", "-c", "2", "--metrics-port", str(port),
                                  CELERIAC_WORKER_METRICS_INTERVAL="0.2")
    client = redis_harness.client
    adds = [client.send_task("add", (i, i)) for i in range(5)]
    assert [r.get(timeout=20) for r in adds] == [0, 2, 4, 6, 8]
    fails = [client.send_task("fail") for _ in range(2)]
    for result in fails:
        with pytest.raises(Exception):  # noqa: B017 - the task's own error type
            result.get(timeout=20)
    flaky = client.send_task("flaky", ("m", 1))
    assert flaky.get(timeout=30)
    expired = client.send_task("add", (1, 1), expires=dt.datetime.now(dt.UTC)
                               - dt.timedelta(seconds=5))
    client.send_task("no.such.task")  # dead-lettered on the default queue
    task = lambda name, state: ("celeriac_tasks_total",  # noqa: E731
                                (("state", state), ("task", name)))
    samples = _wait(port, ("celeriac_dead_letters", (("queue", "celery"),)), 1.0)
    samples = _wait(port, task("add", "REVOKED"), 1.0)
    assert expired.state == "REVOKED"
    assert samples[task("add", "SUCCESS")] == 5
    assert samples[task("fail", "FAILURE")] == 2
    assert samples[task("flaky", "RETRY")] == 1
    assert samples[task("flaky", "SUCCESS")] == 1
    assert samples[("celeriac_task_runtime_seconds_count", (("task", "add"),))] == 5
    assert samples[("celeriac_task_runtime_seconds_count", (("task", "flaky"),))] == 2
    assert samples[("celeriac_task_runtime_seconds_sum", (("task", "add"),))] > 0
    assert samples[("celeriac_queue_length", (("queue", "celery"),))] == 0
    assert samples[("celeriac_workers", ())] == 1
    assert not any(name == "celeriac_tasks_total" and dict(labels)["task"] == "no.such.task"
                   for name, labels in samples)
    worker.stop()
