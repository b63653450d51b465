"""The publish path's shortcuts keep their promises: ids are real v4 UUIDs, nested UUIDs
are still wrapped, and sync callers publish from their own thread where the broker can.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Any

from celeriac import Celery
from celeriac.bridge import BlockingProducer
from celeriac.brokers.sqlite.broker import SQLiteBroker
from celeriac.protocol import new_id, new_ids
from celeriac.serialization import json_dumps, json_loads


def test_new_id_is_a_random_v4_uuid() -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_new_ids_in_bulk_are_random_v4_uuids() -> None:
    ids = new_ids(3000) + new_ids(1)
    assert len(set(ids)) == 3001 and new_ids(0) == []
    for text in ids[:200] + ids[-1:]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_threads_never_share_ids() -> None:
    """Ids come from a per-thread pool of random bytes: no slice is handed out twice."""
    taken: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def take(mine: list[str]) -> None:
        start.wait()
        mine.extend(new_id() for _ in range(3000))

    threads = [threading.Thread(target=take, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for mine in taken for i in mine]
    assert len(set(every)) == len(every) == 24000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_id()  # the pool now holds random bytes the child inherits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, ",".join(new_id() for _ in range(40)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_id() for _ in range(40)}
    assert len(child) == 40 and not child & parent


def test_uuids_inside_plain_looking_containers_are_still_wrapped() -> None:
    u = uuid.uuid4()
    body = [[1, "a", u], {"k": u, "n": None}, {"chain": [{"args": [u]}]}]
    assert json_loads(json_dumps(body)) == body
    assert b'"__type__":"uuid"' in json_dumps([[1, 2], {"x": u}])


def test_sync_callers_publish_from_their_own_thread(tmp_path: Path) -> None:
    app = Celery("fast", broker=f"sqlite:///{tmp_path / 'b.db'}", set_as_current=False)

    @app.task(name="fast.noop")
    def noop() -> None:
        return None

    producer = app._blocking_producer()
    assert isinstance(producer, SQLiteBroker) and isinstance(producer, BlockingProducer)
    results = []
    threads = [threading.Thread(target=lambda: results.append(noop.delay())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    noop.apply_async(countdown=3600)
    assert len({r.id for r in results}) == 8
    db = SQLiteBroker(f"sqlite:///{tmp_path / 'b.db'}")
    rows = db._db().execute("SELECT COUNT(*), SUM(available_at > strftime('%s','now') + 60) "
                            "FROM messages").fetchone()
    assert rows == (9, 1)  # eight ready, one in the delay store


def test_memory_broker_goes_through_the_bridge() -> None:
    app = Celery("fast-mem", broker="memory://fast-mem", set_as_current=False)
    assert app._blocking_producer() is None


def test_a_forked_child_opens_its_own_producer(tmp_path: Path) -> None:
    app = Celery("fast-fork", broker=f"sqlite:///{tmp_path / 'f.db'}", set_as_current=False)
    parent = app._blocking_producer()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh producer, not the parent's connection
        os.write(write, b"1" if app._blocking_producer() is not parent else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert app._blocking_producer() is parent


def test_a_setting_changed_at_run_time_applies_to_the_next_send() -> None:
    app = Celery("fast-conf", broker="memory://fast-conf", set_as_current=False)
    first, _ = app._build_message("t", (), None, None, {})
    app.conf.task_default_queue = "elsewhere"
    app.conf.task_time_limit = 30
    second, _ = app._build_message("t", (), None, None, {})
    assert first.routing_key == "celery" and second.routing_key == "elsewhere"
    assert first.headers["timelimit"] == [None, None]
    assert second.headers["timelimit"] == [30.0, None]
    del app.conf["task_default_queue"]
    assert app._build_message("t", (), None, None, {})[0].routing_key == "celery"


def test_reply_to_is_one_client_id_per_process_as_celery_does() -> None:
    app = Celery("fast-reply", broker="memory://fast-reply", set_as_current=False)
    a, _ = app._build_message("t", (), None, None, {})
    b, _ = app._build_message("t", (), None, None, {})
    assert a.properties["reply_to"] == b.properties["reply_to"]
    assert uuid.UUID(a.properties["reply_to"])
    assert a.headers["origin"].startswith(f"{os.getpid()}@")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked child is another client: its own id and origin
        child, _ = app._build_message("t", (), None, None, {})
        fresh = (child.properties["reply_to"] != a.properties["reply_to"]
                 and child.headers["origin"].startswith(f"{os.getpid()}@"))
        os.write(write, b"1" if fresh else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"


def test_the_workers_request_has_every_field_of_a_context() -> None:
    """The executor builds ``task.request`` with Context.from_fields (no __init__): it
    must still hold every field, with values from the message and fresh mutables."""
    from dataclasses import fields

    from celeriac.context import Context
    from celeriac.testing import drain, memory_app

    app = memory_app("requests")
    seen: list[Context] = []

    @app.task(bind=True, name="t.capture")
    def capture(self: Any, x: int) -> int:
        seen.append(self.request)
        return x

    capture.apply_async((1,), priority=3)
    capture.apply_async((2,), countdown=0)
    assert drain(app) == 2
    first, second = seen
    assert isinstance(first, Context)
    assert "root_id" not in vars(first)  # read from the message only when asked for
    for f in fields(Context):
        getattr(first, f.name)  # every field can be read
    assert first.task == "t.capture" and first.args == [1] and first.kwargs == {}
    assert first.called_directly is False and first.is_eager is False
    assert first.delivery_info["priority"] == 3 and first.retries == 0
    assert first.root_id == first.id and first.correlation_id == first.id
    assert first.options is not second.options and first.options == {}
    assert first == Context(**{f.name: getattr(first, f.name) for f in fields(Context)})


def test_a_lazily_filled_request_keeps_assignments_and_pickles_whole() -> None:
    """Fields the worker reads later: an assignment wins over the message, and a pickled
    request (the prefork pool sends it to a child) carries every field."""
    import pickle
    from dataclasses import fields

    from celeriac.context import Context, WorkerRequest
    from celeriac.testing import drain, memory_app

    app = memory_app("lazy")
    seen: list[Context] = []

    @app.task(bind=True, name="t.lazy")
    def lazy(self: Any) -> None:
        seen.append(self.request)

    lazy.apply_async(headers={"origin": "gen1@host"}, priority=5)
    assert drain(app) == 1
    [request] = seen
    assert isinstance(request, WorkerRequest)
    request.retries = 7  # as retry bookkeeping may do
    assert request.retries == 7
    copy = pickle.loads(pickle.dumps(request))
    assert type(copy) is Context and "_source" not in vars(copy)
    assert set(vars(copy)) == {f.name for f in fields(Context)}
    assert copy.retries == 7 and copy.origin == "gen1@host"
    assert copy.delivery_info["priority"] == 5 and copy == request


def test_an_overridden_on_success_still_runs_in_the_worker() -> None:
    """The executor skips calling the default (empty) on_success, not an override."""
    from celeriac import Task
    from celeriac.testing import drain, memory_app

    app = memory_app("hooks")
    calls: list[tuple[Any, str]] = []

    class Hooked(Task):  # type: ignore[type-arg]
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append((retval, task_id))

    @app.task(base=Hooked, name="t.hooked")
    def hooked(x: int) -> int:
        return x * 2

    @app.task(name="t.plain")
    def plain() -> None: ...

    result = hooked.delay(21)
    plain.delay()
    assert drain(app) == 2
    assert calls == [(42, result.id)]
