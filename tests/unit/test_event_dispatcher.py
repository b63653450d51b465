"""The worker's task events (-E): what a batch carries, and how it travels over Redis.

The dispatcher keeps events as dicts and encodes a batch at flush with one orjson call;
the fields every event repeats are one pre-encoded value (an ``orjson.Fragment``). These
tests check every event carries them, that strings holding JSON-like text come out as
they went in, and that the batch reaches kombu's side as text (no ``body_encoding``)
that Celery reads as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
from types import SimpleNamespace
from typing import Any

from celeriac import Celery, states
from celeriac.control.wire import LamportClock
from celeriac.events.dispatcher import EventDispatcher
from celeriac.execution import Outcome
from celeriac.protocol import Message, from_envelope, to_envelope, to_text_envelope

TRICKY = 'a {"clock": 1} "quoted" \\ value'


class Captured:
    supports_broadcast = True

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def broadcast(self, exchange: Any, message: Message) -> None:
        self.sent.append(message)


def dispatcher() -> tuple[EventDispatcher, Captured]:
    broker = Captured()
    state = SimpleNamespace(app=Celery("t"), hostname="w1@host", clock=LamportClock(),
                            broker=broker)
    return EventDispatcher(state, task_events=True), broker  # type: ignore[arg-type]


def call(task_id: str) -> Any:
    return SimpleNamespace(id=task_id, name="proj.add", args=[TRICKY], kwargs={},
                           eta=None, expires=None,
                           headers={"argsrepr": repr([TRICKY]), "kwargsrepr": "{}",
                                    "retries": 0, "root_id": task_id, "parent_id": None})


def test_a_batch_is_a_json_list_of_celerys_task_events() -> None:
    events, broker = dispatcher()

    async def go() -> None:
        events.task_began(call("t-1"))
        events.task_finished(call("t-1"), Outcome(states.SUCCESS, TRICKY, runtime_s=0.5))
        events.task_began(call("t-2"))
        events.task_finished(call("t-2"), Outcome(states.FAILURE, ValueError("no")))
        await events.flush()

    asyncio.run(go())
    [message] = broker.sent
    assert message.routing_key == "task.multi"
    batch = json.loads(message.body)
    assert [e["type"] for e in batch] == ["task-received", "task-started", "task-succeeded",
                                          "task-received", "task-started", "task-failed"]
    for event in batch:
        assert event["hostname"] == "w1@host"
        assert event["pid"] == os.getpid()
        assert isinstance(event["utcoffset"], int)
        assert isinstance(event["timestamp"], float)
    assert [e["clock"] for e in batch] == [1, 2, 3, 4, 5, 6]
    assert batch[0]["args"] == repr([TRICKY])  # JSON-like text inside a string is kept
    assert batch[0]["name"] == "proj.add" and batch[0]["uuid"] == "t-1"
    assert batch[2]["result"] == repr(TRICKY) and batch[2]["runtime"] == 0.5
    assert batch[5]["exception"] == "ValueError('no')"


def test_an_empty_buffer_sends_nothing() -> None:
    events, broker = dispatcher()
    asyncio.run(events.flush())
    assert broker.sent == []


def test_a_json_body_travels_as_text_and_comes_back_the_same() -> None:
    body = json.dumps([{"type": "task-started", "args": TRICKY}]).encode()
    message = Message(headers={"hostname": "w1"}, body=body, properties={},
                      content_type="application/json", content_encoding="utf-8",
                      exchange="celeryev", routing_key="task.multi")
    envelope = json.loads(to_text_envelope(message))
    assert "body_encoding" not in envelope["properties"]  # kombu then reads it as text
    assert json.loads(envelope["body"]) == json.loads(body)
    assert from_envelope(to_text_envelope(message)).body == body


def test_a_body_that_is_not_json_text_stays_base64() -> None:
    message = Message(headers={}, body=b"\xff\x00", properties={},
                      content_type="application/x-python-serialize",
                      content_encoding="binary", routing_key="k")
    assert json.loads(to_text_envelope(message))["properties"]["body_encoding"] == "base64"
    assert from_envelope(to_text_envelope(message)).body == b"\xff\x00"
    assert from_envelope(to_envelope(message)).body == b"\xff\x00"


def test_events_are_encoded_in_chunks_and_sent_as_one_list_per_batch() -> None:
    """At most CHUNK events wait as dicts (the collector counts each); a full batch goes
    as one message, every event once and in order."""
    from celeriac.events import dispatcher as module

    events, broker = dispatcher()
    full = module.BATCH // 3  # tasks whose events fill a batch
    tasks = full + 50

    def run(i: int) -> None:
        events.task_began(call(f"t-{i}"))
        events.task_finished(call(f"t-{i}"), Outcome(states.SUCCESS, i, runtime_s=0.1))
        assert len(events.buffer) < module.CHUNK

    async def go() -> None:
        for i in range(full):
            run(i)
        await asyncio.sleep(0)  # the flush the full batch scheduled
        assert len(broker.sent) == 1 and not events.pending
        for i in range(full, tasks):
            run(i)
        await events.flush()

    asyncio.run(go())
    assert len(broker.sent) == 2
    first, second = (json.loads(m.body) for m in broker.sent)
    assert len(first) == module.BATCH
    sent = first + second
    assert [e["clock"] for e in sent] == list(range(1, 3 * tasks + 1))
    assert [e["uuid"] for e in sent[::3]] == [f"t-{i}" for i in range(tasks)]
    assert [e["result"] for e in sent[2::3]] == [repr(i) for i in range(tasks)]
    assert all(e["eta"] is None and e["expires"] is None for e in sent[::3])
    assert not events.pending


def test_a_task_with_an_eta_or_expiry_sends_them() -> None:
    import datetime as dt

    events, broker = dispatcher()
    when = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
    dated = call("t-eta")
    dated.eta = when

    async def go() -> None:
        events.task_began(dated)
        await events.flush()

    asyncio.run(go())
    [received, started] = json.loads(broker.sent[0].body)
    assert received["eta"] == when.isoformat() and received["expires"] is None
    assert list(received).count("eta") == 1
    assert started["type"] == "task-started" and "eta" not in started
