"""``celeriac events``: the --dump lines are Celery's own Dumper's lines for the same
events; the live view's model (workers online/offline, task states, bounds); the
receiver's decoding and timestamp rule."""

from __future__ import annotations

import io
import time
from typing import Any

import orjson
import pytest

from celeriac.events.dump import Dumper
from celeriac.events.event import event, event_message, worker_fields
from celeriac.events.receiver import decode, localize
from celeriac.events.view import Monitor
from celeriac.protocol import Message

T0 = 1_700_000_000.25


def sample_events() -> list[dict[str, Any]]:
    w = "w1@host"
    return [
        {**event("worker-online", w, 1, **worker_fields(2.0, 0, 0)), "timestamp": T0},
        {**event("task-sent", "gen1@host", 2, uuid="id-1", name="t.add", args="(2, 3)",
                 kwargs="{}", retries=0, eta=None, expires=None, queue="celery",
                 exchange="", routing_key="celery", root_id="id-1", parent_id=None),
         "timestamp": T0 + 0.1},
        {**event("task-received", w, 3, uuid="id-1", name="t.add", args="(2, 3)",
                 kwargs="{}", retries=0, eta=None, expires=None, root_id="id-1",
                 parent_id=None), "timestamp": T0 + 0.2},
        {**event("task-started", w, 4, uuid="id-1"), "timestamp": T0 + 0.3},
        {**event("task-succeeded", w, 5, uuid="id-1", result="5", runtime=0.01),
         "timestamp": T0 + 0.4},
        {**event("task-failed", w, 6, uuid="id-2", exception="KeyError('x')",
                 traceback="..."), "timestamp": T0 + 0.5},
        {**event("worker-heartbeat", w, 7, **worker_fields(2.0, 1, 1)),
         "timestamp": T0 + 2},
        {**event("worker-offline", w, 8, **worker_fields(2.0, 0, 2)), "timestamp": T0 + 3},
    ]


def test_dump_lines_are_celerys() -> None:
    from celery.events import dumper as celery_dumper

    celery_dumper.TASK_NAMES.clear()
    out = io.StringIO()
    theirs = celery_dumper.Dumper(out=out)
    ours = Dumper()
    mine = []
    for ev in sample_events():
        theirs.on_event(dict(ev))
        mine.append(ours.line(ev))
    assert out.getvalue().splitlines() == mine
    assert mine[0].startswith("w1@host [2023-11-14 22:13:20.250000+00:00] started: active=0")
    assert "task succeeded: t.add(id-1) args=(2, 3) kwargs={}" in mine[4]
    assert mine[7].startswith("w1@host [") and "] shutdown: " in mine[7]


def test_monitor_workers_tasks_and_states() -> None:
    monitor = Monitor(max_tasks=10)
    monitor.apply(sample_events()[:6])
    now = T0 + 1
    assert monitor.workers["w1@host"].alive(now)
    done = monitor.tasks["id-1"]
    assert (done.state, done.name, done.worker, done.runtime) == ("SUCCESS", "t.add",
                                                                  "w1@host", 0.01)
    assert monitor.tasks["id-2"].state == "FAILURE"
    # a late task-started does not reopen a finished task
    monitor.apply([{**event("task-started", "w1@host", 9, uuid="id-1"), "timestamp": now}])
    assert monitor.tasks["id-1"].state == "SUCCESS"
    screen = monitor.render("title", now=now)
    assert "WORKERS  1 online, 0 offline" in screen
    assert "FAILURE 1  SUCCESS 1" in screen
    lines = screen.splitlines()
    rows = [line for line in lines if "id-1" in line or "id-2" in line]
    assert "id-1" in rows[0]  # the most recently updated first
    assert "SUCCESS" in rows[0] and "-> 5" in rows[0] and "0.010s" in rows[0]
    assert "KeyError('x')" in rows[1]
    # heartbeats stop: offline after twice the interval; worker-offline: at once
    assert not monitor.workers["w1@host"].alive(T0 + 5)
    monitor.apply(sample_events()[6:])
    assert not monitor.workers["w1@host"].alive(T0 + 3.1)
    assert "0 online, 1 offline" in monitor.render("t", now=T0 + 3.1)


def test_monitor_keeps_at_most_max_tasks() -> None:
    monitor = Monitor(max_tasks=5)
    monitor.apply([event("task-received", "w", i, uuid=f"t{i}", name="n") for i in
                   range(20)])
    assert list(monitor.tasks) == [f"t{i}" for i in range(15, 20)]
    screen = monitor.render("t", rows=3)
    assert "TASKS  5 seen  RECEIVED 5" in screen
    assert [line.split()[0] for line in screen.splitlines() if line.startswith("  t1")] \
        == ["t19", "t18", "t17"]


def test_decode_takes_lists_and_skips_what_is_not_events() -> None:
    one = event_message(event("worker-heartbeat", "w", 1), "w")
    many = event_message([event("task-started", "w", 1, uuid="a"),
                          event("task-started", "w", 2, uuid="b")], "w")
    assert [e["type"] for e in decode(one)] == ["worker-heartbeat"]
    assert [e["uuid"] for e in decode(many)] == ["a", "b"]
    assert decode(Message({}, b"not json", content_type="application/json")) == []
    assert decode(Message({}, orjson.dumps([1, {"no": "type"}]))) == []
    assert decode(Message({}, b"\x80", content_type="application/x-python-serialize")) == []


@pytest.mark.parametrize(("theirs", "ours", "shift"), [(0, 0, 0), (-2, 0, 7200),
                                                      (5, -1, -21600)])
def test_localize_moves_timestamps_as_celery(theirs: int, ours: int, shift: int) -> None:
    from celery.utils.time import adjust_timestamp

    ev = localize({"type": "x", "utcoffset": theirs, "timestamp": T0}, here=ours)
    assert ev["timestamp"] == T0 + shift
    assert ev["timestamp"] == adjust_timestamp(T0, theirs, here=lambda: ours)
    assert abs(ev["local_received"] - time.time()) < 60
