"""celeriac.signals: the publish signals, eager runs, and the Signal API as Celery's."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import signals
from celeriac.testing import drain, memory_app


@pytest.fixture
def seen() -> Any:
    got: list[tuple[str, Any, dict[str, Any]]] = []
    receivers = []
    for name in ("before_task_publish", "after_task_publish", "task_prerun",
                 "task_success", "task_postrun", "task_failure"):
        def receiver(sender: Any = None, _name: str = name, **kw: Any) -> None:
            got.append((_name, sender, kw))
        getattr(signals, name).connect(receiver)
        receivers.append((name, receiver))
    yield got
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def test_before_task_publish_may_add_headers_the_worker_sees(seen: Any) -> None:
    app = memory_app("publish-signals")

    @signals.before_task_publish.connect
    def add_trace(sender: Any = None, headers: Any = None, **kw: Any) -> None:
        headers["x-trace"] = f"trace-for-{sender}"

    @app.task(name="sig.traced", bind=True)
    def traced(self: Any, x: int) -> Any:
        return self.request.headers.get("x-trace") if self.request.headers else None

    try:
        result = traced.delay(1)
        before = [kw for name, sender, kw in seen if name == "before_task_publish"]
        after = [sender for name, sender, kw in seen if name == "after_task_publish"]
        assert before and before[0]["body"][0] == [1]  # (args, kwargs, embed)
        assert before[0]["routing_key"] == "celery"
        assert after == ["sig.traced"]
        drain(app)
        assert result.get(timeout=5) == "trace-for-sig.traced"
    finally:
        signals.before_task_publish.disconnect(add_trace)


def test_eager_apply_sends_the_run_signals_in_celery_order(seen: Any) -> None:
    app = memory_app("eager-signals")

    @app.task(name="sig.eager")
    def eager(x: int) -> int:
        return x + 1

    eager.apply((1,))
    assert [n for n, _, _ in seen] == ["task_prerun", "task_success", "task_postrun"]
    postrun = seen[-1][2]
    assert postrun["retval"] == 2 and postrun["state"] == "SUCCESS"


def test_connect_with_a_sender_only_hears_that_sender() -> None:
    heard: list[Any] = []
    signal = signals.task_success

    @signal.connect(sender="only-me")
    def picky(sender: Any = None, **kw: Any) -> None:
        heard.append(sender)

    try:
        signal.send("someone-else", result=1)
        signal.send("only-me", result=2)
        assert heard == ["only-me"]
    finally:
        signal.disconnect(picky, sender="only-me")
