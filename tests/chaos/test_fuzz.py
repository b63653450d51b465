"""Bad input, straight into each broker: the worker never crashes or stalls, and every
message ends either executed (once) or in the dead-letter store with a reason.

Hypothesis draws batches of raw envelopes (``fuzzcases.py``) and pushes them under the
producer API, as bytes, into the broker's own storage: rows in the SQLite file, LPUSH on
Redis, a raw AMQP publish on RabbitMQ (headers as the AMQP table), Message objects on
memory (which has no wire form). One in-process worker
(``celeriac.testing.worker_thread``) serves every example; a last good task proves it
still runs. ``test_cli_worker_survives_the_corpus`` does the same once with a real CLI
worker (prefork) on SQLite.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from celeriac import Celery
from celeriac.brokers.base import Broker
from celeriac.brokers.sqlite.broker import sqlite_path
from celeriac.errors import DecodeError
from celeriac.protocol import build_task_message, from_envelope, to_envelope
from celeriac.testing import worker_thread
from tests.chaos.conftest import drop_redis_keys
from tests.chaos.fuzzcases import envelopes
from tests.chaos.harness import REDIS_DB_URL, Scenario, wait_until
from tests.services import need_rabbitmq, need_redis

QUEUE = "fuzz"


class Target:
    """An app on one broker, a running worker, and a way to push raw envelopes."""

    def __init__(self, app: Celery, push: Callable[[list[bytes]], int]) -> None:
        self.app = app
        self.push = push
        self.executed: list[str] = []

    def run(self, coro: Any) -> Any:
        async def call() -> Any:
            broker = app_broker(self.app)
            await broker.connect()
            try:
                return await coro(broker)
            finally:
                await broker.close()
        return asyncio.run(call())

    def dead(self) -> list[Any]:
        return list(self.run(lambda b: b.dead_letters(100_000)))

    def ready(self) -> int:
        return int(self.run(lambda b: b.queue_size(QUEUE)))


def app_broker(app: Celery) -> Broker:
    return app._new_broker()


def fuzz_app(broker_url: str, **options: Any) -> Celery:
    app = Celery(f"fuzz-{uuid.uuid4().hex[:6]}", broker=broker_url, set_as_current=False)
    app.conf.task_default_queue = QUEUE
    app.conf.broker_transport_options = {"polling_interval": 0.01, **options}
    return app


def register(target: Target) -> None:
    app, executed = target.app, target.executed

    @app.task(name="fz.one", bind=True)
    def one(self: Any, x: Any) -> Any:
        executed.append(self.request.id)
        return x

    @app.task(name="fz.two", bind=True)
    def two(self: Any, a: Any, b: Any) -> Any:
        executed.append(self.request.id)
        return [a, b]

    @app.task(name="fz.aone", bind=True)
    async def aone(self: Any, x: Any) -> Any:
        executed.append(self.request.id)
        return x

    @app.task(name="fz.var", bind=True)
    def var(self: Any, *args: Any, **kwargs: Any) -> Any:
        executed.append(self.request.id)
        return len(args)


def memory_push(app: Celery) -> Callable[[list[bytes]], int]:
    def push(raws: list[bytes]) -> int:
        messages = []
        for raw in raws:
            try:
                message = from_envelope(raw)
            except DecodeError:
                continue  # no wire form in memory: a broken envelope cannot exist there
            message.routing_key = QUEUE
            messages.append(message)

        async def publish(broker: Broker) -> None:
            await broker.publish(messages)
        if messages:
            asyncio.run(_with(app, publish))
        return len(messages)
    return push


async def _with(app: Celery, op: Any) -> Any:
    broker = app_broker(app)
    await broker.connect()
    try:
        return await op(broker)
    finally:
        await broker.close()


def sqlite_push(url: str) -> Callable[[list[bytes]], int]:
    def push(raws: list[bytes]) -> int:
        db = sqlite3.connect(sqlite_path(url), timeout=30)
        db.executemany("INSERT INTO messages (queue, priority, available_at, envelope) "
                       "VALUES (?, 0, 0, ?)", [(QUEUE, raw) for raw in raws])
        db.commit()
        db.close()
        return len(raws)
    return push


def redis_push(url: str, prefix: str) -> Callable[[list[bytes]], int]:
    import redis

    def push(raws: list[bytes]) -> int:
        client = redis.Redis.from_url(url)
        try:
            client.lpush(f"{prefix}{QUEUE}", *raws)
        finally:
            client.close()
        return len(raws)
    return push


def amqp_push(url: str) -> Callable[[list[bytes]], int]:
    """Publish each envelope as RabbitMQ would carry it: its headers as the AMQP header
    table, its body decoded; what is not a JSON envelope goes as a bare body."""
    import aiormq
    from pamqp.commands import Basic

    def as_amqp(raw: bytes) -> tuple[bytes, Any]:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw, Basic.Properties()
        if not isinstance(doc, dict) or not isinstance(doc.get("headers"), dict):
            return raw, Basic.Properties()
        props = doc.get("properties") if isinstance(doc.get("properties"), dict) else {}
        body: Any = doc.get("body", "")
        try:
            body = base64.b64decode(body, validate=True)
        except (ValueError, TypeError):
            body = str(body).encode()
        return body, Basic.Properties(
            headers=doc["headers"], content_type=str(doc.get("content-type") or ""),
            content_encoding=str(doc.get("content-encoding") or ""),
            correlation_id=str(props.get("correlation_id") or ""), delivery_mode=2)

    def push(raws: list[bytes]) -> int:
        async def go() -> int:
            connection = await aiormq.connect(url)
            channel = await connection.channel()
            sent = 0
            for raw in raws:
                body, properties = as_amqp(raw)
                try:
                    await channel.basic_publish(body, routing_key=QUEUE,
                                                properties=properties)
                except Exception:  # a header value AMQP cannot carry: never sent
                    if channel.is_closed:
                        channel = await connection.channel()
                    continue
                sent += 1
            await connection.close()
            return sent
        return asyncio.run(go())
    return push


@pytest.fixture(params=["memory", "sqlite", "redis", "amqp"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if request.param == "memory":
        app = fuzz_app(f"memory://fuzz-{uuid.uuid4().hex}")
        push = memory_push(app)
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/fuzz.db"
        app = fuzz_app(url)
        push = sqlite_push(url)
    elif request.param == "amqp":
        need_rabbitmq()
        vhost = f"celeriac-fuzz-{uuid.uuid4().hex[:8]}"
        for argv in (["add_vhost", vhost],
                     ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
            subprocess.run(["rabbitmqctl", "-q", *argv], check=True, timeout=60)
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        app = fuzz_app(url)
        push = amqp_push(url)
        cleanup = lambda: subprocess.run(  # noqa: E731
            ["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60) and None
    else:
        need_redis()
        prefix = f"fuzz-{uuid.uuid4().hex[:8]}:"
        app = fuzz_app(REDIS_DB_URL, global_keyprefix=prefix)
        push = redis_push(REDIS_DB_URL, prefix)
        cleanup = lambda: drop_redis_keys(REDIS_DB_URL, prefix)  # noqa: E731
    t = Target(app, push)
    register(t)
    asyncio.run(_with(app, lambda b: b.queue_size(QUEUE)))  # creates the SQLite schema
    try:
        with worker_thread(app, pool="threads", concurrency=4, queues=[QUEUE]) as worker:
            t.worker = worker  # type: ignore[attr-defined]
            yield t
    finally:
        cleanup()


def _known_bad(headers: dict[str, Any], embed: dict[str, Any] | None = None) -> bytes:
    """A well-formed fz.one call with the given headers forced in (for ``@example``)."""
    message = build_task_message("fz.one", (1,), queue=QUEUE, callbacks=None)
    if embed:
        message.body = orjson.dumps([[1], {}, embed])
    message.headers.update(headers)
    message.headers["id"] = f"fz-{uuid.uuid4().hex}"
    return to_envelope(message)


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    ids = [f"fz-{uuid.uuid4().hex}" for _ in range(draw(st.integers(1, 4)))]
    return [(case_id, draw(envelopes(QUEUE, case_id))) for case_id in ids]


@settings(max_examples=25, deadline=None, database=None,
          phases=(Phase.explicit, Phase.generate),  # no shrinking: each try waits
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=batches())
@example(batch=[("fz-retries", _known_bad({"retries": "many"})),
                ("fz-timelimit", _known_bad({"timelimit": 5})),
                ("fz-callbacks", _known_bad({}, {"callbacks": "garbage"}))])
@example(batch=[("fz-eta-overflow",  # an eta UTC cannot hold: never delayed for ever
                 _known_bad({"eta": "9999-12-31T23:59:59.999999-23:59"}))])
@example(batch=[("fz-cut", _known_bad({})[:-1]),  # our own envelopes, broken as JSON
                ("fz-colon", _known_bad({}).replace(b'"lang":', b'"lang"', 1))])
def test_every_bad_message_is_run_once_or_dead_lettered(target: Target,
                                                       batch: list[tuple[str, bytes]]) -> None:
    dead_before = len(target.dead())
    ran_before = len(target.executed)
    pushed = target.push([raw for _, raw in batch])

    def settled() -> bool:
        accounted = len(target.executed) - ran_before + len(target.dead()) - dead_before
        return accounted >= pushed and target.ready() == 0
    try:
        wait_until(settled, 10, "every message to be executed or dead-lettered", 0.02)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {[raw[:300] for _, raw in batch]}") from None
    time.sleep(0.1)  # anything looping would show up as extra runs or letters now
    dead = target.dead()[dead_before:]
    ran = target.executed[ran_before:]
    assert len(ran) + len(dead) == pushed, (ran, [d.reason for d in dead])
    assert len(ran) == len(set(ran)), f"a message ran twice: {ran}"
    assert all(d.reason for d in dead)
    worker = target.worker  # type: ignore[attr-defined]
    assert worker.consumer is not None and not worker._stop.is_set()


def test_worker_still_runs_good_work_after_the_fuzz(target: Target) -> None:
    target.push([b"\x00garbage", b'{"headers": {"task": "fz.one"'])
    result_id = str(uuid.uuid4())

    async def publish(broker: Broker) -> None:
        await broker.publish([build_task_message("fz.one", (1,), task_id=result_id,
                                                 queue=QUEUE)])
    target.run(publish)
    wait_until(lambda: result_id in target.executed, 20, "a good task after bad ones")


CORPUS = [
    b"{this is not json", b"", b"[]", b'{"headers": [], "properties": 3}',
    b'{"body": "%%%", "properties": {"body_encoding": "base64"}, "headers": {"task": "x"}}',
]


def test_cli_worker_survives_the_corpus(sqlite_scenario: Scenario) -> None:
    """A real prefork CLI worker: every corpus message dead-lettered, work goes on."""
    s = sqlite_scenario
    s.worker("-P", "prefork", "-c", "2")
    bad = list(CORPUS)
    for i, headers in enumerate([{"retries": "many"}, {"timelimit": 5}, {"eta": "soon"},
                                 {"task": ["chaos.work"]}, {"expires": {}}]):
        message = build_task_message("chaos.work", (f"b{i}",), queue=s.queue)
        message.headers.update(headers)
        bad.append(to_envelope(message))
    db = sqlite3.connect(sqlite_path(s.broker_url), timeout=30)
    db.executemany("INSERT INTO messages (queue, priority, available_at, envelope) "
                   "VALUES (?, 0, 0, ?)", [(s.queue, raw) for raw in bad])
    db.commit()
    db.close()
    good = s.publish([f"good-{i}" for i in range(5)])
    s.wait_done(good, timeout_s=30)

    async def letters(broker: Broker) -> list[Any]:
        return await broker.dead_letters(1000)

    def dead() -> list[Any]:
        return list(asyncio.run(_with_url(s.broker_url, letters)))
    wait_until(lambda: len(dead()) == len(bad), 20, "the corpus to be dead-lettered")
    assert all(letter.reason for letter in dead())
    assert not any(line.startswith("done b") for line in s.record.read_text().splitlines())
    assert s.workers[0].stop() == 0


async def _with_url(url: str, op: Any) -> Any:
    from celeriac.brokers import create_broker

    broker = create_broker(url)
    await broker.connect()
    try:
        return await op(broker)
    finally:
        await broker.close()
