"""The dashboard's model: events folded into workers and a bounded task history, in
Celery's state names; an older event cannot move a finished task back; offline when
heartbeats stop or worker-offline says so; kombu's envelopes decoded."""

from __future__ import annotations

import base64
import json
import time

from celeriac.dashboard.events import decode_body, decode_kombu_envelope
from celeriac.dashboard.state import Fleet


def ev(kind: str, **fields: object) -> dict[str, object]:
    return {"type": kind, "hostname": "w1@h", "timestamp": time.time(), **fields}


def test_task_lifecycle_timeline_and_final_state_kept() -> None:
    fleet = Fleet()
    fleet.apply([ev("task-received", uuid="a", name="add", args="(1, 2)", kwargs="{}"),
                 ev("task-started", uuid="a"),
                 ev("task-succeeded", uuid="a", result="3", runtime=0.25),
                 ev("task-started", uuid="a")])  # late, out of order: ignored for state
    detail = fleet.task_detail("a")
    assert detail is not None
    assert detail["state"] == "SUCCESS" and detail["result"] == "3"
    assert [e["type"] for e in detail["timeline"]] == [
        "task-received", "task-started", "task-succeeded", "task-started"]
    assert fleet.counts() == {"SUCCESS": 1}
    charts = fleet.charts()
    assert charts["names"] == ["add"] and sum(charts["throughput"]["add"]) == 1 / 5
    assert 0.25 in charts["runtime"]["add"]


def test_history_is_bounded_oldest_first() -> None:
    fleet = Fleet(max_tasks=100)
    fleet.apply([ev("task-received", uuid=f"t{i}", name="n") for i in range(250)])
    assert len(fleet.tasks) == 100
    assert next(iter(fleet.tasks)) == "t150" and fleet.task_detail("t0") is None


def test_search_and_state_filter() -> None:
    fleet = Fleet()
    fleet.apply([ev("task-received", uuid="a", name="mail.send", args="('bob@x',)"),
                 ev("task-failed", uuid="a", exception="KeyError()"),
                 ev("task-received", uuid="b", name="img.resize", args="(640,)")])
    assert [t["uuid"] for t in fleet.task_list(search="BOB")] == ["a"]
    assert [t["uuid"] for t in fleet.task_list(state="RECEIVED")] == ["b"]
    assert [t["uuid"] for t in fleet.task_list()] == ["b", "a"]  # newest first


def test_workers_online_offline_and_heartbeat_expiry() -> None:
    fleet = Fleet()
    fleet.apply([ev("worker-online", freq=2.0, active=1, processed=7,
                    loadavg=[0.5, 0.4, 0.3], sw_ident="celeriac", sw_ver="0.1")])
    [w] = fleet.worker_list()
    assert w["online"] and w["processed"] == 7 and w["sw"] == "celeriac 0.1"
    fleet.apply([{**ev("worker-heartbeat", freq=2.0), "hostname": "w2@h",
                  "timestamp": time.time() - 30}])  # heard from 30 s ago: gone
    fleet.apply([ev("worker-offline")])
    assert {w["hostname"]: w["online"] for w in fleet.worker_list()} == {
        "w1@h": False, "w2@h": False}
    assert fleet.online_workers() == 0


def test_event_bodies_and_kombu_envelopes() -> None:
    events = [ev("task-started", uuid="x")]
    body = json.dumps(events).encode()
    assert decode_body(body) == events
    assert decode_body(json.dumps(events[0])) == events
    assert decode_body(b"[1, {\"no\": \"type\"}]") == [] and decode_body(b"\xff") == []
    envelope = {"body": base64.b64encode(body).decode(), "content-type": "application/json",
                "properties": {"body_encoding": "base64"}, "headers": {}}
    assert decode_kombu_envelope(json.dumps(envelope)) == events
    plain = {"body": body.decode(), "properties": {}}
    assert decode_kombu_envelope(json.dumps(plain)) == events
    assert decode_kombu_envelope(b"{\"body\": 3}") == []
