"""Bulk sends: ``delay_many``/``apply_many`` and the app's ``send_many``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from celeriac import Celery
from celeriac.protocol import Message, build_task_message, parse_task
from celeriac.signing import verify
from celeriac.testing import drain, memory_app
from tests.unit.test_app import fetch_all

ACCEPT = frozenset({"application/json"})


@pytest.fixture
def app() -> Celery:
    return memory_app("bulktest")


def _count_batches(app: Celery, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    broker = app.run_sync(app.clients.broker())
    publish, delay = broker.publish, broker.delay

    async def counting_publish(messages: Any) -> None:
        sizes.append(len(messages))
        await publish(messages)

    async def counting_delay(messages: Any) -> None:
        sizes.append(-len(messages))
        await delay(messages)

    monkeypatch.setattr(broker, "publish", counting_publish)
    monkeypatch.setattr(broker, "delay", counting_delay)
    return sizes


def test_delay_many_sends_in_batches_and_every_call_runs(
        app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []

    @app.task
    def add(x: int, y: int) -> int:
        seen.append((x, y))
        return x + y

    sizes = _count_batches(app, monkeypatch)
    results = add.delay_many(((i, i) for i in range(2500)), batch_size=1000)
    assert sizes == [1000, 1000, 500]
    assert len({r.id for r in results}) == 2500
    assert drain(app) == 2500
    assert sorted(seen) == [(i, i) for i in range(2500)]
    assert [r.get(timeout=5) for r in results[:3]] == [0, 2, 4]


def test_each_message_is_what_send_task_would_build(app: Celery) -> None:
    @app.task(name="mul")
    def mul(x: int, y: int = 1) -> int:
        return x * y

    results = mul.apply_many([((2,), {"y": 3}), ((4,), None)], priority=7, queue="q1",
                             headers={"x-trace": "t"})
    messages: list[Message] = [d.message for d in fetch_all(app, "q1")]
    assert [m.task_id for m in messages] == [r.id for r in results]
    for message, (args, kwargs) in zip(messages, [([2], {"y": 3}), ([4], {})], strict=True):
        call = parse_task(message, ACCEPT)
        assert (call.args, call.kwargs) == (args, kwargs)
        assert message.properties["correlation_id"] == message.task_id
        assert message.headers["root_id"] == message.task_id  # no parent: its own root
        assert message.headers["x-trace"] == "t" and message.priority == 7
        reference = build_task_message("mul", args, kwargs, queue="q1", priority=7,
                                       headers={"x-trace": "t"})
        differ = {"id", "root_id"}
        assert {k: v for k, v in message.headers.items() if k not in differ} == \
            {k: v for k, v in reference.headers.items() if k not in differ}
    assert messages[1].headers["argsrepr"] == "(4,)"
    assert messages[1].headers["kwargsrepr"] == "{}"


def test_countdown_puts_the_whole_batch_in_the_delay_store(
        app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    @app.task
    def noop(i: int) -> int:
        return i

    sizes = _count_batches(app, monkeypatch)
    noop.delay_many([(i,) for i in range(10)], countdown=3600)
    assert sizes == [-10]
    assert fetch_all(app) == []
    assert drain(app) == 10  # drain releases delayed messages at once


def test_routes_and_links_are_resolved_for_each_call(app: Celery) -> None:
    @app.task(name="route.me")
    def route_me(i: int) -> int:
        return i

    app.conf.task_routes = [lambda name, args, kwargs, options, task=None, **kw:
                            {"queue": "odd" if args[0] % 2 else "even"}]
    route_me.delay_many([(1,), (2,), (3,)], link=route_me.s())
    odd, even = fetch_all(app, "odd"), fetch_all(app, "even")
    assert [parse_task(d.message, ACCEPT).args for d in odd] == [[1], [3]]
    assert [parse_task(d.message, ACCEPT).args for d in even] == [[2]]
    assert all(parse_task(d.message, ACCEPT).callbacks for d in odd + even)


def test_signed_when_a_key_is_set(app: Celery) -> None:
    app.conf.security_key = "k" * 32

    @app.task(name="signed")
    def signed(i: int) -> int:
        return i

    signed.delay_many([(1,), (2,)])
    messages = [d.message for d in fetch_all(app)]
    assert len(messages) == 2
    assert [verify(m, "k" * 32) for m in messages] == [None, None]


def test_eager_shared_id_and_async_twin(app: Celery) -> None:
    @app.task
    def double(x: int) -> int:
        return 2 * x

    with pytest.raises(TypeError, match="task_id"):
        double.delay_many([(1,), (2,)], task_id="same")
    results = asyncio.run(double.adelay_many([(1,), (2,)]))
    assert drain(app) == 2 and [r.get(timeout=5) for r in results] == [2, 4]
    app.conf.task_always_eager = True
    assert [r.get() for r in double.delay_many([(5,), (6,)])] == [10, 12]

