"""A result the backend refuses to store (too large, an error) is still a FAILURE the
caller can read at once: the worker's executor against a real SQLite backend whose
connection refuses values over 10 kB (SQLite's own "string or blob too big")."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.backends.base import Meta, ResultBackend, rebuild_exception
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.brokers.memory import MemoryBroker
from celeriac.errors import BackendStoreError
from celeriac.testing import memory_app
from celeriac.worker.acks import Acker
from celeriac.worker.executor import Executor
from celeriac.worker.pools.solo import SoloPool

LIMIT_BYTES = 10_000


def app_with_tasks() -> Celery:
    app = memory_app("refusals")

    @app.task(name="big")
    def big() -> str:
        return "x" * (2 * LIMIT_BYTES)

    @app.task(name="fails_big")
    def fails_big() -> None:
        raise ValueError("x" * (2 * LIMIT_BYTES))

    @app.task(name="errback")
    def errback(task_id: str) -> None: ...

    return app


async def run_once(app: Celery, backend: ResultBackend, name: str) -> tuple[str, list[str]]:
    """Send ``name`` with an errback, run it through the executor; (its id, the names of
    the tasks it sent on)."""
    result = await app.asend_task(name, link_error={"task": "errback", "args": [],
                                                    "kwargs": {}, "options": {}})
    broker = await app.clients.broker()
    assert isinstance(broker, MemoryBroker)
    executor = Executor(app, broker, backend, SoloPool(), Acker(broker), "test@refusals")
    [delivery] = await broker.fetch(["celery"], 10, 0)
    await executor.process(delivery)
    await executor.acker.flush()
    sent = await broker.fetch(["celery"], 10, 0)
    await app.clients.close()
    return result.id, [d.message.task_name or "" for d in sent]


def sqlite_refusing_big_values(tmp_path: Path) -> SQLiteBackend:
    backend = SQLiteBackend(f"sqlite:///{tmp_path}/results.db")
    backend._db().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, LIMIT_BYTES)
    return backend


async def test_a_success_the_backend_refuses_is_a_failure_saying_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = app_with_tasks()
    backend = sqlite_refusing_big_values(tmp_path)
    caplog.set_level(logging.INFO, logger="celeriac.worker")
    task_id, sent = await run_once(app, backend, "big")
    meta = await backend.get(task_id)
    assert meta is not None and meta["status"] == states.FAILURE
    assert meta["result"]["exc_module"] == "celery.exceptions"  # Celery's own type
    exc = rebuild_exception(meta["result"])
    assert isinstance(exc, BackendStoreError)
    assert f"Task big[{task_id}] returned a value the result backend could not store " \
           "(<class 'str'>): DataError: string or blob too big" in str(exc)
    assert sent == ["errback"]  # link_error, once
    assert f"Task big[{task_id}] raised unexpected: BackendStoreError(" in caplog.text
    assert f"Task big[{task_id}] succeeded" not in caplog.text


async def test_a_failure_too_large_to_store_is_replaced_by_a_small_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = app_with_tasks()
    backend = sqlite_refusing_big_values(tmp_path)
    task_id, sent = await run_once(app, backend, "fails_big")
    meta = await backend.get(task_id)
    assert meta is not None and meta["status"] == states.FAILURE
    exc = rebuild_exception(meta["result"])
    assert isinstance(exc, BackendStoreError)
    assert f"could not store the failure of Task fails_big[{task_id}] (builtins.ValueError)" \
           in str(exc)
    assert sent == ["errback"]
    assert f"storing the result of fails_big[{task_id}] failed (DataError: string or blob " \
           "too big); stored a FAILURE saying so instead" in caplog.text


class RefusesEverything(MemoryBackend):
    """A backend that is down for writes: every store raises."""

    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        raise ConnectionError("backend unreachable")

    async def get(self, task_id: str) -> Any:
        return None


async def test_when_even_the_small_failure_cannot_be_stored_an_error_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    app = app_with_tasks()
    backend = RefusesEverything(f"memory://{uuid.uuid4().hex}")
    task_id, sent = await run_once(app, backend, "big")
    assert sent == ["errback"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"Task big[{task_id}] raised unexpected: BackendStoreError(" in errors[0]
    assert errors[1] == (
        f"storing the result of big[{task_id}] failed (ConnectionError: backend "
        "unreachable), and so did storing a small FAILURE in its place (ConnectionError: "
        "backend unreachable): its state stays as it was")
