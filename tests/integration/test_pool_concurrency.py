"""``-c`` means what it says on every pool: ``-c 200`` runs 200 blocking tasks at once.

Counted by the tasks themselves in Redis (the most running at once), not by the clock:
each task blocks for 0.5 s and then until all the others have started (at most 15 s),
so a pool that runs fewer at once shows it in the count. The tutorial runs
``-P eventlet -c 1000`` for a blocking SMS SDK: eventlet/gevent get OS threads, and the
banner says so.
"""

from __future__ import annotations

import signal

import pytest
import redis

from tests.integration.conftest import DB_URL, Harness

N = 200
THREADS_NOTE = "OS threads, not greenlets"


def _send(h: Harness, task: str, key: str, n: int, expected: int) -> list[str]:
    return [h.client.send_task(task, (key, expected)).id for _ in range(n)]


def _runs(h: Harness) -> dict[str, int]:
    """task id -> most seen at once, for each recorded run (a second run of an id fails)."""
    runs: dict[str, int] = {}
    for line in h.lines("overlap "):
        _, task_id, seen = line.split()
        assert task_id not in runs, f"{task_id} ran twice"
        runs[task_id] = int(seen)
    return runs


def _most(h: Harness, key: str) -> int:
    raw = redis.Redis.from_url(DB_URL)
    try:
        return int(raw.get(f"{h.prefix}{key}:most") or 0)
    finally:
        raw.close()


@pytest.mark.parametrize(("pool", "task", "label"), [
    ("threads", "overlap", "threads"),
    ("eventlet", "overlap", f"threads, for -P eventlet: {THREADS_NOTE}"),
    ("gevent", "overlap", f"threads, for -P gevent: {THREADS_NOTE}"),
    ("asyncio", "aoverlap", "asyncio"),
    ("asyncio", "overlap", "asyncio"),  # sync tasks on the asyncio pool get -c threads
])
def test_c_blocking_tasks_run_at_once(redis_harness: Harness, pool: str, task: str,
                                      label: str) -> None:
    h = redis_harness
    worker = h.worker("-P", pool, "-c", str(N))
    assert f".> concurrency: {N} ({label})" in worker.log
    if pool in ("eventlet", "gevent"):
        assert f"-P {pool} runs the threads pool" in worker.log
    ids = _send(h, task, "overlap", N, N)
    h.wait_for_record("overlap ", N, timeout_s=90)
    runs = _runs(h)
    assert set(runs) == set(ids)
    assert _most(h, "overlap") == N
    assert min(runs.values()) == N  # every task saw all N running together
    assert worker.stop() == 0


def test_warm_shutdown_with_c_tasks_running(redis_harness: Harness) -> None:
    """SIGTERM with 200 blocking tasks running: they finish and are acked, the prefetched
    rest go back and the next worker runs them; every task runs exactly once."""
    h = redis_harness
    worker = h.worker("-P", "threads", "-c", str(N))
    ids = _send(h, "overlap", "warm", N + 100, N)
    raw = redis.Redis.from_url(DB_URL)
    try:
        deadline_s = 60.0
        import time

        end = time.monotonic() + deadline_s
        while int(raw.get(f"{h.prefix}warm:now") or 0) < N:
            assert time.monotonic() < end, "the 200 tasks did not all start"
            time.sleep(0.02)
    finally:
        raw.close()
    worker.signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    first = _runs(h)
    assert len(first) == N  # the running ones finished; none of the rest started
    assert "Warm shutdown" in worker.log
    second = h.worker("-P", "threads", "-c", str(N))
    h.wait_for_record("overlap ", N + 100, timeout_s=60)
    assert set(_runs(h)) == set(ids)
    assert second.stop() == 0
