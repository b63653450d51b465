"""rate_limit on a real worker, on every pool: a token bucket per task type per worker."""

from __future__ import annotations

import asyncio

import pytest

from celeriac.brokers.base import Delivery
from celeriac.protocol import build_task_message
from celeriac.worker.rate_limit import RateLimiter, TokenBucket, parse_rate
from tests.chaos.harness import Scenario, tags, wait_until


@pytest.mark.parametrize(("text", "per_s"), [
    ("10/s", 10.0), ("100/m", 100 / 60), ("1000/h", 1000 / 3600), ("5", 5.0), (2, 2.0),
    (" 3 / M ", 3 / 60), ("10/sec", 10.0), (None, None), ("", None), ("0/s", None)])
def test_parse_rate(text: object, per_s: float | None) -> None:
    assert parse_rate(text) == per_s


@pytest.mark.parametrize("text", ["fast", "10/d", "x/s", "-1/s", True])
def test_parse_rate_refuses_nonsense(text: object) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_bucket_books_one_slot_per_interval() -> None:
    bucket = TokenBucket(10.0)
    waits = [bucket.reserve(100.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert bucket.reserve(101.0) == 0.0  # idle for a second: a token again, not ten


async def test_limiter_holds_without_a_slot_and_hands_back_in_order() -> None:
    back: list[Delivery] = []
    limiter = RateLimiter(lambda name: 20.0 if name == "slow" else None, back.append)
    slow = [Delivery(build_task_message("slow"), "q", i) for i in range(3)]
    fast = Delivery(build_task_message("fast"), "q", 9)
    assert [limiter.admit(d) for d in slow] == [True, False, False]
    assert limiter.admit(fast) and limiter.held == 2
    await asyncio.sleep(0.2)
    assert back == slow[1:] and limiter.held == 0
    assert all(limiter.admit(d) for d in back)  # cleared: no second token
    late = [Delivery(build_task_message("slow"), "q", i) for i in (5, 6)]
    assert [limiter.admit(d) for d in late] == [True, False]
    assert limiter.release_all() == late[1:] and limiter.held == 0


@pytest.mark.parametrize(("pool", "task"), [("solo", "chaos.limited"),
                                            ("threads", "chaos.limited"),
                                            ("asyncio", "chaos.alimited"),
                                            ("prefork", "chaos.limited")])
def test_rate_limit_is_honoured_on_every_pool(sqlite_scenario: Scenario, pool: str,
                                              task: str) -> None:
    s = sqlite_scenario
    # a window (concurrency x prefetch) with room for all 25: held messages count in it
    worker = s.worker("-P", pool, "-c", "4", "--prefetch-multiplier", "30")
    limited = s.publish(tags("rl", 20), task=task)
    free = s.publish(tags("free", 5))  # another task type, sent after them
    s.wait_done(free, timeout_s=30)
    lines = [line.split() for line in s.record.read_text().splitlines()]
    assert sum(1 for line in lines if line[0] == "limited") < 20  # not stuck behind them

    def limited_times() -> list[float]:
        return sorted(float(line[2]) for line in
                      (x.split() for x in s.record.read_text().splitlines())
                      if line[0] == "limited")
    wait_until(lambda: len(limited_times()) >= 20, 30, "20 rate-limited tasks")
    times = limited_times()
    assert len(times) == len(limited) == 20
    assert times[-1] - times[0] >= 1.5  # 10/s with one token at a time: ~1.9 s
    for i in range(len(times) - 12):
        assert times[i + 12] - times[i] >= 1.0, "more than 12 ran within one second"
    assert worker.stop() == 0
