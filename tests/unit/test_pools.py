"""Pool names: what -P eventlet/gevent get, and -c threads on the threads and asyncio pools."""

from __future__ import annotations

import threading

import pytest

from celeriac.errors import ConfigurationError
from celeriac.worker.pools import create_pool, resolve_pool_name
from celeriac.worker.pools.threads import ThreadPool


@pytest.mark.parametrize("green", ["eventlet", "gevent", "EVENTLET"])
def test_green_pools_run_threads_and_say_why(green: str) -> None:
    name, notice = resolve_pool_name(green)
    assert name == "threads"
    assert notice is not None
    assert f"-P {green.lower()} runs the threads pool" in notice
    assert "monkey-patching" in notice


def test_the_banner_names_the_implementation_an_alias_got() -> None:
    assert create_pool("threads", 1000, requested="eventlet").describe() == \
        "1000 (threads, for -P eventlet: OS threads, not greenlets)"
    assert create_pool("threads", 8, requested="threads").describe() == "8 (threads)"
    assert create_pool("asyncio", 8).describe() == "8 (asyncio)"


@pytest.mark.parametrize("pool", ["threads", "asyncio"])
def test_sync_tasks_get_c_threads_started_as_needed(pool: str) -> None:
    before = threading.active_count()
    made = create_pool(pool, 1000)
    assert isinstance(made, ThreadPool)
    assert made._executor._max_workers == 1000  # not capped (the asyncio pool had 64)
    assert threading.active_count() == before  # none started before a task needs one
    made.terminate()


def test_unknown_pool_names_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        resolve_pool_name("greenlets")


def test_solo_runs_one_task_at_a_time_while_taking_several_deliveries() -> None:
    """The solo pool is handed several deliveries at once (their stores and acks go out
    together), but runs one task at a time, in order: ``async def`` tasks too."""
    import asyncio
    import itertools
    import time

    from celeriac.testing import memory_app, worker_thread

    app = memory_app()
    spans: list[tuple[int, float, float]] = []

    @app.task(name="t.nap")
    async def nap(i: int) -> int:
        began = time.monotonic()
        await asyncio.sleep(0.02)
        spans.append((i, began, time.monotonic()))
        return i

    @app.task(name="t.echo")
    def echo(i: int) -> int:
        return i

    with worker_thread(app, pool="solo", concurrency=1, prefetch_multiplier=16):
        naps = [nap.delay(i) for i in range(8)]
        echoes = [echo.delay(i) for i in range(40)]
        assert [r.get(timeout=20) for r in naps] == list(range(8))
        assert [r.get(timeout=20) for r in echoes] == list(range(40))
    assert [i for i, _, _ in spans] == list(range(8))  # in order
    for (_, _, ended), (_, began, _) in itertools.pairwise(spans):
        assert began >= ended  # never two at once
