"""A real worker, started through the CLI, on the embedded SQLite broker (and, through
the ``harness`` fixture, the scenarios every broker must pass on Redis too)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time

import pytest

from celeriac.brokers.sqlite.broker import SQLiteBroker, sqlite_path
from celeriac.protocol import build_task_message
from tests.integration.conftest import Harness


@pytest.mark.parametrize("pool", ["prefork", "solo", "threads", "asyncio"])
def test_tasks_run_and_store_results_on_every_pool(sqlite_harness: Harness, pool: str) -> None:
    h = sqlite_harness
    worker = h.worker("-P", pool, "-c", "2")
    client = h.client
    assert "[tasks]" in worker.log and "  . add" in worker.log
    added = client.send_task("add", (2, 3))
    awaited = client.send_task("aadd", (4, 5))
    failed = client.send_task("fail")
    assert added.get(timeout=20) == 5
    assert awaited.get(timeout=20) == 9
    with pytest.raises(ValueError) as info:
        failed.get(timeout=20)
    assert info.value.args == ("bad value", 42)
    assert failed.state == "FAILURE" and "ValueError" in (failed.traceback or "")
    assert worker.stop() == 0
    log = worker.log
    assert f"Task add[{added.id}] received" in log
    assert f"Task add[{added.id}] succeeded in" in log and "s: 5" in log
    assert f"Task fail[{failed.id}] raised unexpected: ValueError('bad value', 42)" in log


def test_retry_with_backoff_goes_through_the_broker(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "threads", "-c", "2")
    started = time.monotonic()
    result = h.client.send_task("flaky", ("t1", 2))
    assert result.get(timeout=30) == {"tag": "t1", "retries": 2}
    elapsed = time.monotonic() - started
    assert elapsed >= 2.9  # 1 s then 2 s: retry_backoff * 2**(n-1)
    assert h.lines("flaky t1") == ["flaky t1 0", "flaky t1 1", "flaky t1 2"]
    worker.stop()
    assert "retry: Retry in 1s: RuntimeError('flaky')" in worker.log
    assert "retry: Retry in 2s: RuntimeError('flaky')" in worker.log


def _raw_publish(url: str, envelope_rows: list[tuple[str, bytes]]) -> None:
    db = sqlite3.connect(sqlite_path(url))
    db.executemany("INSERT INTO messages (queue, priority, available_at, envelope) "
                   "VALUES (?, 0, 0, ?)", envelope_rows)
    db.commit()
    db.close()


def test_bad_input_is_dead_lettered_and_the_worker_goes_on(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "solo")

    async def publish_bad() -> None:
        broker = SQLiteBroker(h.broker_url)
        await broker.publish([
            build_task_message("no.such.task", (1,), task_id="unknown-1"),
            build_task_message("add", (1, 2, 3), task_id="arity-1"),
            build_task_message("add", (1, 2), task_id="pickled-1", serializer="pickle"),
        ])
        await broker.close()

    asyncio.run(publish_bad())
    _raw_publish(h.broker_url, [("celery", b"{this is not json")])
    good = h.client.send_task("add", (1, 1))
    assert good.get(timeout=20) == 2
    listing = h.cli("dlq", "list")
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    assert "4 dead letters." in out
    assert "unregistered task 'no.such.task'" in out
    assert "InvalidTaskArguments" in out and "arity-1" in out
    assert "ContentDisallowed" in out and "pickle" in out
    assert "undecodable envelope" in out
    assert "dead-lettered" in worker.log
    # requeue the arity one after "fixing" nothing: it comes back to the DLQ, not lost
    first_id = next(line.split()[0] for line in out.splitlines() if "arity-1" in line)
    assert "Requeued 1 message." in h.cli("dlq", "requeue", first_id).stdout
    deadline = time.monotonic() + 10
    while "arity-1" not in h.cli("dlq", "list").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "arity-1" in h.cli("dlq", "list").stdout
    assert "Deleted 4 dead letters." in h.cli("dlq", "purge", "-f").stdout
    assert "No dead letters." in h.cli("dlq", "list").stdout
    assert worker.stop() == 0


def test_sigkilled_worker_tasks_run_again_after_the_lease(harness: Harness) -> None:
    h = harness
    first = h.worker("-P", "threads", "-c", "1", ITEST_LEASE_S="2")
    result = h.client.send_task("slow", (1.0, "k1"))
    h.wait_for_record("start k1")
    first.kill()
    assert h.lines("done k1") == []
    second = h.worker("-P", "threads", "-c", "1", ITEST_LEASE_S="2")
    assert result.get(timeout=30) == "k1"
    assert h.lines("start k1") == ["start k1", "start k1"]
    assert h.lines("done k1") == ["done k1"]
    second.stop()


def test_long_task_is_not_redelivered_while_its_worker_lives(harness: Harness) -> None:
    h = harness
    worker = h.worker("-P", "solo", ITEST_LEASE_S="1")
    other = h.worker("-P", "solo", ITEST_LEASE_S="1")
    result = h.client.send_task("slow", (4.0, "long"))
    assert result.get(timeout=30) == "long"
    assert h.lines("start long") == ["start long"]  # a 1 s lease, a 4 s task, one run
    worker.stop()
    other.stop()


def test_warm_shutdown_finishes_running_and_returns_prefetched(harness: Harness) -> None:
    h = harness
    worker = h.worker("-P", "threads", "-c", "1", "--prefetch-multiplier", "4")
    results = [h.client.send_task("slow", (1.5, f"w{i}")) for i in range(3)]
    h.wait_for_record("start w")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0  # one signal: a warm shutdown
    assert "Warm shutdown" in worker.log
    assert len(h.lines("done w")) == 1  # the running one finished
    assert len(h.lines("start w")) == 1  # the prefetched ones did not start
    after = h.worker("-P", "threads", "-c", "2")
    assert sorted(r.get(timeout=30) for r in results) == ["w0", "w1", "w2"]
    assert len(h.lines("start w")) == 3  # nothing ran twice
    after.stop()


def test_cold_shutdown_loses_nothing(harness: Harness) -> None:
    h = harness
    worker = h.worker("-P", "threads", "-c", "1")
    results = [h.client.send_task("slow", (3, f"c{i}")) for i in range(3)]
    h.wait_for_record("start c")
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.signal(signal.SIGTERM)
    worker.stop()
    assert "Cold shutdown" in worker.log
    after = h.worker("-P", "threads", "-c", "3")
    assert sorted(r.get(timeout=30) for r in results) == ["c0", "c1", "c2"]
    after.stop()


def test_prefork_time_limits_and_child_recycling(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "prefork", "-c", "1", "--max-tasks-per-child", "2")
    assert h.client.send_task("soft").get(timeout=20) == "caught"
    hard = h.client.send_task("hard")
    from celeriac import TimeLimitExceeded

    with pytest.raises(TimeLimitExceeded):
        hard.get(timeout=20)
    pids = [h.client.send_task("pid").get(timeout=20) for _ in range(6)]
    assert len(set(pids)) == 3  # a new child every two tasks
    assert worker.stop() == 0
    assert "Hard time limit (1s) exceeded for hard" in worker.log


def test_eventlet_pool_runs_threads_with_a_notice(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "eventlet", "-c", "100")
    assert h.client.send_task("aadd", (1, 2)).get(timeout=20) == 3
    assert h.client.send_task("add", (2, 3)).get(timeout=20) == 5
    worker.stop()
    assert "-P eventlet runs the threads pool" in worker.log
    assert ".> concurrency: 100 (threads, for -P eventlet: OS threads, not greenlets)" \
        in worker.log
