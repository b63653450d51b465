"""The prefork worker whose children consume themselves (worker/pools/consumer_children.py),
started through the CLI on real Redis and RabbitMQ: what the parent still does for them
(remote control, the running task on the board, dead children, hard limits) and what
a dead child's tasks come to."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from celeriac import group, signature
from celeriac.result import AsyncResult
from tests.integration.conftest import Harness, WorkerProcess
from tests.integration.test_amqp_worker import vhost  # noqa: F401 (a fixture)
from tests.services import AMQP_HOST, AMQP_PORT


@pytest.fixture
def amqp_harness(tmp_path: Path, vhost: str) -> Iterator[Harness]:  # noqa: F811
    harness = Harness(tmp_path, f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}")
    yield harness
    harness.close()


@pytest.fixture(params=["redis", "amqp"])
def broker_harness(request: pytest.FixtureRequest) -> Harness:
    found: Harness = request.getfixturevalue(f"{request.param}_harness")
    return found


def wait_until(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s}s"
        time.sleep(0.05)


def children(worker: WorkerProcess) -> list[int]:
    return sorted(c.pid for c in psutil.Process(worker.proc.pid).children())


def active_entry(h: Harness, task_id: str) -> dict[str, Any]:
    """The task's entry in ``inspect active`` (the parent reads it off the board)."""
    for _ in range(40):
        replies = h.client.control.inspect(timeout=1.0).active() or {}
        for entries in replies.values():
            for entry in entries:
                if entry["id"] == task_id:
                    return dict(entry)
        time.sleep(0.1)
    raise AssertionError(f"{task_id} not in inspect active")


def running_in(h: Harness, task_id: str) -> int:
    """The pid ``inspect active`` gives for the task."""
    return int(active_entry(h, task_id)["worker_pid"])


def test_children_consume_and_the_parent_answers_for_them(broker_harness: Harness) -> None:
    h = broker_harness
    worker = h.worker("--consumer-children", "-c", "2")
    assert "2 (prefork, children consume)" in worker.log
    pids = children(worker)
    assert len(pids) == 2
    for i in range(20):
        h.client.send_task("add", (i, 0))
    h.wait_for_record("add", 20)
    for i in range(10):  # "slow" measured short in each child: no give-back before it
        h.client.send_task("slow", (0.001, f"warm{i}"))
    h.wait_for_record("done warm", 10)

    def added() -> int:  # the children write their totals on the board once a second
        replies = h.client.control.inspect(timeout=1.0).stats() or {}
        return sum(s["total"].get("add", 0) for s in replies.values())

    wait_until(lambda: added() == 20, 5, "inspect stats counts the children's tasks")
    # one publish: a child fetches them together; the first runs 30 s, longer than it
    # was measured, so the others wait in that child: prefetched, not running
    tasks = [signature("slow", (30, "long"), app=h.client)] + [
        signature("slow", (0.001, f"queued{i}"), app=h.client) for i in range(3)]
    grouped = group(tasks).apply_async()
    long, queued = grouped.results[0], [r.id for r in grouped.results[1:]]
    h.wait_for_record("start long")
    entry = active_entry(h, long.id)
    assert entry["worker_pid"] in pids  # a child runs it, the parent knows which
    assert (entry["args"], entry["kwargs"]) == ("(30, 'long')", "{}")  # the reprs

    def reserved_ids() -> set[str]:
        replies = h.client.control.inspect(timeout=1.0).reserved() or {}
        return {e["id"] for entries in replies.values() for e in entries}

    wait_until(lambda: reserved_ids() & set(queued), 10, "inspect reserved lists them")
    assert long.id not in reserved_ids()
    stats = h.client.control.inspect(timeout=2.0).stats() or {}
    assert [s["pool"]["processes"] for s in stats.values()] == [pids]

    # the children log their own lines, as ForkPoolWorker-N (Celery's children's name)
    assert "INFO/ForkPoolWorker-" in worker.log and "] Task add[" in worker.log
    assert "INFO/MainProcess] celeriac@" in worker.log  # the parent's "ready." line
    worker.signal(signal.SIGINT)  # a warm shutdown would wait for the long task
    worker.wait_for_log("Warm shutdown")
    worker.signal(signal.SIGINT)  # cold: the children give it back
    assert worker.wait(20) in (0, 1)
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie"
               for p in pids)


