"""task_routes and task_queues as Celery's: dict (globs, regexes), list, callable and
import-path routers; kombu's Queue/Exchange and celeriac's; task_create_missing_queues;
-Q/-X; a router that raises is logged and skipped."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import kombu
import pytest

import celeriac
from celeriac import Celery
from celeriac.brokers.amqp.topology import queue_spec
from celeriac.errors import QueueNotFound
from celeriac.queues import select_queues
from celeriac.testing import memory_app


def queue_of(app: Celery, name: str, *args: Any, **options: Any) -> str:
    """Send task ``name`` and return the queue the message landed in."""
    app.send_task(name, args, **options)

    async def go() -> str:
        broker = await app.clients.broker()
        for queue in ("celery", "q1", "q2", "q3", "feeds", "images", "video"):
            got = await broker.fetch([queue], 10, 0)
            if got:
                await broker.ack(got)
                await app.clients.close()
                return queue
        await app.clients.close()
        return "?"

    return asyncio.run(go())


def route_by_arg(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
                 **kw: Any) -> dict[str, str] | None:
    """A router in Celery's signature, importable by path."""
    if args and args[0] == "big":
        return {"queue": "q3"}
    return None


def test_dict_globs_and_regexes() -> None:
    app = memory_app("routes", task_routes={
        "feed.tasks.*": {"queue": "feeds"},
        re.compile(r"(image|video)\.tasks\..*"): {"queue": "images"},
        "exact.name": "q1",
    })
    assert queue_of(app, "feed.tasks.import_feed") == "feeds"
    assert queue_of(app, "video.tasks.encode") == "images"
    assert queue_of(app, "exact.name") == "q1"
    assert queue_of(app, "other") == "celery"


def test_list_of_callables_paths_and_dicts_tried_in_order() -> None:
    seen: list[tuple[Any, ...]] = []

    def spy(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
            **kw: Any) -> None:
        seen.append((name, tuple(args), dict(kwargs), task))

    app = memory_app("routes", task_routes=[
        spy, "tests.unit.test_routing.route_by_arg", {"add": {"queue": "q2"}}])

    @app.task(name="add")
    def add(x: Any, y: int = 0) -> None: ...

    add.delay("big", y=1)
    add.delay("small")
    assert queue_of(app, "nothing") == "celery"
    assert seen[0] == ("add", ("big",), {"y": 1}, add)  # Celery's router arguments

    async def drain() -> list[str]:
        broker = await app.clients.broker()
        found = []
        for queue in ("q3", "q2"):
            found += [queue] * len(await broker.fetch([queue], 10, 0))
        await app.clients.close()
        return found

    assert asyncio.run(drain()) == ["q3", "q2"]


def test_a_router_that_raises_is_logged_and_skipped(caplog: pytest.LogCaptureFixture
                                                    ) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("router bug")

    app = memory_app("routes", task_routes=[broken, {"t": "q1"}])
    with caplog.at_level(logging.ERROR):
        assert queue_of(app, "t") == "q1"
    assert "task router" in caplog.text and "RuntimeError: router bug" in caplog.text


@pytest.mark.parametrize("lib", [kombu, celeriac], ids=["kombu", "celeriac"])
def test_queue_objects_in_routes_and_task_queues(lib: Any) -> None:
    media = lib.Exchange("media", type="topic")
    queues = [lib.Queue("images", media, routing_key="image.#", max_priority=5),
              lib.Queue("video", media, routing_key="video.#")]
    app = memory_app("routes", task_queues=queues,
                     task_routes={"img": {"queue": queues[0]}})
    assert queue_of(app, "img") == "images"
    assert queue_of(app, "vid", queue=queues[1]) == "video"


def test_celeriac_queue_reads_as_kombus() -> None:
    """The RabbitMQ topology gets the same declaration from either class."""
    ours = celeriac.Queue("images", celeriac.Exchange("media", type="topic"),
                          routing_key="image.#", max_priority=5,
                          queue_arguments={"x-queue-mode": "lazy"})
    theirs = kombu.Queue("images", kombu.Exchange("media", type="topic"),
                         routing_key="image.#", max_priority=5,
                         queue_arguments={"x-queue-mode": "lazy"})
    assert queue_spec(ours) == queue_spec(theirs)
    assert queue_spec(ours).arguments["x-max-priority"] == 5


def test_missing_queues_refused_when_create_missing_is_off() -> None:
    app = memory_app("routes", task_queues=[celeriac.Queue("q1"), "q2"],
                     task_create_missing_queues=False)
    assert queue_of(app, "t", queue="q2") == "q2"
    with pytest.raises(QueueNotFound, match="nowhere"):
        app.send_task("t", queue="nowhere")
    app.conf.task_create_missing_queues = True
    assert queue_of(app, "t", queue="q3") == "q3"


def test_worker_queues_default_to_task_queues_and_minus_x() -> None:
    app = memory_app("routes", task_queues=[kombu.Queue("a"), kombu.Queue("b"), "c"])
    assert app.Worker(print_banner=False).queues == ["a", "b", "c"]
    assert select_queues(app.conf, None, "b") == ["a", "c"]
    assert select_queues(app.conf, "a,x", "x") == ["a"]
    assert select_queues(app.conf, "a, b", None) == ["a", "b"]
    assert select_queues(app.conf, None, None) is None
    app.conf.task_create_missing_queues = False
    with pytest.raises(QueueNotFound):
        select_queues(app.conf, "a,x", None)
