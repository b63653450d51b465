"""The canvas on the memory broker through the real worker pipeline (``drain``), and
the messages it sends compared with Celery 5.7's (captured shapes)."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, ChordError, GroupResult, chain, chord, group, signature
from celeriac.protocol import parse_task
from celeriac.serialization import accepted_types
from celeriac.testing import drain, memory_app


@pytest.fixture
def app() -> Celery:
    app = memory_app()
    calls: list[str] = []
    app.calls = calls  # type: ignore[attr-defined]

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.tsum")
    def tsum(xs: list[int]) -> int:
        calls.append(f"tsum {xs}")
        return sum(xs)

    @app.task(name="t.boom")
    def boom(x: int) -> int:
        raise ValueError(x)

    @app.task(name="t.errback")
    def errback(task_id: str) -> None:
        calls.append(f"errback {task_id}")

    return app


def _add(app: Celery, *args: Any) -> Any:
    return signature("t.add", args, app=app)


def _sent(app: Celery) -> list[Any]:
    """Every message waiting in the app's default queue, parsed (and left there)."""
    from celeriac.brokers.memory import MemoryBroker

    async def peek() -> list[Any]:
        broker = await app.clients.broker()
        assert isinstance(broker, MemoryBroker)
        deliveries = await broker.fetch([app.conf.task_default_queue], 1000, 0)
        await broker.requeue(deliveries)
        return [parse_task(d.message, accepted_types(["json"])) for d in deliveries]

    return app.run_sync(peek())


def test_group_returns_values_in_order(app: Celery) -> None:
    result = group(_add(app, i, i) for i in range(5)).apply_async()
    assert isinstance(result, GroupResult)
    drain(app)
    assert result.get(timeout=2) == [0, 2, 4, 6, 8]
    assert result.ready() and result.successful() and result.completed_count() == 5


def test_chord_body_gets_header_results_once(app: Celery) -> None:
    result = chord([_add(app, 1, 2), _add(app, 3, 4)], signature("t.tsum", app=app))()
    drain(app)
    assert result.get(timeout=2) == 10
    assert app.calls == ["tsum [3, 7]"]  # type: ignore[attr-defined]
    assert isinstance(result.parent, GroupResult)


def test_empty_chord_calls_the_body_with_an_empty_list(app: Celery) -> None:
    result = chord([], signature("t.tsum", app=app)).apply_async()
    drain(app)
    assert result.get(timeout=2) == 0


def test_group_then_task_is_a_chord_and_chord_in_chain(app: Celery) -> None:
    tsum = signature("t.tsum", app=app)
    canvas = _add(app, 1, 1) | group(_add(app, 10), _add(app, 20)) | tsum | _add(app, 100)
    result = canvas.apply_async()
    drain(app)
    assert result.get(timeout=2) == 12 + 22 + 100


def test_group_of_chain_and_chord(app: Celery) -> None:
    tsum = signature("t.tsum", app=app)
    result = group([_add(app, 1, 2) | _add(app, 3), chord([_add(app, 1, 1)], tsum)])()
    drain(app)
    assert result.get(timeout=2) == [6, 2]


def test_map_starmap_chunks(app: Celery) -> None:
    add = app.tasks["t.add"]
    chunked = add.chunks([(1, 2), (3, 4), (5, 6)], 2).apply_async()
    starmapped = add.starmap([(1, 2), (3, 4)]).apply_async()
    drain(app)
    assert chunked.get(timeout=2) == [[3, 7], [11]]
    assert starmapped.get(timeout=2) == [3, 7]


def test_failing_header_fails_the_body_and_calls_its_errback_once(app: Celery) -> None:
    body = signature("t.tsum", app=app)
    body.link_error(signature("t.errback", app=app))
    result = chord([_add(app, 1, 1), signature("t.boom", (2,), app=app)], body)()
    drain(app, raise_errors=False)
    with pytest.raises(ChordError, match="ValueError"):
        result.get(timeout=2)
    assert app.calls == [f"errback {result.id}"]  # type: ignore[attr-defined]


