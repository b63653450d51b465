"""Sync result waits on a real Redis, in the caller's thread (backends/redis/wait.py)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celeriac import Celery, states
from celeriac.backends.base import BlockingWaitUnsupported, encode_meta, make_meta
from celeriac.backends.redis import RedisBackend
from celeriac.backends.redis.wait import KEEP_IDLE
from celeriac.errors import BrokerConnectionError
from tests.services import REDIS_HOST, REDIS_PORT, need_redis

DB = 10
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    need_redis()
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB)
    yield client
    client.close()


@pytest.fixture
def backend(raw: redis.Redis) -> Iterator[RedisBackend]:
    prefix = f"celeriac-test-{uuid.uuid4().hex[:12]}:"
    backend = RedisBackend(URL, {"global_keyprefix": prefix})
    yield backend
    backend.close_blocking()
    keys = list(raw.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        raw.delete(*keys)


def store(raw: redis.Redis, backend: RedisBackend, task_id: str, status: str,
          result: Any) -> None:
    """What a worker does: SET the key, PUBLISH the same bytes on its channel."""
    payload = encode_meta(make_meta(task_id, status, result))
    raw.set(backend.key(task_id), payload, ex=60)
    raw.publish(backend.key(task_id), payload)


def later(seconds: float, *steps: tuple[str, Any], raw: redis.Redis, backend: RedisBackend,
          task_id: str) -> threading.Thread:
    def run() -> None:
        for status, result in steps:
            time.sleep(seconds)
            store(raw, backend, task_id, status, result)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_result_stored_before_the_wait_is_read(raw: redis.Redis,
                                               backend: RedisBackend) -> None:
    task_id = str(uuid.uuid4())
    store(raw, backend, task_id, states.SUCCESS, 4)
    meta = backend.wait_blocking(task_id, 2.0)
    assert meta is not None and meta["result"] == 4 and meta["task_id"] == task_id


def test_later_result_is_pushed_and_progress_is_not_returned(
        raw: redis.Redis, backend: RedisBackend) -> None:
    task_id = str(uuid.uuid4())
    worker = later(0.2, (states.STARTED, None), ("PROGRESS", {"done": 1}),
                   (states.FAILURE, {"exc_type": "ValueError", "exc_message": ["x"],
                                     "exc_module": "builtins"}),
                   raw=raw, backend=backend, task_id=task_id)
    began = time.monotonic()
    meta = backend.wait_blocking(task_id, 5.0)
    worker.join()
    assert meta is not None and meta["status"] == states.FAILURE
    assert time.monotonic() - began >= 0.5  # woken by the push, not before it


def test_timeout_returns_none_and_the_connection_serves_the_next_wait(
        raw: redis.Redis, backend: RedisBackend) -> None:
    silent, other = str(uuid.uuid4()), str(uuid.uuid4())
    began = time.monotonic()
    assert backend.wait_blocking(silent, 0.3) is None
    assert 0.3 <= time.monotonic() - began < 2.0
    # the reused connection still holds the unread UNSUBSCRIBE confirmation: skipped
    store(raw, backend, silent, states.SUCCESS, "late")
    worker = later(0.1, (states.SUCCESS, "mine"), raw=raw, backend=backend,
                   task_id=other)
    meta = backend.wait_blocking(other, 5.0)
    worker.join()
    assert meta is not None and meta["result"] == "mine"


def test_threads_wait_at_once_each_for_its_own(raw: redis.Redis,
                                               backend: RedisBackend) -> None:
    ids = [str(uuid.uuid4()) for _ in range(KEEP_IDLE + 4)]
    got: dict[str, Any] = {}

    def wait(task_id: str) -> None:
        meta = backend.wait_blocking(task_id, 10.0)
        got[task_id] = meta and meta["result"]

    threads = [threading.Thread(target=wait, args=(t,)) for t in ids]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    for task_id in reversed(ids):
        store(raw, backend, task_id, states.SUCCESS, task_id)
    for thread in threads:
        thread.join()
    assert got == {t: t for t in ids}
    waiter = backend._blocking
    assert waiter is not None and len(waiter._idle) == KEEP_IDLE  # the rest were closed


def test_a_killed_connection_is_reopened_within_the_wait(
        raw: redis.Redis, backend: RedisBackend, caplog: pytest.LogCaptureFixture) -> None:
    name = f"waiter-{uuid.uuid4().hex[:8]}"
    named = RedisBackend(URL, {"global_keyprefix": backend.prefix, "client_name": name})
    task_id = str(uuid.uuid4())

    def kill_then_store() -> None:
        time.sleep(0.3)
        mine = [c for c in raw.client_list() if c.get("name") == name]
        assert mine and all(int(c["sub"]) == 1 for c in mine)  # subscribed, waiting
        for client in mine:
            raw.client_kill_filter(_id=client["id"])
        time.sleep(0.3)
        store(raw, backend, task_id, states.SUCCESS, name)

    thread = threading.Thread(target=kill_then_store)
    thread.start()
    try:
        meta = named.wait_blocking(task_id, 10.0)
    finally:
        thread.join()
        named.close_blocking()
    assert meta is not None and meta["result"] == name
    assert "result waits lost Redis" in caplog.text
    assert "result waits reconnected" in caplog.text


def test_unreachable_server_fails_fast_with_the_password_masked() -> None:
    backend = RedisBackend("redis://:s3cret@127.0.0.1:1/0", {"socket_connect_timeout": 1})
    with pytest.raises(BrokerConnectionError) as info:
        backend.wait_blocking("x", 1.0)
    assert "s3cret" not in str(info.value) and "127.0.0.1:1" in str(info.value)


def test_app_get_waits_in_the_callers_thread(raw: redis.Redis, backend: RedisBackend,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app = Celery("waits", broker="memory://", backend=URL, set_as_current=False)
    app.conf.result_backend_transport_options = {"global_keyprefix": backend.prefix}

    bridged: list[Any] = []
    monkeypatch.setattr(app, "run_sync", lambda *a, **k: bridged.append(a))
    task_id = str(uuid.uuid4())
    worker = later(0.1, (states.SUCCESS, 9), raw=raw, backend=backend, task_id=task_id)
    assert app.AsyncResult(task_id).get(timeout=5) == 9
    worker.join()
    assert bridged == []  # the wait never went through the bridge loop
    monkeypatch.undo()
    app.close()


def test_app_falls_back_to_the_bridge_when_the_server_has_no_resp3(
        monkeypatch: pytest.MonkeyPatch) -> None:
    app = Celery("waits", broker="memory://", backend=URL, set_as_current=False)
    calls: list[str] = []

    def unsupported(self: RedisBackend, task_id: str, timeout_s: float | None) -> Any:
        calls.append(task_id)
        raise BlockingWaitUnsupported("unknown command 'HELLO'")

    async def on_loop(task_id: str, timeout_s: float | None) -> Any:
        return make_meta(task_id, states.SUCCESS, "via bridge")

    monkeypatch.setattr(RedisBackend, "wait_blocking", unsupported)
    monkeypatch.setattr(app, "_wait_on_loop", on_loop)
    assert app.AsyncResult("a").get(timeout=1) == "via bridge"
    assert app.AsyncResult("b").get(timeout=1) == "via bridge"
    assert calls == ["a"]  # asked once, then the app stopped trying
