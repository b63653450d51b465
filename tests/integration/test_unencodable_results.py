"""A result the backend cannot encode is a FAILURE the caller learns at once, on every
backend and pool: real workers through the CLI (SQLite, Redis, rpc:// on RabbitMQ) and
the in-process worker on the memory backend.

Each test checks what Celery does: ``get()`` raises EncodeError (not a timeout), the
state is FAILURE, the message names the task and the type, the worker logs "raised
unexpected" and no "succeeded" line, link_error and on_failure run once, and the worker
goes on with the next task.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery, Task
from celeriac.canvas import signature
from celeriac.errors import EncodeError
from celeriac.testing import memory_app, worker_thread
from tests.integration.conftest import Harness, WorkerProcess
from tests.integration.test_amqp_worker import rabbitmqctl
from tests.services import AMQP_HOST, AMQP_PORT, need_rabbitmq

POOLS = ["solo", "prefork"]


def check_fails_at_once(h: Harness, worker: WorkerProcess, task: str = "unencodable",
                        detail: str = "cannot be serialized as json: <class 'object'>"
                        ) -> None:
    result = h.client.send_task(task, link_error=signature("errback", app=h.client))
    with pytest.raises(EncodeError) as raised:  # celeriac's TimeoutError is no EncodeError
        result.get(timeout=20)
    assert f"Task {task}[{result.id}] returned a value that" in str(raised.value)
    assert detail in str(raised.value)
    assert result.state == "FAILURE"
    h.wait_for_record(f"errback {result.id}")
    h.wait_for_record(f"on_failure {result.id}")
    assert h.client.send_task("add", (1, 2)).get(timeout=20) == 3  # the worker goes on
    assert worker.stop() == 0
    assert h.lines(f"errback {result.id}") == [f"errback {result.id}"]
    assert h.lines(f"on_failure {result.id}") == [f"on_failure {result.id} EncodeError"]
    log = worker.log
    assert f"Task {task}[{result.id}] raised unexpected: EncodeError(" in log
    assert f"Task {task}[{result.id}] succeeded" not in log


@pytest.mark.parametrize("pool", POOLS)
def test_sqlite(sqlite_harness: Harness, pool: str) -> None:
    check_fails_at_once(sqlite_harness, sqlite_harness.worker("-P", pool, "-c", "1"))


@pytest.mark.parametrize("pool", POOLS)
def test_redis(redis_harness: Harness, pool: str) -> None:
    check_fails_at_once(redis_harness, redis_harness.worker("-P", pool, "-c", "1"))


@pytest.fixture
def rpc_harness(tmp_path: Path) -> Iterator[Harness]:
    need_rabbitmq()
    vhost = f"celeriac-itest-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    harness = Harness(tmp_path, f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}")
    harness.client.conf.result_backend = "rpc://"
    yield harness
    harness.close()
    rabbitmqctl("delete_vhost", vhost)


@pytest.mark.parametrize("pool", POOLS)
def test_rpc(rpc_harness: Harness, pool: str) -> None:
    worker = rpc_harness.worker("-P", pool, "-c", "1", CELERY_RESULT_BACKEND="rpc://")
    check_fails_at_once(rpc_harness, worker)


def test_prefork_result_that_cannot_leave_the_child(sqlite_harness: Harness) -> None:
    """The classic pool (results cross a pipe): pickle, not JSON, refuses it; the child
    says so and lives on. (Consumer children store results themselves: JSON's error.)"""
    worker = sqlite_harness.worker("-P", "prefork", "--no-consumer-children", "-c", "1")
    check_fails_at_once(sqlite_harness, worker, "unpicklable",
                        "cannot be pickled to leave the pool's child process: "
                        "<class 'function'>")


def test_prefork_result_the_parent_cannot_unpickle(sqlite_harness: Harness) -> None:
    worker = sqlite_harness.worker("-P", "prefork", "--no-consumer-children", "-c", "1")
    check_fails_at_once(sqlite_harness, worker, "unloadable",
                        "cannot be unpickled from the pool's child process: "
                        "RuntimeError: this value does not load")


# -- memory://: the in-process worker (its backend lives in the test's process) ----------


@pytest.mark.parametrize("pool", ["solo", "threads", "asyncio", "prefork"])
def test_memory(pool: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app: Celery = memory_app("unencodable")
    calls = tmp_path / "calls.txt"  # a file: on prefork the errback runs in a child

    def record(line: str) -> None:
        with open(calls, "a") as f:
            f.write(line + "\n")

    class RecordsFailures(Task):
        def on_failure(self, exc: BaseException, task_id: str, *args: object) -> None:
            record(f"on_failure {task_id} {type(exc).__name__}")

    # names of this test's own: a prefork child finds a task by name in every app
    run = uuid.uuid4().hex[:8]

    @app.task(name=f"unencodable-{run}", base=RecordsFailures)
    def unencodable() -> object:
        return object()

    @app.task(name=f"errback-{run}")
    def errback(task_id: str) -> None:
        record(f"errback {task_id}")

    caplog.set_level(logging.INFO, logger="celeriac.worker")
    with worker_thread(app, pool=pool, concurrency=1):
        result = unencodable.apply_async(link_error=errback.s())
        with pytest.raises(EncodeError, match=rf"Task unencodable-{run}\[.*\] returned a value "
                                              r"that cannot be serialized as json: "
                                              r"<class 'object'>"):
            result.get(timeout=20)
        assert result.state == "FAILURE"
        # the errback was sent before this probe: one worker slot runs them in order
        assert errback.delay("probe").get(timeout=20) is None
    assert calls.read_text().splitlines() == [
        f"on_failure {result.id} EncodeError", f"errback {result.id}", "errback probe"]
    log = caplog.text
    assert f"Task unencodable-{run}[{result.id}] raised unexpected: EncodeError(" in log
    assert f"Task unencodable-{run}[{result.id}] succeeded" not in log
