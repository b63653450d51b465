"""The consumer's hand-over between the fetch loop and the runners (``Reserved``), and
the rate limiter's shortcut when no task can be limited."""

from __future__ import annotations

import asyncio

from celeriac.brokers.base import Delivery
from celeriac.protocol import build_task_message
from celeriac.testing import memory_app
from celeriac.worker.consumer import Reserved
from celeriac.worker.rate_limit import RateLimiter


def delivery(n: int) -> Delivery:
    return Delivery(build_task_message("t", (n,)), "celery", n)


async def test_each_item_goes_to_exactly_one_waiting_runner_in_order() -> None:
    reserved = Reserved()
    got: list[tuple[int, int]] = []

    async def runner(i: int) -> None:
        while (item := await reserved.get()) is not None:
            got.append((i, item.tag))
            await asyncio.sleep(0)

    runners = [asyncio.create_task(runner(i)) for i in range(3)]
    await asyncio.sleep(0)  # all three wait
    for n in range(10):
        reserved.put_nowait(delivery(n))
    for _ in runners:
        reserved.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*runners), 2)
    assert sorted(tag for _, tag in got) == list(range(10))
    assert [tag for _, tag in got] == list(range(10))  # handed out in put order
    assert {i for i, _ in got} == {0, 1, 2}  # every waiting runner took a share


async def test_a_cancelled_waiter_does_not_swallow_a_wake_up() -> None:
    reserved = Reserved()
    first = asyncio.create_task(reserved.get())
    second = asyncio.create_task(reserved.get())
    await asyncio.sleep(0)
    reserved.put_nowait(delivery(1))  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    assert (await asyncio.wait_for(second, 1)).tag == 1  # type: ignore[union-attr]
    assert reserved.empty()


def test_rate_limiter_is_skipped_only_when_no_task_has_a_limit() -> None:
    app = memory_app("limits")

    @app.task(name="t.free")
    def free() -> None: ...

    assert RateLimiter.for_app(app, lambda d: None).possible is False

    @app.task(name="t.slow", rate_limit="2/s")
    def slow() -> None: ...

    assert RateLimiter.for_app(app, lambda d: None).possible is True
    app.conf.worker_disable_rate_limits = True
    assert RateLimiter.for_app(app, lambda d: None).possible is False
    app.conf.worker_disable_rate_limits = False
    del app.tasks["t.slow"]
    app.conf.task_default_rate_limit = "10/m"
    assert RateLimiter.for_app(app, lambda d: None).possible is True
