"""Signal (celeriac.utils.dispatch) and the app hooks beat users connect to."""

from __future__ import annotations

import datetime as dt
import gc
import logging
from typing import Any

import pytest

from celeriac import Celery
from celeriac.schedules import crontab
from celeriac.utils.dispatch import Signal


def test_connect_as_decorator_bare_and_with_sender() -> None:
    sig = Signal("test")
    a, b = object(), object()
    calls: list[tuple[str, Any, Any]] = []

    @sig.connect
    def everyone(sender: Any, **kw: Any) -> str:
        calls.append(("everyone", sender, kw.get("x")))
        return "e"

    @sig.connect(sender=a)
    def only_a(sender: Any, **kw: Any) -> None:
        calls.append(("only_a", sender, kw.get("x")))

    results = sig.send(sender=b, x=1)
    assert calls == [("everyone", b, 1)]
    assert results == [(everyone, "e")]
    sig.send(sender=a, x=2)
    assert calls[1:] == [("everyone", a, 2), ("only_a", a, 2)]


def test_connect_twice_is_once_and_disconnect() -> None:
    sig = Signal("test")
    seen: list[int] = []

    def receiver(**kw: Any) -> None:
        seen.append(1)

    sig.connect(receiver)
    sig.connect(receiver)
    sig.send(sender=None)
    assert seen == [1]
    assert sig.disconnect(receiver)
    sig.send(sender=None)
    assert seen == [1]


def test_weak_receivers_go_away_strong_ones_stay() -> None:
    sig = Signal("test")
    seen: list[str] = []

    def make(tag: str) -> Any:
        def receiver(**kw: Any) -> None:
            seen.append(tag)
        return receiver

    sig.connect(make("weak"))
    sig.connect(make("strong"), weak=False)
    gc.collect()
    sig.send(sender=None)
    assert seen == ["strong"]


def test_a_raising_receiver_is_logged_and_the_rest_run(caplog: pytest.LogCaptureFixture) -> None:
    sig = Signal("test")
    seen: list[str] = []

    @sig.connect
    def bad(**kw: Any) -> None:
        raise RuntimeError("boom")

    @sig.connect
    def good(**kw: Any) -> None:
        seen.append("good")

    with caplog.at_level(logging.ERROR, logger="celeriac.signals"):
        results = sig.send(sender=None)
    assert seen == ["good"]
    assert isinstance(results[0][1], RuntimeError)
    assert "boom" in caplog.text


def test_app_hooks_and_add_periodic_task() -> None:
    app = Celery("hooks", broker="memory://", set_as_current=False)
    order: list[str] = []

    @app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.on_after_configure.connect
    def setup(sender: Celery, **kw: Any) -> None:
        order.append("configure")
        sender.add_periodic_task(10.0, add.s(2, 2), name="add every 10")
        sender.add_periodic_task(crontab(minute=0, hour=7), add.s(1, 1), queue="q1")

    @app.on_after_finalize.connect(weak=False)
    def after(sender: Celery, **kw: Any) -> None:
        order.append("finalize")

    app.finalize()
    app.finalize()  # once
    assert order == ["configure", "finalize"]
    entries = app.conf.beat_schedule
    assert entries["add every 10"] == {"schedule": 10.0, "task": "tasks.add",
                                       "args": (2, 2), "kwargs": {}, "options": {}}
    unnamed = entries["tasks.add(1, 1)"]
    assert unnamed["options"] == {"queue": "q1"}
    assert unnamed["schedule"] == crontab(minute=0, hour=7)
    assert app.now().tzinfo is not None
    assert app.now() - dt.datetime.now(dt.UTC) < dt.timedelta(seconds=5)


def test_on_after_fork_is_sent_in_the_child() -> None:
    import os

    app = Celery("fork-hook", broker="memory://", set_as_current=False)
    read, write = os.pipe()

    @app.on_after_fork.connect(weak=False)
    def forked(sender: Celery, **kw: Any) -> None:
        os.write(write, b"x" if sender is app else b"?")

    pid = os.fork()
    if pid == 0:  # the child: the hook ran at fork; leave at once
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    assert os.read(read, 10) == b"x"
    os.close(read)
