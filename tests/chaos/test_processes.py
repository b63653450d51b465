"""Process faults under load: SIGKILL a worker, SIGKILL prefork children, warm shutdown.

Each test runs on every broker (``scenario`` fixture: sqlite, redis, and rabbitmq once
it exists) with hundreds of tasks in flight when the fault lands, then counts every
task in the record file: all sent tasks finished, none lost; duplicates are reported
(at-least-once allows them after a kill) and must be zero where nothing was killed.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.chaos.harness import Scenario, tags, wait_until

LEASE = {"CHAOS_LEASE_S": "2"}


def test_sigkill_worker_with_hundreds_in_flight(scenario: Scenario) -> None:
    s = scenario
    first = s.worker("-P", "threads", "-c", "8", "--prefetch-multiplier", "50", **LEASE)
    sent = s.publish(tags("kill", 400), seconds=0.02)
    wait_until(lambda: sum(s.done().values()) >= 40, 30, "40 tasks to finish first")
    first.kill()  # SIGKILL: hundreds prefetched and 8 running, nothing acked for them
    finished_before = set(s.done())
    assert len(finished_before) < 400, "the fault came too late to prove anything"
    s.worker("-P", "threads", "-c", "8", **LEASE)
    s.wait_done(sent, timeout_s=60)
    row = s.tally("SIGKILL worker, 400 in flight", sent)
    assert row.lost == 0 and row.completed == 400
    assert row.duplicates <= 40  # only tasks that ran but whose ack never left


def test_sigkill_prefork_children_mid_stream(scenario: Scenario) -> None:
    """The default prefork pool: each child consumes for itself (consumer children)."""
    _kill_children_mid_stream(scenario, "SIGKILL prefork child x2",
                              # per kill: the task whose end its slot had not yet shown,
                              # and one whose ack was still on its way (it ran while the
                              # next task's result was being stored)
                              max_duplicates=4)


def test_sigkill_classic_prefork_children_mid_stream(sqlite_scenario: Scenario) -> None:
    """--no-consumer-children: the parent holds every delivery and acks for them."""
    _kill_children_mid_stream(sqlite_scenario, "SIGKILL classic prefork child x2",
                              "--no-consumer-children", max_duplicates=2)


def _kill_children_mid_stream(s: Scenario, label: str, *extra: str,
                              max_duplicates: int) -> None:
    worker = s.worker("-P", "prefork", "-c", "2", "--prefetch-multiplier", "50", *extra,
                      **LEASE)
    sent = s.publish(tags("child", 300), seconds=0.02)
    killed = []
    # far apart: a task that loses its child twice is failed, not retried forever (as
    # the first kill's task is requeued behind the prefetched ones, 170 runs later is safe)
    for threshold in (30, 200):
        wait_until(lambda t=threshold: sum(s.done().values()) >= t, 30,  # type: ignore[misc]
                   f"{threshold} tasks to finish")
        pid = worker.child_pids()[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    s.wait_done(sent, timeout_s=60)
    row = s.tally(label, sent)
    assert row.lost == 0 and row.completed == 300
    assert row.duplicates <= max_duplicates
    assert worker.proc.poll() is None  # the worker itself went on
    assert not set(killed) & set(worker.child_pids())  # replaced by new children
    assert worker.stop() == 0
    assert "lost its worker process" in worker.log


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_warm_shutdown_under_load_returns_prefetched_work(scenario: Scenario, pool: str
                                                          ) -> None:
    s = scenario
    first = s.worker("-P", pool, "-c", "4" if pool == "threads" else "2",
                     "--prefetch-multiplier", "25")
    sent = s.publish(tags("warm", 300), seconds=0.05)
    wait_until(lambda: sum(s.done().values()) >= 20, 30, "20 tasks to finish first")
    first.proc.send_signal(signal.SIGTERM)  # once: a second signal means cold shutdown
    assert first.proc.wait(60) == 0
    assert "Warm shutdown" in first.log
    assert len(s.done()) < 300, "the shutdown came too late to prove anything"
    s.worker("-P", "threads", "-c", "4")
    s.wait_done(sent, timeout_s=60)
    row = s.tally(f"warm shutdown, 300 queued ({pool})", sent)
    assert row.lost == 0 and row.completed == 300
    assert row.duplicates == 0  # running tasks finished and were acked; the rest returned
