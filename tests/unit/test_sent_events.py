"""``task_send_sent_event``: a ``task-sent`` event per published task, with Celery's
fields, on the memory broker's broadcast (the contract's reference); none when off."""

from __future__ import annotations

import os
from typing import Any

import orjson

from celeriac import Celery
from celeriac.brokers.base import Subscription
from celeriac.events.event import event_exchange
from celeriac.testing import memory_app


def listen(app: Celery) -> Subscription:
    async def subscribe() -> Subscription:
        broker = await app.clients.broker()
        return await broker.subscribe(event_exchange(), "test-events", "#")

    return app.run_sync(subscribe(), 10)


def received(app: Celery, sub: Subscription, wait_s: float = 0.5) -> list[dict[str, Any]]:
    """Every event that arrived, list messages flattened, with their routing keys."""
    events: list[dict[str, Any]] = []
    while True:
        messages = app.run_sync(sub.get(wait_s), 10)
        if not messages:
            return events
        for message in messages:
            body = orjson.loads(message.body)
            for e in body if isinstance(body, list) else [body]:
                events.append({**e, "_key": message.routing_key})
        wait_s = 0.1


def test_a_send_sends_task_sent_with_celerys_fields() -> None:
    app = memory_app(task_send_sent_event=True)
    sub = listen(app)
    result = app.send_task("t.add", (2, 3), {"z": 1}, countdown=30, expires=60, queue="q1")
    [sent] = received(app, sub)
    assert sent["type"] == "task-sent" and sent["_key"] == "task.sent"
    assert sent["uuid"] == result.id and sent["root_id"] == result.id
    assert sent["parent_id"] is None and sent["name"] == "t.add"
    assert sent["args"] == "(2, 3)" and sent["kwargs"] == "{'z': 1}"
    assert sent["retries"] == 0 and sent["eta"] and sent["expires"]
    assert sent["queue"] == "q1" and sent["routing_key"] == "q1" and sent["exchange"] == ""
    assert sent["hostname"] == f"gen{os.getpid()}@{os.uname().nodename}"
    assert sent["pid"] == os.getpid() and isinstance(sent["clock"], int)
    assert isinstance(sent["timestamp"], float) and "utcoffset" in sent


def test_bulk_sends_send_one_list_of_events() -> None:
    app = memory_app(task_send_sent_event=True)
    sub = listen(app)
    results = app.send_many("t.add", [((i, i), None) for i in range(5)])
    events = received(app, sub)
    assert [e["uuid"] for e in events] == [r.id for r in results]
    assert {e["_key"] for e in events} == {"task.multi"}
    assert [e["args"] for e in events] == [f"({i}, {i})" for i in range(5)]
    clocks = [e["clock"] for e in events]
    assert clocks == sorted(set(clocks))


def test_async_sends_too() -> None:
    app = memory_app(task_send_sent_event=True)
    sub = listen(app)

    async def send() -> str:
        return (await app.asend_task("t.add", (1, 1))).id

    task_id = app.run_sync(send(), 10)
    assert [e["uuid"] for e in received(app, sub)] == [task_id]


def test_off_by_default() -> None:
    app = memory_app()
    sub = listen(app)
    app.send_task("t.add", (2, 3))
    assert received(app, sub) == []
