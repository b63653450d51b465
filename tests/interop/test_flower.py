"""A real Flower (2.2, the dev extra's pin) watching celeriac workers, on Redis and RabbitMQ.

Flower is started as operators start it, ``celery -A <a Celery app on the same broker>
flower``, with its REST API open (``FLOWER_UNAUTHENTICATED_API``). It learns about
workers two ways, and both are checked: remote control (``/api/workers?refresh=1``
runs ``inspect stats/active_queues/registered/conf``, and the active/reserved/
scheduled/revoked lists for one named worker) and events (``/api/workers?status=1``
is a worker's liveness from its heartbeats; ``/api/tasks`` is the task history built
from ``task-*`` events).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.interop.conftest import ROOT, Fleet

pytest.importorskip("flower", reason="Flower is in the dev extra")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FlowerAPI:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=20) as reply:
            return json.loads(reply.read())

    def post(self, path: str) -> Any:
        request = urllib.request.Request(self.base + path, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=20) as reply:
            return json.loads(reply.read())

    def page(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=20) as reply:
            assert reply.status == 200
            return str(reply.read().decode())

    def until(self, path: str, check: Callable[[Any], bool], timeout_s: float = 20) -> Any:
        """GET ``path`` until ``check(reply)``; the last reply in the failure."""
        deadline = time.monotonic() + timeout_s
        reply: Any = None
        while True:
            try:
                reply = self.get(path)
                if check(reply):
                    return reply
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"GET {path}: {reply!r}")
            time.sleep(0.3)


@pytest.fixture
def flower(fleet: Fleet) -> Iterator[FlowerAPI]:
    port = free_port()
    log = fleet.tmp_path / "flower.log"
    env = fleet.env("flower", FLOWER_UNAUTHENTICATED_API="true")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A",
                                 "tests.interop.celery_side", "flower", f"--port={port}",
                                 "--address=127.0.0.1", "--inspect_timeout=3000"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    api = FlowerAPI(port)
    try:
        api.until("/api/workers?status=1", lambda r: isinstance(r, dict), 30)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text


def test_flower_lists_a_celeriac_worker_and_its_tasks(fleet: Fleet, flower: FlowerAPI
                                                      ) -> None:
    name = f"celeriac-{uuid.uuid4().hex[:6]}@flower"
    fleet.celeriac_worker("threads", "-n", name, "-E")
    client = fleet.celeriac_client()

    # events: the worker is alive from its worker-online/heartbeats
    flower.until("/api/workers?status=1", lambda r: r.get(name) is True)

    # remote control: what Flower's inspector asks every worker
    workers = flower.until("/api/workers?refresh=1",
                           lambda r: "registered" in r.get(name, {})
                           and "stats" in r.get(name, {}))
    mine = workers[name]
    assert mine["stats"]["pool"]["max-concurrency"] == 2
    assert mine["stats"]["pool"]["implementation"].endswith(":threads")
    assert mine["stats"]["broker"]["transport"] in ("redis", "amqp")
    assert "interop.add" in mine["registered"]
    assert [q["name"] for q in mine["active_queues"]] == [fleet.queue]
    assert isinstance(mine["conf"], dict)

    # tasks from task events, with their states
    ok = client.send_task("interop.add", (2, 3))
    bad = client.send_task("interop.boom")
    assert ok.get(timeout=20) == 5
    with pytest.raises(Exception):  # noqa: B017 - a KeyError from the other side
        bad.get(timeout=20)
    tasks = flower.until("/api/tasks",
                         lambda r: r.get(ok.id, {}).get("state") == "SUCCESS"
                         and r.get(bad.id, {}).get("state") == "FAILURE")
    done = tasks[ok.id]
    assert done["name"] == "interop.add" and done["worker"] == name
    assert done["result"] == "5" and done["args"] == "(2, 3)"
    assert done["received"] and done["started"] and done["succeeded"]
    assert done["runtime"] is not None and done["runtime"] >= 0
    failed = tasks[bad.id]
    assert failed["name"] == "interop.boom" and "KeyError" in failed["exception"]
    info = flower.get(f"/api/task/info/{ok.id}")
    assert info["state"] == "SUCCESS" and info["worker"] == name
    by_state = flower.get("/api/tasks?state=FAILURE")
    assert list(by_state) == [bad.id]

    # the workers page's table (from events): counters per event type, heartbeat fields
    # (active: from the last heartbeat, every 2 s: one after the tasks ended says 0)
    table = flower.until("/workers?json=1",
                         lambda r: any(w["hostname"] == name and w.get("task-failed")
                                       and w.get("active") == 0 for w in r["data"]))
    row = next(w for w in table["data"] if w["hostname"] == name)
    assert row["status"] is True and row["sw_ident"] == "celeriac"
    assert row["task-received"] == 2 and row["task-succeeded"] == 1
    assert row["task-failed"] == 1 and row["active"] == 0 and len(row["loadavg"]) == 3

    # one named worker: Flower also asks for its task lists
    one = flower.until(f"/api/workers?refresh=1&workername={name}",
                       lambda r: "active" in r.get(name, {}) and "revoked" in r[name])
    assert one[name]["active"] == [] and one[name]["scheduled"] == []
    assert isinstance(one[name]["reserved"], list)
    # and its page renders every stats section (pool, broker, totals, rusage)
    html = flower.page(f"/worker/{name}")
    assert "Max concurrency" in html and "Transport" in html and "maxrss" in html
    assert "Processed tasks" in html and "interop.add" in html

    # task_send_sent_event on a celeriac client: Flower shows a task nobody has taken yet
    sender = fleet.celeriac_client(task_send_sent_event=True)
    waiting = sender.send_task("interop.note", ("waiting",), queue=f"{fleet.queue}-idle")
    sent = flower.until("/api/tasks", lambda r: waiting.id in r)[waiting.id]
    assert sent["state"] == "PENDING" and sent["name"] == "interop.note"  # Celery: sent
    assert sent["args"] == "('waiting',)" and sent["sent"] and not sent["received"]
    assert "worker" not in sent  # a client event: Celery keeps no worker for it

    # Flower's revoke (Celery's app.control.revoke): the worker refuses the task when
    # its countdown is due and says so in a task-revoked event
    later = client.send_task("interop.note", ("revoked",), countdown=2)
    assert flower.post(f"/api/task/revoke/{later.id}") == {
        "message": f"Revoked '{later.id}'"}
    flower.until("/api/tasks", lambda r: r.get(later.id, {}).get("state") == "REVOKED")
    assert fleet.records("note revoked") == []
