"""CallBatch: a bulk send's messages, and their envelopes spliced from one template,
must be exactly what building and encoding each call on its own gives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from celeriac import Celery
from celeriac.protocol import CallBatch, build_task_message, task_ids, to_envelope
from celeriac.serialization import json_dumps

CALLS: list[tuple[tuple[Any, ...], dict[str, Any] | None]] = [
    ((2, "two"), None),
    (("quote \" backslash \\ percent %s %b %%", "ünïcode ✓"), {"k": [1.5, None]}),
    ((), {"only": "kwargs", "nested": {"a": [True, False]}}),
    (("x" * 3000,), None),  # argsrepr capped at 1024
    ((), None),  # no arguments at all: the constant body
    ((), {}),
]


def template(**options: Any) -> Any:
    return build_task_message("proj.tasks.add", (1, "one"), {"z": 1}, queue="bulk",
                              **options)


@pytest.mark.parametrize("options", [
    {},
    {"priority": 7, "time_limit": 30, "soft_time_limit": 20},
    {"root_id": "root-1", "parent_id": "parent-1", "shadow": "100% shadowed"},
    {"headers": {"custom": "50%", "tenant": {"id": 3}},
     "expires": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)},
])
def test_spliced_envelopes_are_the_encoded_messages(options: dict[str, Any]) -> None:
    batch = CallBatch(template(**options), CALLS, "json")
    envelopes = batch.envelopes()
    assert len(envelopes) == len(batch) == len(CALLS) + 1
    tags = set()
    for message, envelope in zip(batch, envelopes, strict=True):
        tag = orjson.loads(envelope)["properties"]["delivery_tag"]
        tags.add(tag)
        assert envelope == to_envelope(message, delivery_tag=tag)
    assert len(tags) == len(envelopes)  # a fresh delivery tag each


@pytest.mark.parametrize("options", [
    {},
    {"priority": 7, "time_limit": 30, "soft_time_limit": 20, "serializer": "pickle"},
    {"root_id": "root-1", "parent_id": "parent-1", "shadow": "100% shadowed"},
    {"headers": {"custom": "50%", "argsrepr": 7, "tenant": {"id": 3}},
     "expires": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)},
])
def test_spliced_amqp_frames_are_the_encoded_messages(options: dict[str, Any]) -> None:
    """RabbitMQ: a batch's frames, spliced from the template's header (amqp_batch), are
    byte for byte each message encoded on its own, bodies split at frame_max included."""
    from celeriac.brokers.amqp.batch import OutgoingBatch
    from celeriac.brokers.amqp.wire import encode_publish

    serializer = options.pop("serializer", "json")
    batch = CallBatch(template(serializer=serializer, **options), CALLS, serializer)
    items = OutgoingBatch(batch)
    for frame_max in (131072, 4096):
        spliced = bytearray()
        items.encode(spliced, 3, frame_max)
        one_by_one = bytearray()
        for item in items:
            encode_publish(one_by_one, 3, item, frame_max)
        assert spliced == one_by_one
    assert [i.message.task_id for i in items] == batch.task_ids


def test_a_spliced_header_over_frame_max_is_refused() -> None:
    from celeriac.brokers.amqp.batch import OutgoingBatch
    from celeriac.errors import PublishError

    batch = CallBatch(template(), CALLS, "json")
    with pytest.raises(PublishError, match=f"task {batch.task_ids[4]}: .* frame_max"):
        OutgoingBatch(batch).encode(bytearray(), 1, 1024)  # call 4: argsrepr of 1 KiB


def test_each_call_has_its_own_id_arguments_and_root() -> None:
    first = template()
    batch = CallBatch(first, CALLS, "json")
    assert batch[0] is first
    ids = task_ids(batch)
    assert ids == [m.task_id for m in batch] and len(set(ids)) == len(ids)
    for message, (args, kwargs) in zip(batch[1:], CALLS, strict=True):
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        assert message.body == json_dumps([list(args), kwargs or {}, embed])  # as Celery's
        assert message.headers["root_id"] == message.headers["id"]  # its own root
        assert message.properties["correlation_id"] == message.headers["id"]
        assert message.headers["argsrepr"] == repr(args)[:1024] or len(repr(args)) > 1024
    assert len(batch[4].headers["argsrepr"]) == 1024
    given_root = CallBatch(template(root_id="root-1"), CALLS, "json")
    assert {m.headers["root_id"] for m in given_root} == {"root-1"}


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_send_many_reaches_the_broker_as_the_same_messages(tmp_path: Any, scheme: str
                                                           ) -> None:
    """End to end: what arrives is what each call sent (SQLite stores spliced envelopes;
    Redis: test_redis_wire.py)."""
    url = f"memory://batch-{id(tmp_path)}" if scheme == "memory" else \
        f"sqlite:///{tmp_path}/batch.db"
    app = Celery("batch", broker=url, set_as_current=False)

    @app.task(name="b.add")
    def add(x: int, y: int) -> int:
        return x + y

    results = add.delay_many([(i, i) for i in range(5)], batch_size=2)
    assert len({r.id for r in results}) == 5

    async def drain() -> list[Any]:
        broker = await app.clients.broker()
        return await broker.fetch(["celery"], 10, 1.0)
    deliveries = app.run_sync(drain())
    assert [d.message.task_id for d in deliveries] == [r.id for r in results]
    assert [orjson.loads(d.message.body)[0] for d in deliveries] == [[i, i] for i in range(5)]


def test_a_countdown_batch_waits_in_the_sqlite_delay_store(tmp_path: Any) -> None:
    """delay_many(countdown=...) on SQLite: every call's row, due at the batch's time."""
    import sqlite3
    import time

    app = Celery("later", broker=f"sqlite:///{tmp_path}/later.db", set_as_current=False)

    @app.task(name="b.later")
    def later(x: int) -> int:
        return x

    before = time.time()
    results = later.delay_many([(i,) for i in range(5)], countdown=600, batch_size=2)
    db = sqlite3.connect(tmp_path / "later.db")
    rows = db.execute("SELECT available_at, envelope FROM messages ORDER BY id").fetchall()
    db.close()
    assert [orjson.loads(env)["headers"]["id"] for _, env in rows] == [r.id for r in results]
    assert all(before + 600 <= due <= time.time() + 600 for due, _ in rows)
