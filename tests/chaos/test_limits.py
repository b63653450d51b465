"""Time limits on the pools the integration tests do not cover (prefork is covered by
tests/integration/test_worker_sqlite.py, with max_tasks/max_memory recycling): soft
limits raise SoftTimeLimitExceeded in the task, hard limits end it as TimeLimitExceeded
and the worker goes on; and recycling children under load loses nothing."""

from __future__ import annotations

import pytest

from tests.chaos.harness import Scenario, tags, wait_until


@pytest.mark.parametrize("pool", ["solo", "threads", "asyncio"])
def test_soft_and_hard_time_limits(sqlite_scenario: Scenario, pool: str) -> None:
    s = sqlite_scenario
    worker = s.worker("-P", pool, "-c", "2")
    s.publish(["s1"], task="chaos.soft")
    s.publish(["a1"], task="chaos.asoft")
    s.publish(["h1"], task="chaos.hard")
    s.publish(["h2"], task="chaos.ahard")
    wait_until(lambda: "soft-caught s1" in s.record.read_text(), 10, "the soft limit")
    wait_until(lambda: worker.log.count("TimeLimitExceeded") >= 2, 15, "two hard limits")
    after = s.publish(tags("after", 3))
    s.wait_done(after, timeout_s=15)  # the worker went on
    log = worker.log
    assert "chaos.asoft" in log and "SoftTimeLimitExceeded" in log
    assert "Task chaos.hard[" in log and "Task chaos.ahard[" in log
    assert "hard-finished" not in s.record.read_text()
    assert worker.stop() == 0


def test_recycling_children_under_load_loses_nothing(sqlite_scenario: Scenario) -> None:
    s = sqlite_scenario
    worker = s.worker("-P", "prefork", "-c", "2", "--max-tasks-per-child", "7",
                      "--prefetch-multiplier", "20")
    sent = s.publish(tags("recycle", 200))
    s.wait_done(sent, timeout_s=60)
    row = s.tally("prefork recycling every 7 tasks", sent)
    assert row.lost == 0 and row.duplicates == 0
    pids = {line.split()[2] for line in s.record.read_text().splitlines()}
    assert len(pids) >= 200 // 7  # children really were replaced
    assert worker.stop() == 0
