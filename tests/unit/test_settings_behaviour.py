"""Settings that now do what Celery's do: task_annotations, task_compression,
enable_utc/timezone, task_store_eager_result, task_store_errors_even_if_ignored,
task_acks_on_failure_or_timeout."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import kombu.compression
import pytest

from celeriac import Celery
from celeriac.protocol import parse_task
from celeriac.testing import drain, memory_app
from celeriac.worker.rate_limit import RateLimiter

ACCEPT = frozenset({"application/json"})


def fetch_all(app: Celery, queue: str = "celery") -> list[Any]:
    async def go() -> list[Any]:
        broker = await app.clients.broker()
        got = await broker.fetch([queue], 100, 0)
        await broker.ack(got)
        await app.clients.close()
        return list(got)

    return asyncio.run(go())


def test_task_annotations_rate_limit_as_in_first_steps() -> None:
    app = memory_app("anno", task_annotations={"tasks.add": {"rate_limit": "10/s"}})

    @app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tasks.other")
    def other() -> None: ...

    limiter = RateLimiter.for_app(app, lambda d: None)  # what a worker builds
    assert add.rate_limit == "10/s" and other.rate_limit is None
    assert limiter._rate_of("tasks.add") == 10.0
    assert limiter._rate_of("tasks.other") is None


def test_task_annotations_star_lists_objects_and_around() -> None:
    calls: list[str] = []

    class Annotate:
        def annotate(self, task: Any) -> dict[str, Any] | None:
            return {"priority": 3} if task.name == "b" else None

    def around(original: Any) -> Any:
        def on_failure(self: Any, *args: Any) -> None:
            calls.append(self.name)
            original(self, *args)
        return on_failure

    app = memory_app("anno", task_annotations=[
        Annotate(), {"*": {"acks_late": False, "@on_failure": around}}])

    @app.task(name="a")
    def a() -> None:
        raise ValueError

    app.finalize()

    @app.task(name="b")  # registered after finalize: annotated at once
    def b() -> None: ...

    assert b.priority == 3 and a.priority is None
    assert a.acks_late is False and b.acks_late is False
    a.apply()
    assert calls == ["a"]


@pytest.mark.parametrize("name", ["gzip", "zlib", "bzip2", "lzma"])
def test_task_compression_as_kombu_reads_it(name: str) -> None:
    app = memory_app("zip", task_compression=name)
    app.send_task("t", ([1, 2],), {"k": "v" * 100})
    [delivery] = fetch_all(app)
    message = delivery.message
    header = message.headers["compression"]
    assert header.startswith("application/x-")
    # what a Celery worker does with it (kombu's decompress, then the serializer)
    assert json.loads(kombu.compression.decompress(message.body, header)) == \
        [[[1, 2]], {"k": "v" * 100}, {"callbacks": None, "errbacks": None,
                                      "chain": None, "chord": None}]
    assert parse_task(message, ACCEPT).kwargs == {"k": "v" * 100}


def test_compressed_bodies_from_kombu_parse_and_tasks_run() -> None:
    app = memory_app("zip", task_compression="gzip")
    ran: list[Any] = []

    @app.task(name="keep")
    def keep(*args: Any) -> None:
        ran.append(args)

    keep.delay_many([(1,), (2,)])
    keep.apply_async((3,), compression="bzip2")
    assert drain(app) == 3 and sorted(ran) == [(1,), (2,), (3,)]


def test_compression_name_must_be_known() -> None:
    app = memory_app("zip", task_compression="snappy")
    from celeriac.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="unknown compression"):
        app.send_task("t")


def test_naive_eta_follows_timezone_and_enable_utc() -> None:
    naive = dt.datetime(2030, 1, 1, 12, 0)
    app = memory_app("tz", broker_delay_store=False)
    app.send_task("t", eta=naive)
    app.conf.timezone = "Europe/Berlin"
    app.send_task("t", eta=naive)
    del app.conf["timezone"]
    app.conf.enable_utc = False
    app.send_task("t", eta=naive)
    etas = [dt.datetime.fromisoformat(d.message.headers["eta"]) for d in fetch_all(app)]
    local = naive.astimezone()  # the machine's zone
    assert etas == [naive.replace(tzinfo=dt.UTC),
                    naive.replace(tzinfo=dt.timezone(dt.timedelta(hours=1))), local]


def test_store_eager_result() -> None:
    app = memory_app("eager", task_store_eager_result=True)

    @app.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    result = double.apply((21,), task_id="eager-1")
    assert result.get() == 42
    assert app.AsyncResult("eager-1").get(timeout=5) == 42
    other = memory_app("eager2")

    @other.task(name="double")
    def double2(x: int) -> int:
        return 2 * x

    double2.apply((1,), task_id="eager-2")
    assert other.AsyncResult("eager-2").state == "PENDING"


@pytest.mark.parametrize("store_errors", [False, True])
def test_failures_of_ignored_tasks(store_errors: bool) -> None:
    app = memory_app("ignored", task_store_errors_even_if_ignored=store_errors)

    @app.task(name="boom", ignore_result=True)
    def boom() -> None:
        raise ValueError("boom")

    result = boom.delay()
    drain(app, raise_errors=False)
    assert result.state == ("FAILURE" if store_errors else "PENDING")


def test_failed_task_dead_lettered_when_acks_on_failure_is_off() -> None:
    app = memory_app("acksfail", task_acks_on_failure_or_timeout=False)

    @app.task(name="boom")
    def boom() -> None:
        raise ValueError("boom")

    result = boom.delay()
    drain(app, raise_errors=False)
    assert result.state == "FAILURE"  # stored, as Celery does, and not acked

    async def letters() -> list[Any]:
        broker = await app.clients.broker()
        found = await broker.dead_letters(10)
        await app.clients.close()
        return list(found)

    [letter] = asyncio.run(letters())
    assert "task_acks_on_failure_or_timeout is off" in str(letter)


@pytest.mark.parametrize("inherit", [True, False])
def test_task_inherit_parent_priority(inherit: bool) -> None:
    app = memory_app("prio", task_inherit_parent_priority=inherit)

    @app.task(name="child")
    def child() -> None: ...

    @app.task(name="parent")
    def parent() -> None:
        child.delay()
        child.apply_async(priority=2)

    parent.apply_async(priority=7)
    [sent] = fetch_all(app)
    assert sent.message.priority == 7

    async def run_one() -> list[int]:
        from celeriac.testing import _drain  # runs what is queued, in this process

        await _drain(app, ["celery"], True, 1)
        broker = await app.clients.broker()
        got = await broker.fetch(["celery"], 10, 0)
        await broker.ack(got)
        await app.clients.close()
        return sorted(d.message.priority for d in got)

    app.send_task("parent", priority=7)
    assert asyncio.run(run_one()) == ([2, 7] if inherit else [0, 2])
