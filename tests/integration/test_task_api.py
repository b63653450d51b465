"""Celery's task API through a real worker (CLI, SQLite broker): class-based tasks and
their hooks (in the process that ran the task: a prefork child), update_state progress,
Reject and Ignore, task_track_started, result_extended, self.request, task loggers."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import Harness

POOLS = ["prefork", "solo", "threads"]


def _hooks(h: Harness, task_id: str) -> list[list[str]]:
    return [line.split()[1:] for line in h.lines("hook ") if f" {task_id} " in line]


@pytest.mark.parametrize("pool", POOLS)
def test_hooks_run_once_where_the_task_ran(sqlite_harness: Harness, pool: str) -> None:
    h = sqlite_harness
    worker = h.worker("-P", pool, "-c", "1")
    ok = h.client.send_task("hooked", ("ok",))
    task_pid = ok.get(timeout=20)
    failed = h.client.send_task("hooked", ("fail",))
    with pytest.raises(KeyError):
        failed.get(timeout=20)
    retried = h.client.send_task("hooked", ("retry",))
    assert retried.get(timeout=20) == task_pid
    worker.stop()
    pid = str(task_pid)
    assert _hooks(h, ok.id) == [
        ["before_start", ok.id, pid], ["run", ok.id, pid],
        ["on_success", ok.id, pid, pid], ["after_return", ok.id, pid, "SUCCESS"]]
    assert _hooks(h, failed.id) == [
        ["before_start", failed.id, pid], ["run", failed.id, pid],
        ["on_failure", failed.id, pid, "KeyError", "True"],
        ["after_return", failed.id, pid, "FAILURE"]]
    assert _hooks(h, retried.id) == [
        ["before_start", retried.id, pid], ["run", retried.id, pid],
        ["on_retry", retried.id, pid, "RuntimeError"],
        ["before_start", retried.id, pid], ["run", retried.id, pid],
        ["on_success", retried.id, pid, pid], ["after_return", retried.id, pid, "SUCCESS"]]
    worker_pid = str(worker.proc.pid)
    assert (pid != worker_pid) == (pool == "prefork")  # prefork: in the child


def test_class_based_task_and_task_logger(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "prefork", "-c", "1")
    result = h.client.send_task("multiply", (6, 7))
    assert result.get(timeout=20) == 42
    worker.stop()
    assert "  . multiply" in worker.log
    # worker_task_log_format: the task's name and id on the line
    assert f"multiply[{result.id}]: multiplying 6 by 7" in worker.log


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_update_state_progress_is_visible(sqlite_harness: Harness, pool: str) -> None:
    h = sqlite_harness
    worker = h.worker("-P", pool, "-c", "1")
    flag = h.tmp_path / "go"
    result = h.client.send_task("progress", (str(flag),))
    deadline = time.monotonic() + 20
    while result.state != "PROGRESS":
        assert time.monotonic() < deadline, result.state
        time.sleep(0.05)
    assert result.info["done"] == 1
    flag.touch()
    assert result.get(timeout=20) == "finished"
    assert result.state == "SUCCESS"
    worker.stop()


def test_reject_requeue_runs_again_and_reject_dead_letters(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "solo")
    again = h.client.send_task("rejecting", ("a", True))
    assert again.get(timeout=20) == "a"  # the second run, after the requeue
    assert h.lines("rejecting a") == ["rejecting a", "rejecting a"]
    dropped = h.client.send_task("rejecting", ("b", False))
    h.wait_for_record("rejecting b")
    assert h.client.send_task("add", (1, 1)).get(timeout=20) == 2
    assert dropped.state == "PENDING"  # no state stored
    worker.stop()
    assert h.lines("rejecting b") == ["rejecting b"]
    listed = h.cli("dlq", "list")
    assert dropped.id in listed.stdout and "rejected: not now: b" in listed.stdout


def test_ignore_stores_nothing_and_acks(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "solo")
    ignored = h.client.send_task("ignoring", ("x",))
    h.wait_for_record("ignoring x")
    assert h.client.send_task("add", (1, 2)).get(timeout=20) == 3
    assert ignored.state == "PENDING"
    worker.stop()
    again = h.worker("-P", "solo")  # acked: a new worker does not run it again
    assert h.client.send_task("add", (2, 2)).get(timeout=20) == 4
    again.stop()
    assert h.lines("ignoring x") == ["ignoring x"]
    assert h.cli("dlq", "list").stdout.count(ignored.id) == 0


def test_track_started_and_result_extended(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "threads", "-c", "2", "-n", "w1@%h",
                      CELERIAC_TASK_TRACK_STARTED="1", CELERIAC_RESULT_EXTENDED="1")
    slow = h.client.send_task("slow", (1.5, "s1"))
    h.wait_for_record("start s1")
    assert slow.state == "STARTED"
    assert slow.get(timeout=20) == "s1"
    done = h.client.send_task("add", (2, 3), kwargs=None)
    assert done.get(timeout=20) == 5
    assert done.name == "add" and done.args == [2, 3] and done.kwargs == {}
    assert done.worker.startswith("w1@") and done.queue == "celery"
    worker.stop()


def test_request_has_celerys_fields(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "prefork", "-c", "1")
    result = h.client.send_task("request_fields", time_limit=30, soft_time_limit=20)
    got = result.get(timeout=20)
    worker.stop()
    assert got["correlation_id"] == result.id == got["id"]
    assert got["timelimit"] == [30, 20]
    assert got["delivery_info"]["routing_key"] == "celery"
    assert "exchange" in got["delivery_info"]
    assert got["origin"]  # the client's "gen<pid>@host"
    assert got["hostname"].startswith("celeriac@")
    for key in ("reply_to", "group", "chord", "callbacks", "errbacks"):
        assert key in got


@pytest.mark.parametrize("hijack", ["true", "false"])
def test_worker_hijack_root_logger(sqlite_harness: Harness, hijack: str) -> None:
    """Off: the logging the application set up stays (task loggers write through its
    handlers); on (Celery's default): the worker's format replaces it."""
    h = sqlite_harness
    worker = h.worker("-P", "solo", ITEST_OWN_LOGGING="1",
                      CELERIAC_WORKER_HIJACK_ROOT_LOGGER=hijack)
    result = h.client.send_task("multiply", (2, 5))
    assert result.get(timeout=20) == 10
    worker.stop()
    own = f"OWN celeriac.worker Task multiply[{result.id}] received"
    assert (own in worker.log) == (hijack == "false")
    assert (f"INFO/MainProcess] Task multiply[{result.id}] received" in worker.log) == \
        (hijack == "true")
    assert f"multiply[{result.id}]: multiplying 2 by 5" in worker.log
