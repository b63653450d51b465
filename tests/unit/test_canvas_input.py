"""Bad canvas input fails at send time with a clear error, before anything is sent; what
cannot be known then (a header whose size never comes) is logged by the worker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from celeriac import Celery, chord, chords, group, signature
from celeriac.protocol import build_task_message, parse_task
from celeriac.serialization import accepted_types
from celeriac.testing import drain, memory_app


@pytest.fixture
def app() -> Celery:
    app = memory_app()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.tsum")
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    return app


def _add(app: Celery, *args: Any) -> Any:
    return signature("t.add", args, app=app)


def _queued(app: Celery) -> int:
    from celeriac.brokers.memory import MemoryBroker

    async def count() -> int:
        broker = await app.clients.broker()
        assert isinstance(broker, MemoryBroker)
        deliveries = await broker.fetch([app.conf.task_default_queue], 1000, 0)
        await broker.requeue(deliveries)
        return len(deliveries)

    return app.run_sync(count())


@pytest.mark.parametrize("header", ["abc", b"abc", 5, None])
def test_a_header_that_is_not_signatures(app: Celery, header: Any) -> None:
    with pytest.raises(TypeError, match="chord's header must be a group or a list"):
        chord(header, signature("t.tsum", app=app))


def test_header_members_must_be_signatures(app: Celery) -> None:
    with pytest.raises(TypeError, match=r"chord header members must be signatures.*int: 1"):
        chord([_add(app, 1, 1), 1], signature("t.tsum", app=app))
    with pytest.raises(TypeError, match="group members must be signatures"):
        group([_add(app, 1, 1), object()])
    with pytest.raises(TypeError, match="not a string"):
        group("t.add")


def test_one_signature_or_a_chain_as_header_as_celery_reads_them(app: Celery) -> None:
    one = chord(_add(app, 1, 1), signature("t.tsum", app=app))()
    steps = chord(_add(app, 1, 1) | _add(app, 2, 2), signature("t.tsum", app=app))()
    drain(app)
    assert one.get(timeout=1) == 2
    assert steps.get(timeout=1) == 6  # Celery: a chain's steps become the header


def test_a_chord_without_a_body(app: Celery) -> None:
    with pytest.raises(TypeError, match="a chord needs a body"):
        chord([_add(app, 1, 1)])()
    assert _queued(app) == 0


def test_a_group_id_a_saved_group_has(app: Celery) -> None:
    saved = group([_add(app, 1, 1)])()
    saved.save()
    drain(app)
    with pytest.raises(ValueError, match="already in use by a saved group"):
        group([_add(app, 2, 2)]).apply_async(task_id=saved.id)
    header = group([_add(app, 2, 2), _add(app, 3, 3)], task_id=saved.id)
    with pytest.raises(ValueError, match="already in use by a saved group"):
        chord(header, signature("t.tsum", app=app))()
    assert _queued(app) == 0  # refused before any member was sent
    fresh = group([_add(app, 2, 2)]).apply_async(task_id="a-new-id")
    drain(app)
    assert fresh.get(timeout=1) == [4]


def test_a_size_that_never_comes_is_logged(app: Celery,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A header part whose chord's size was never recorded (its sender died first, or
    sent it without): after result_chord_join_timeout the worker logs an error."""
    app.conf.result_chord_join_timeout = 0.1
    body = signature("t.tsum", app=app)
    body.freeze(group_id="lost-gid")
    message = build_task_message("t.add", (1, 1), group_id="lost-gid", group_index=0,
                                 chord=dict(body))
    call = parse_task(message, accepted_types(["json"]))

    async def run() -> None:
        backend = await app.clients.backend()
        await chords.on_task_done(app, backend, call, "SUCCESS", 2)
        await asyncio.sleep(0.4)

    with caplog.at_level(logging.ERROR, logger="celeriac.chords"):
        app.run_sync(run())
    assert "the header's size was not recorded after 0.1s" in caplog.text


def test_a_recorded_size_is_not_logged(app: Celery, caplog: pytest.LogCaptureFixture) -> None:
    app.conf.result_chord_join_timeout = 0.1
    body = signature("t.tsum", app=app)
    body.freeze(group_id="late-gid")
    message = build_task_message("t.add", (1, 1), group_id="late-gid", group_index=0,
                                 chord=dict(body))
    call = parse_task(message, accepted_types(["json"]))

    async def run() -> None:
        backend = await app.clients.backend()
        await chords.on_task_done(app, backend, call, "SUCCESS", 2)
        join = chords.join_for(backend, app)
        assert join is not None
        await join.set_size("late-gid", 2)  # Celery's client writes it before the last
        await asyncio.sleep(0.4)

    with caplog.at_level(logging.ERROR, logger="celeriac.chords"):
        app.run_sync(run())
    assert "not recorded" not in caplog.text


def test_a_group_is_published_in_batches(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group of 2,500 goes to the broker in three publishes (1,000 per round trip),
    each member with its own id and group_index; a chord's header likewise."""
    from celeriac.brokers.memory import MemoryBroker

    sizes: list[int] = []
    publish = MemoryBroker.publish

    async def counting(self: MemoryBroker, messages: Any) -> Any:
        sizes.append(len(list(messages)))
        return await publish(self, messages)

    monkeypatch.setattr(MemoryBroker, "publish", counting)
    result = group(_add(app, i, i) for i in range(2500))()
    assert sizes == [1000, 1000, 500]
    calls = sorted((c.headers["group_index"], c.args) for c in _parsed(app))
    assert calls == [(i, [i, i]) for i in range(2500)]
    assert {c.headers["group"] for c in _parsed(app)} == {result.id}
    drain(app)
    assert result.get(timeout=5) == [2 * i for i in range(2500)]
    sizes.clear()
    total = chord([_add(app, i, i) for i in range(1500)], signature("t.tsum", app=app))()
    assert sizes == [1000, 500]
    drain(app)
    assert total.get(timeout=5) == sum(2 * i for i in range(1500))


def _parsed(app: Celery) -> list[Any]:
    from celeriac.brokers.memory import MemoryBroker

    async def peek() -> list[Any]:
        broker = await app.clients.broker()
        assert isinstance(broker, MemoryBroker)
        deliveries = await broker.fetch([app.conf.task_default_queue], 10_000, 0)
        await broker.requeue(deliveries)
        return [parse_task(d.message, accepted_types(["json"])) for d in deliveries]

    return app.run_sync(peek())