def test_a_task_whose_child_dies_runs_again_once_then_fails_as_worker_lost(
        broker_harness: Harness) -> None:
    """task_reject_on_worker_lost (celeriac's default): a second run, then WorkerLostError."""
    h = broker_harness
    worker = h.worker("--consumer-children", "-c", "2")
    victim = h.client.send_task("slow", (30, "victim"))
    for run in (1, 2):
        h.wait_for_record("start victim", run)
        pid = running_in(h, victim.id)
        if run == 1:
            for i in range(10):  # prefetched behind it or beside it: they all run once
                h.client.send_task("add", (i, 100))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda r=run: worker.log.count(  # type: ignore[misc]
            f"while running slow[{victim.id}]") == r, 10, f"death {run} seen")
    assert "lost its worker process (its child died); running it again" in worker.log
    wait_until(lambda: "raised unexpected: WorkerLostError" in worker.log, 15,
               "the lost task recorded as failed")  # Redis: not after the 60 s lease
    h.wait_for_record("add", 10)
    assert len(h.lines("start victim")) == 2 and not h.lines("done victim")
    assert sorted(h.lines("add")) == sorted(f"add {i} 100" for i in range(10))
    assert f"exited with 'signal 9 (SIGKILL)' while running slow[{victim.id}]" in worker.log
    wait_until(lambda: len(children(worker)) == 2 and pid not in children(worker), 10,
               "a new child")
    assert worker.stop() == 0


def test_terminate_kills_the_child_running_the_task(redis_harness: Harness) -> None:
    h = redis_harness
    worker = h.worker("--consumer-children", "-c", "2")
    doomed = h.client.send_task("slow", (30, "doomed"))
    h.wait_for_record("start doomed")
    pid = running_in(h, doomed.id)
    doomed.revoke(terminate=True, signal="SIGKILL")
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
               10, "the child killed")
    assert AsyncResult(doomed.id, app=h.client).state == "REVOKED"
    # its redelivered copy is recorded as terminated (task-revoked, terminated=True),
    # neither run again nor merely discarded as revoked
    wait_until(lambda: f"Task slow[{doomed.id}] terminated (revoked)" in worker.log, 10,
               "the copy recorded as terminated")
    assert "running it again" not in worker.log
    assert h.client.send_task("add", (1, 2)).get(timeout=20) == 3  # the worker goes on
    time.sleep(0.5)  # the redelivered copy (if any) would be refused: revoked
    assert len(h.lines("start doomed")) == 1
    assert AsyncResult(doomed.id, app=h.client).state == "REVOKED"
    assert worker.stop() == 0


def test_a_child_stuck_past_its_hard_limit_is_killed(redis_harness: Harness) -> None:
    h = redis_harness
    worker = h.worker("--consumer-children", "-c", "2")
    stuck = h.client.send_task("stuck", (30, "stuck"))
    h.wait_for_record("start stuck")
    with pytest.raises(Exception) as raised:
        stuck.get(timeout=15)  # hard limit 1 s, killed 1 s later
    assert type(raised.value).__name__ == "TimeLimitExceeded"
    assert "Hard time limit (1s) exceeded for stuck" in worker.log
    assert len(h.lines("start stuck")) == 1
    assert h.client.send_task("add", (2, 2)).get(timeout=20) == 4
    assert worker.stop() == 0


def test_remote_control_reaches_the_children(redis_harness: Harness) -> None:
    h = redis_harness
    worker = h.worker("--consumer-children", "-c", "2", "-Q", "celery")
    queue = f"extra-{uuid.uuid4().hex[:6]}"
    replies = h.client.control.add_consumer(queue, reply=True, timeout=2.0)
    assert len(replies) == 1  # one node answers: the parent, not each child
    assert h.client.send_task("add", (5, 5), queue=queue).get(timeout=20) == 10
    assert worker.stop() == 0


def test_children_die_with_their_parent(redis_harness: Harness) -> None:
    """PR_SET_PDEATHSIG: a child busy with a 30 s task is not left running unsupervised."""
    h = redis_harness
    worker = h.worker("--consumer-children", "-c", "2")
    pids = children(worker)
    h.client.send_task("slow", (30, "orphan"))
    h.wait_for_record("start orphan")
    worker.kill()
    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status()
                               != "zombie" for p in pids), 5, "the children gone")
    assert not h.lines("done orphan")


def test_a_long_task_does_not_hold_the_short_ones_a_child_prefetched(
        broker_harness: Harness) -> None:
    """After no-op tasks a child's window is deep; before a task it has not measured, or
    one expected to take 50 ms or more, it gives back what it prefetched (and lowers
    RabbitMQ's prefetch), so the other child runs the short ones meanwhile."""
    h = broker_harness
    worker = h.worker("--consumer-children", "-c", "2")
    for i in range(150):
        h.client.send_task("add", (i, 1))
    h.client.send_task("slow", (4, "long"))
    for i in range(8):
        h.client.send_task("slow", (0.1, f"short{i}"))
    h.wait_for_record("done long", timeout_s=30)
    h.wait_for_record("done short", 8, timeout_s=30)
    order = [line for line in h.lines("done ")]
    assert order.index("done long") == len(order) - 1, order  # every short one before
    assert len(h.lines("add")) == 150
    assert worker.stop() == 0
