"""-E through the events relay (events/relay.py): the worker records entries, a relay
process beside it builds Celery's events and publishes them; when the relay is gone the
worker sends them itself, losing no batch. The broker here is SQLite (a file both
processes open), so these run without a server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from celeriac import Celery, states
from celeriac.brokers import create_broker
from celeriac.control.wire import LamportClock
from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.event import event_exchange
from celeriac.events.receiver import decode
from celeriac.events.task_batch import BEGAN, began_fields, build_events
from celeriac.execution import Outcome

#: the fields Celery 5's worker sends with each task event (celery/worker/request.py)
RECEIVED = {"hostname", "utcoffset", "pid", "clock", "uuid", "name", "args", "kwargs",
            "retries", "eta", "expires", "root_id", "parent_id", "type", "timestamp"}
STARTED = {"hostname", "utcoffset", "pid", "clock", "uuid", "type", "timestamp"}
SUCCEEDED = STARTED | {"result", "runtime"}


def call(task_id: str, **headers: Any) -> Any:
    base = {"id": task_id, "task": "proj.add", "argsrepr": "(2, 2)", "kwargsrepr": "{}",
            "retries": 1, "eta": "2026-12-06T10:00:00+00:00", "expires": None,
            "root_id": "r-1", "parent_id": "p-1"}
    return SimpleNamespace(id=task_id, name="proj.add", args=[2, 2], kwargs={}, eta=None,
                           expires=None, headers={**base, **headers})


def test_entries_become_celerys_task_events() -> None:
    same = orjson.Fragment(b'"w1@host","utcoffset":-1,"pid":7')
    entries = [(BEGAN, began_fields(call("t-1")), 2, 1.5), (1, "t-1", 3, "4", 0.25, 1.75)]
    events = json.loads(orjson.dumps(build_events(entries, same)))
    assert [e["type"] for e in events] == ["task-received", "task-started", "task-succeeded"]
    assert [set(e) for e in events] == [RECEIVED, STARTED, SUCCEEDED]
    received = events[0]
    assert received["hostname"] == "w1@host" and received["pid"] == 7
    assert received["utcoffset"] == -1 and [e["clock"] for e in events] == [1, 2, 3]
    assert (received["uuid"], received["name"], received["args"], received["retries"],
            received["eta"], received["root_id"], received["parent_id"]) == \
        ("t-1", "proj.add", "(2, 2)", 1, "2026-12-06T10:00:00+00:00", "r-1", "p-1")
    assert events[2]["result"] == "4" and events[2]["runtime"] == 0.25


def test_a_message_without_protocol_2_headers_is_read_from_the_call() -> None:
    bare = SimpleNamespace(id="t-2", name="proj.mul", args=[3], kwargs={"x": 1}, eta=None,
                           expires=None, headers={"retries": None})
    assert began_fields(bare) == ("t-2", "proj.mul", "[3]", "{'x': 1}", 0, None, None,
                                  None, None)


def dispatcher_on(url: str) -> tuple[EventDispatcher, Any]:
    app = Celery("relay-test", broker=url)
    broker = create_broker(url)
    state = SimpleNamespace(app=app, hostname="w1@host", clock=LamportClock(), broker=broker,
                            consumer=SimpleNamespace(active={}),
                            executor=SimpleNamespace(processed=0))
    return EventDispatcher(state, task_events=True), broker  # type: ignore[arg-type]


async def task_events_seen(sub: Any, count: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 20
    while len(seen) < count and asyncio.get_running_loop().time() < deadline:
        for message in await sub.get(0.2):
            seen += [e for e in decode(message) if e["type"].startswith("task-")]
    return seen


def run_task(events: EventDispatcher, task_id: str) -> None:
    events.task_began(call(task_id))
    events.task_finished(call(task_id), Outcome(states.SUCCESS, 4, runtime_s=0.01))


def test_the_relay_sends_the_workers_events_and_exits_with_it(tmp_path: Path) -> None:
    events, broker = dispatcher_on(f"sqlite:///{tmp_path / 'broker.db'}")

    async def go() -> None:
        await broker.connect()
        sub = await broker.subscribe(event_exchange(), "test-events", "#")
        await events.start()
        relay = events.relay
        assert relay is not None and relay.proc.pid != os.getpid()
        run_task(events, "t-1")
        await events.flush()
        seen = await task_events_seen(sub, 3)
        assert [e["type"] for e in seen] == ["task-received", "task-started",
                                             "task-succeeded"]
        assert {e["pid"] for e in seen} == {os.getpid()}  # the worker's, not the relay's
        assert seen[0]["hostname"] == "w1@host" and seen[0]["uuid"] == "t-1"
        run_task(events, "t-2")  # recorded, not flushed yet: stop sends it
        await events.stop()
        assert relay.proc.returncode == 0
        assert [e["uuid"] for e in await task_events_seen(sub, 3)] == ["t-2"] * 3
        await sub.close()
        await broker.close()

    asyncio.run(go())


def test_when_the_relay_dies_the_worker_sends_the_batch_itself(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events, broker = dispatcher_on(f"sqlite:///{tmp_path / 'broker.db'}")

    async def go() -> None:
        await broker.connect()
        sub = await broker.subscribe(event_exchange(), "test-events", "#")
        await events.start()
        relay = events.relay
        assert relay is not None
        relay.proc.kill()
        await relay.proc.wait()
        run_task(events, "t-3")
        with caplog.at_level(logging.WARNING, "celeriac.events"):
            await events.flush()
        assert events.relay is None
        assert "the worker sends its task events itself" in caplog.text
        seen = await task_events_seen(sub, 3)
        assert [(e["type"], e["uuid"]) for e in seen] == [
            ("task-received", "t-3"), ("task-started", "t-3"), ("task-succeeded", "t-3")]
        await events.stop()
        await sub.close()
        await broker.close()

    asyncio.run(go())


def test_no_relay_for_the_in_memory_broker_or_when_turned_off(tmp_path: Path) -> None:
    async def started(url: str, relay_on: bool) -> Any:
        events, broker = dispatcher_on(url)
        events.state.app.conf.worker_events_relay = relay_on
        await broker.connect()
        await events.start()
        relay = events.relay
        await events.stop()
        await broker.close()
        return relay

    assert asyncio.run(started("memory://", True)) is None
    assert asyncio.run(started(f"sqlite:///{tmp_path / 'b.db'}", False)) is None
    assert asyncio.run(started(f"sqlite:///{tmp_path / 'b.db'}", True)) is not None


def test_the_relay_exits_when_the_worker_is_gone(tmp_path: Path) -> None:
    """The end of the pipe (a worker killed with SIGKILL) ends the relay as the empty
    frame does."""
    events, broker = dispatcher_on(f"sqlite:///{tmp_path / 'broker.db'}")

    async def go() -> None:
        await broker.connect()
        await events.start()
        relay = events.relay
        assert relay is not None and relay.stdin is not None
        relay.stdin.close()
        assert await asyncio.wait_for(relay.proc.wait(), 20) == 0
        events.relay = None
        await events.stop()
        await broker.close()

    asyncio.run(go())