def test_eager_group_and_chord() -> None:
    app = memory_app(task_always_eager=True)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.tsum")
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    assert group(add.s(1, 1), add.s(2, 2)).apply_async().get() == [2, 4]
    assert chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async().get() == 6


def test_chord_messages_have_celerys_shape(app: Celery) -> None:
    """As captured from Celery 5.7: each header task names the group and its index, and
    carries the body frozen with its task id, reply_to and group_id."""
    result = chord([_add(app, 1, 2), _add(app, 3, 4)], signature("t.tsum", app=app))()
    calls = _sent(app)
    gid = result.parent.id
    assert [c.headers["group"] for c in calls] == [gid, gid]
    assert [c.headers["group_index"] for c in calls] == [0, 1]
    body = calls[0].chord
    assert body is not None and calls[1].chord == body
    assert set(body) == {"task", "args", "kwargs", "options", "subtask_type", "immutable"}
    assert body["task"] == "t.tsum" and body["subtask_type"] is None
    assert set(body["options"]) == {"task_id", "reply_to", "group_id"}
    assert body["options"]["task_id"] == result.id
    assert body["options"]["group_id"] == gid


def test_chain_step_that_is_a_chord_has_celerys_shape(app: Celery) -> None:
    tsum = signature("t.tsum", app=app)
    (_add(app, 1, 1) | group(_add(app, 10), _add(app, 20)) | tsum).apply_async()
    [first] = _sent(app)
    [step] = first.chain or []
    assert step["task"] == "celery.chord" and step["subtask_type"] == "chord"
    header = step["kwargs"]["header"]
    assert header["task"] == "celery.group" and header["subtask_type"] == "group"
    assert set(header["options"]) == {"task_id", "root_id", "parent_id"}
    assert step["options"] == {"task_id": header["options"]["task_id"]}
    for index, member in enumerate(header["kwargs"]["tasks"]):
        assert set(member["options"]) == {"task_id", "reply_to", "group_index"}
        assert member["options"]["group_index"] == index


def test_chain_returns_the_last_result_with_parents(app: Celery) -> None:
    result = chain(_add(app, 1, 1), _add(app, 1), _add(app, 1)).apply_async()
    drain(app)
    assert result.get(timeout=2) == 4
    assert result.parent.get(timeout=2) == 3
    assert result.parent.parent.get(timeout=2) == 2


def test_group_result_save_restore_delete(app: Celery) -> None:
    result = group(_add(app, 1, 1), _add(app, 2, 2))()
    drain(app)
    result.save()
    restored = GroupResult.restore(str(result.id), app=app)
    assert restored is not None and restored == result
    assert restored.get(timeout=2) == [2, 4]
    result.delete()
    assert GroupResult.restore(str(result.id), app=app) is None


def test_signature_options_and_links(app: Celery) -> None:
    sig = _add(app, 1).set(countdown=5, queue="q")
    assert sig.options == {"countdown": 5, "queue": "q"}
    clone = sig.clone((2,), priority=3)
    assert clone.args == [2, 1] and clone.options["priority"] == 3
    assert "priority" not in sig.options
    sig.set_immutable(True)
    assert sig.clone((9,)).args == [1]
    errback = signature("t.errback", app=app)
    assert sig.on_error(errback) is sig and sig.options["link_error"] == [errback]
    frozen = sig.freeze()
    assert sig.id == frozen.id
    assert _add(app, 2, 3).apply().get() == 5


def test_rpc_backend_refuses_chords() -> None:
    app = Celery("rpc", broker="memory://", backend="rpc://", set_as_current=False)
    with pytest.raises(NotImplementedError, match="rpc"):
        chord([signature("t.add", (1, 1), app=app)], signature("t.tsum", app=app))()
