"""The canvas from inside a running task, through the real worker pipeline (``drain``):
``Task.replace`` (alone, in a chain, in a chord's header, with a group), ``add_to_chord``,
``request.group/group_index/chord``, and the rule that ``get()`` inside a task raises
unless ``allow_join_result()`` or ``disable_sync_subtasks=False``."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, signature
from celeriac.errors import ImproperlyConfigured, TimeoutError
from celeriac.result import AsyncResult, allow_join_result, denied_join_result
from celeriac.testing import drain, memory_app


@pytest.fixture
def app() -> Celery:
    app = memory_app()
    seen: list[Any] = []
    app.seen = seen  # type: ignore[attr-defined]

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.collect")
    def collect(xs: list[Any]) -> list[Any]:
        seen.append(("collect", xs))
        return xs

    @app.task(name="t.rep", bind=True)
    def rep(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 100))

    @app.task(name="t.rep_group", bind=True)
    def rep_group(self: Any, n: int) -> Any:
        return self.replace(group(add.s(i, i) for i in range(n)))

    @app.task(name="t.rep_chain", bind=True)
    def rep_chain(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 1) | add.s(1000))

    @app.task(name="t.grow", bind=True)
    def grow(self: Any, x: int) -> int:
        self.add_to_chord(add.s(x, 1000))
        return x

    @app.task(name="t.where", bind=True)
    def where(self: Any, x: int) -> int:
        r = self.request
        seen.append(("where", x, r.group, r.group_index, (r.chord or {}).get("task")))
        return x

    @app.task(name="t.waits", bind=True)
    def waits(self: Any, how: str) -> str:
        return _wait_inside(self.app, how)

    return app


def _wait_inside(app: Celery, how: str) -> str:
    """What waiting for another task does inside a task, asked ``how``."""
    other = AsyncResult("never-sent", app=app)
    try:
        if how == "plain":
            other.get(timeout=0.05)
        elif how == "allowed":
            with allow_join_result():
                other.get(timeout=0.05)
        elif how == "denied":
            with allow_join_result(), denied_join_result():
                other.get(timeout=0.05)
        elif how == "flag":
            other.get(timeout=0.05, disable_sync_subtasks=False)
        elif how == "group":
            app.GroupResult("g", [other]).join(timeout=0.05)
    except RuntimeError as exc:
        return f"RuntimeError: {exc}"
    except TimeoutError:
        return "waited"
    return "returned"


def _sig(app: Celery, name: str, *args: Any) -> Any:
    return signature(name, args, app=app)


def test_replace_with_a_task_keeps_the_callers_result(app: Celery) -> None:
    result = _sig(app, "t.rep", 1).delay()
    drain(app)
    assert result.get(timeout=1) == 101
    assert result.state == "SUCCESS"


def test_replace_in_a_chain_continues_the_chain(app: Celery) -> None:
    result = chain(_sig(app, "t.rep", 1), _sig(app, "t.add", 10)).apply_async()
    drain(app)
    assert result.get(timeout=1) == 111
    assert result.parent.get(timeout=1) == 101  # the replaced step's id holds its value


def test_replace_with_a_chain(app: Celery) -> None:
    result = chain(_sig(app, "t.rep_chain", 1), _sig(app, "t.add", 1)).apply_async()
    drain(app)
    assert result.get(timeout=1) == 1003


def test_replace_inside_a_chord_header(app: Celery) -> None:
    result = chord([_sig(app, "t.rep", 1), _sig(app, "t.add", 2, 2)],
                   _sig(app, "t.collect"))()
    drain(app)
    assert result.get(timeout=1) == [101, 4]
    assert app.seen == [("collect", [101, 4])]  # type: ignore[attr-defined]


def test_replace_with_a_group_inside_a_chord(app: Celery) -> None:
    """A group replacing a header task becomes one part: the list of its results."""
    result = chord([_sig(app, "t.rep_group", 3), _sig(app, "t.add", 2, 2)],
                   _sig(app, "t.collect"))()
    drain(app)
    assert result.get(timeout=1) == [[0, 2, 4], 4]
    assert len(app.seen) == 1  # type: ignore[attr-defined]


def test_replace_keeps_link(app: Celery) -> None:
    sig = _sig(app, "t.rep", 1)
    sig.link(_sig(app, "t.collect"))
    sig.delay()
    drain(app)
    assert app.seen == [("collect", 101)]  # type: ignore[attr-defined]


def test_replace_eagerly_returns_the_value() -> None:
    app = memory_app(task_always_eager=True)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.rep", bind=True)
    def rep(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 100))

    assert rep.delay(1).get() == 101


def test_replace_refuses_a_signature_in_a_chord(app: Celery) -> None:
    @app.task(name="t.bad", bind=True)
    def bad(self: Any) -> Any:
        return self.replace(signature("t.add", (1, 2), app=app).set(chord={"task": "x"}))

    result = bad.delay()
    drain(app, raise_errors=False)
    with pytest.raises(ImproperlyConfigured, match="must not be part of a chord"):
        result.get(timeout=1)


def test_add_to_chord_makes_the_body_wait(app: Celery) -> None:
    result = chord([_sig(app, "t.grow", 1), _sig(app, "t.add", 2, 2)],
                   _sig(app, "t.collect"))()
    drain(app)
    values = result.get(timeout=1)
    assert sorted(values) == [1, 4, 1001] and values[-1] == 4  # added after its index


def test_add_to_chord_outside_a_chord_raises(app: Celery) -> None:
    result = _sig(app, "t.grow", 1).delay()
    drain(app, raise_errors=False)
    with pytest.raises(ValueError, match="not member of any chord"):
        result.get(timeout=1)


def test_request_group_index_and_chord(app: Celery) -> None:
    chord([_sig(app, "t.where", 0), _sig(app, "t.where", 1)], _sig(app, "t.collect"))()
    _sig(app, "t.where", 9).delay()
    drain(app)
    seen = {s[1]: s for s in app.seen if s[0] == "where"}  # type: ignore[attr-defined]
    assert seen[0][3:] == (0, "t.collect") and seen[1][3:] == (1, "t.collect")
    assert seen[0][2] == seen[1][2] is not None
    assert seen[9][2:] == (None, None, None)


@pytest.mark.parametrize(("how", "expected"), [
    ("plain", "RuntimeError: Never call result.get() within a task!"),
    ("allowed", "waited"),
    ("denied", "RuntimeError: Never call result.get() within a task!"),
    ("flag", "waited"),
    ("group", "RuntimeError: Never call result.get() within a task!"),
])
def test_get_inside_a_task(app: Celery, how: str, expected: str) -> None:
    result = _sig(app, "t.waits", how).delay()
    drain(app)
    assert str(result.get(timeout=1)).startswith(expected)


def test_get_outside_a_task_and_eagerly_is_allowed() -> None:
    app = memory_app(task_always_eager=True)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.outer")
    def outer() -> int:
        return add.delay(1, 2).get()  # eager: an EagerResult, no wait

    assert outer.delay().get() == 3
