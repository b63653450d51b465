"""The dashboard's HTTP side on the memory broker (Starlette's TestClient): the page
carries a CSRF token, POSTs without it are refused, actions do what they say on the
broker, auth guards every path, a non-local bind without auth is refused, /metrics
counts from events, and security headers are set."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx2")

from starlette.testclient import TestClient

from celeriac.dashboard.events import QueueEventSource
from celeriac.dashboard.security import Guard, check_bind
from celeriac.dashboard.server import Dashboard
from celeriac.testing import memory_app


def _client(guard: Guard) -> Iterator[tuple[TestClient, Dashboard, Any]]:
    app = memory_app("dash-unit")
    dashboard = Dashboard(app, QueueEventSource(), guard, poll_s=0.05)
    with TestClient(dashboard.asgi()) as client:
        yield client, dashboard, app


@pytest.fixture
def open_dash() -> Iterator[tuple[TestClient, Dashboard, Any]]:
    yield from _client(Guard())


def test_page_csrf_and_a_purge(open_dash: tuple[TestClient, Dashboard, Any],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from celeriac.dashboard import actions

    monkeypatch.setattr(actions, "REPLY_S", 0.2)  # nobody will answer here
    client, dashboard, app = open_dash
    page = client.get("/")
    assert dashboard.guard.csrf_token in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for i in range(3):
        app.send_task("t", (i,), queue="work")
    assert client.post("/api/actions/purge_queue", json={"queue": "work"}).status_code == 403
    bad = client.post("/api/actions/purge_queue", json={"queue": "work"},
                      headers={"X-CSRF-Token": "guess"})
    assert bad.status_code == 403
    headers = {"X-CSRF-Token": dashboard.guard.csrf_token}
    cross = client.post("/api/actions/purge_queue", json={"queue": "work"},
                        headers={**headers, "Origin": "http://evil.example"})
    assert cross.status_code == 403
    done = client.post("/api/actions/purge_queue", json={"queue": "work"}, headers=headers)
    assert done.json() == {"ok": True, "status": 200,
                           "message": "Purged 3 messages from queue work."}
    again = client.post("/api/actions/purge_queue", json={"queue": "work"}, headers=headers)
    assert again.json()["message"] == "Purged 0 messages from queue work."
    revoke = client.post("/api/actions/revoke", json={"task_id": "x", "terminate": True},
                         headers=headers).json()
    # no worker here: the revoke is kept (a worker that gets the task refuses it) and
    # the page says nobody answered; a rate limit changed nothing, and says so
    assert revoke["ok"] is True, revoke
    assert "Revoke and terminate of x sent; no worker answered within 0.2 s" in revoke["message"]
    limit = client.post("/api/actions/rate_limit", json={"task_name": "t", "rate": "5/m"},
                        headers=headers).json()
    assert limit["ok"] is False and limit["status"] == 504, limit
    assert "no worker answered" in limit["message"] and "nothing changed" in limit["message"]
    bad_rate = client.post("/api/actions/rate_limit", json={"task_name": "t", "rate": "x"},
                           headers=headers).json()
    assert bad_rate["status"] == 400
    missing = client.post("/api/actions/purge_queue", json={}, headers=headers).json()
    assert missing["status"] == 400


def test_events_reach_the_api_and_metrics(open_dash: tuple[TestClient, Dashboard, Any]
                                          ) -> None:
    client, dashboard, _ = open_dash
    dashboard.ingest([
        {"type": "worker-heartbeat", "hostname": "w@h", "timestamp": 1e10, "freq": 2.0},
        {"type": "task-received", "uuid": "u1", "name": "add", "args": "('<b>',)",
         "hostname": "w@h", "timestamp": 1e10},
        {"type": "task-succeeded", "uuid": "u1", "runtime": 0.5, "hostname": "w@h",
         "timestamp": 1e10}])
    [task] = client.get("/api/tasks", params={"search": "add"}).json()
    assert task["state"] == "SUCCESS" and task["args"] == "('<b>',)"
    assert client.get("/api/tasks/u1").json()["timeline"][0]["type"] == "task-received"
    assert client.get("/api/tasks/nope").status_code == 404
    metrics = client.get("/metrics").text
    assert 'celeriac_tasks_total{state="SUCCESS",task="add"} 1.0' in metrics
    assert "celeriac_workers 1.0" in metrics
    assert client.get("/api/state").json()["online"] == 1


def test_basic_auth_and_token_guard_every_path() -> None:
    for client, _, _ in _client(Guard(basic_auth="ann:s3cret")):
        for path in ("/", "/api/state", "/metrics", "/static/app.js"):
            assert client.get(path).status_code == 401
        good = base64.b64encode(b"ann:s3cret").decode()
        assert client.get("/api/state", headers={"Authorization": f"Basic {good}"}
                          ).status_code == 200
        wrong = base64.b64encode(b"ann:nope").decode()
        assert client.get("/", headers={"Authorization": f"Basic {wrong}"}
                          ).status_code == 401
    for client, _, _ in _client(Guard(token="tok-123")):
        assert client.get("/api/state").status_code == 401
        assert client.get("/api/state", headers={"Authorization": "Bearer tok-123"}
                          ).status_code == 200
        assert client.get("/", params={"token": "tok-123"}).status_code == 200
        assert client.get("/api/state").status_code == 200  # the cookie it set


def test_non_local_bind_needs_auth_or_insecure() -> None:
    assert check_bind("127.0.0.1", Guard(), False) is None
    assert check_bind("::1", Guard(), False) is None
    assert "refusing" in (check_bind("0.0.0.0", Guard(), False) or "")
    assert check_bind("0.0.0.0", Guard(token="t"), False) is None
    assert check_bind("0.0.0.0", Guard(), True) is None


def test_pool_from_stats_and_worker_replies_in_words() -> None:
    from celeriac.dashboard.actions import _replies
    from celeriac.dashboard.remote import pool_of
    from celeriac.dashboard.state import Fleet

    # Celery 5.7's and celeriac's ``inspect stats`` pool fields
    assert pool_of({"pool": {"implementation": "celery.concurrency.prefork:TaskPool",
                             "max-concurrency": 4}}) == ("prefork", 4)
    assert pool_of({"pool": {"implementation": "celery.concurrency.solo:TaskPool",
                             "max-concurrency": 1}}) == ("solo", 1)
    assert pool_of({"pool": {"implementation": "celeriac.worker.pools:threads",
                             "max-concurrency": 8}}) == ("threads", 8)
    assert pool_of({"pool": "N/A"}) == (None, None)
    assert pool_of(None) == (None, None)
    fleet = Fleet()
    fleet.apply([{"type": "worker-online", "hostname": "w@h", "timestamp": 1e10}])
    before = fleet.version
    fleet.set_pool("w@h", "prefork", 2)
    fleet.set_pool("gone@h", "solo", 1)  # unknown workers are not invented
    assert [(w["pool"], w["concurrency"]) for w in fleet.worker_list()] == [("prefork", 2)]
    assert fleet.version == before + 1
    good, bad = _replies([{"b@h": {"ok": "new rate limit set successfully"}},
                          {"a@h": {"error": "unknown task"}}, "junk"])
    assert good == ["b@h: new rate limit set successfully"]
    assert bad == ["a@h: unknown task"]
