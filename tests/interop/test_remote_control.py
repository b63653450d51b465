"""Celery's own CLI (``celery inspect``, ``status``, ``control revoke``) against celeriac
workers, and celeriac's ``app.control`` against Celery workers, on Redis and RabbitMQ."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from celeriac import states
from tests.interop.conftest import ROOT, Fleet


def celery_cli(fleet: Fleet, *argv: str, timeout_s: float = 60) -> str:
    """``celery -A tests.interop.celery_side <argv>``; its stdout (exit status 0)."""
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "tests.interop.celery_side",
                           *argv], cwd=ROOT, env=fleet.env("cli"), capture_output=True,
                          timeout=timeout_s, check=False)
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, f"celery {' '.join(argv)} -> {done.returncode}\n{out}\n" \
                                 f"{done.stderr.decode(errors='replace')}"
    return out


def celeriac_node(fleet: Fleet, *args: str) -> str:
    name = f"celeriac-{uuid.uuid4().hex[:6]}@interop"
    fleet.celeriac_worker("threads", "-n", name, *args)
    return name


def test_celery_inspect_and_status_see_a_celeriac_worker(fleet: Fleet) -> None:
    name = celeriac_node(fleet)
    assert "pong" in celery_cli(fleet, "inspect", "ping", "-d", name, "-t", "5")
    status = celery_cli(fleet, "status", "-t", "5")
    assert f"{name}: OK" in status
    stats = json.loads(celery_cli(fleet, "inspect", "stats", "-d", name, "-t", "5", "--json"))
    mine = stats[name]
    assert mine["pool"]["max-concurrency"] == 2
    assert mine["broker"]["transport"] in ("redis", "amqp")
    assert "total" in mine and "uptime" in mine
    registered = celery_cli(fleet, "inspect", "registered", "-d", name, "-t", "5")
    assert "interop.add" in registered
    queues = json.loads(celery_cli(fleet, "inspect", "active_queues", "-d", name, "-t", "5",
                                   "--json"))
    assert [q["name"] for q in queues[name]] == [fleet.queue]
    limit = celery_cli(fleet, "control", "rate_limit", "interop.add", "5/s", "-d", name,
                       "-t", "5")
    assert "new rate limit set successfully" in limit


def test_celery_revoke_sticks_across_a_restart(fleet: Fleet) -> None:
    name = celeriac_node(fleet)
    client = fleet.celeriac_client()
    doomed = client.send_task("interop.note", ("doomed",), countdown=4)
    # Celery's CLI only broadcasts: the celeriac worker itself keeps the revoke
    out = celery_cli(fleet, "control", "revoke", doomed.id, "-d", name, "-t", "5")
    assert f"tasks {doomed.id} flagged as revoked" in out
    for proc, _ in list(fleet.procs):
        proc.terminate()
        proc.wait(30)
    later = celeriac_node(fleet)  # a worker started after the revoke
    time.sleep(5)  # the countdown is due
    client.send_task("interop.note", ("after",))
    fleet.wait_records("note after", 1)
    time.sleep(1)
    assert fleet.records("note doomed") == []
    assert client.AsyncResult(doomed.id).state == states.REVOKED
    revoked = json.loads(celery_cli(fleet, "inspect", "revoked", "-d", later, "-t", "5",
                                    "--json"))
    assert doomed.id in revoked[later]


def test_celeriac_control_reaches_celery_and_celeriac_workers(fleet: Fleet) -> None:
    ours = celeriac_node(fleet)
    fleet.celery_worker("solo", "-n", "celery-x@interop")
    client = fleet.celeriac_client()
    deadline = time.monotonic() + 20
    replies: dict[str, object] = {}
    while time.monotonic() < deadline and len(replies) < 2:
        replies = client.control.inspect(timeout=2.0).ping() or {}
    assert replies == {ours: {"ok": "pong"}, "celery-x@interop": {"ok": "pong"}}
    registered = client.control.inspect(timeout=2.0).registered() or {}
    assert "interop.add" in " ".join(registered["celery-x@interop"])
    assert "interop.add" in registered[ours]


def celeriac_cli(fleet: Fleet, *argv: str, timeout_s: float = 60) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "celeriac", "-A",
                           "tests.interop.celeriac_side", *argv], cwd=ROOT,
                          env=fleet.env("cli"), capture_output=True, timeout=timeout_s,
                          check=False)
    return done.returncode, done.stdout.decode(errors="replace")


def test_celeriac_cli_against_celery_and_celeriac_workers(fleet: Fleet) -> None:
    ours = celeriac_node(fleet)
    fleet.celery_worker("solo", "-n", "celery-y@interop")
    code, out = 0, ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "2 nodes online." not in out:
        code, out = celeriac_cli(fleet, "status", "-t", "2")
    assert code == 0 and f"->  {ours}: OK" in out and "->  celery-y@interop: OK" in out
    code, out = celeriac_cli(fleet, "inspect", "ping", "--json", "-t", "2")
    assert json.loads(out) == {ours: {"ok": "pong"}, "celery-y@interop": {"ok": "pong"}}
    code, out = celeriac_cli(fleet, "control", "rate_limit", "interop.add", "5/s",
                             "-d", "celery-y@interop", "-t", "3", "--json")
    assert json.loads(out) == {"celery-y@interop": {"ok": "new rate limit set successfully"}}
    code, out = celeriac_cli(fleet, "inspect", "stats", "-d", ours, "-t", "3", "--json")
    assert json.loads(out)[ours]["pool"]["implementation"].endswith(":threads")
    code, out = celeriac_cli(fleet, "inspect", "ping", "-d", "nobody@nowhere", "-t", "0.5")
    assert code == 69


def test_celery_events_dump_shows_a_celeriac_worker_and_its_tasks(fleet: Fleet) -> None:
    log = fleet.tmp_path / "events.log"
    with open(log, "wb") as out:
        dump = subprocess.Popen([sys.executable, "-m", "celery", "-A",
                                 "tests.interop.celery_side", "events", "--dump"], cwd=ROOT,
                                env=fleet.env("events"), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "starting capture" not in log.read_text(errors="replace"):
            assert dump.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # its queue is bound
        name = celeriac_node(fleet, "-E")
        client = fleet.celeriac_client()
        assert client.send_task("interop.add", (2, 3)).get(timeout=20) == 5
        deadline = time.monotonic() + 20
        text = ""
        while "heartbeat:" not in text or "task succeeded: interop.add" not in text:
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
            text = log.read_text(errors="replace")
    finally:
        dump.terminate()
        dump.wait(10)
    assert f"{name} [" in text
    assert "started: active=0" in text and "sw_ident=celeriac" in text
    assert "task received: interop.add" in text and "task started: interop.add" in text
    assert "result=5" in text


def test_celery_cli_sees_and_terminates_tasks_of_a_prefork_worker(fleet: Fleet) -> None:
    """The default prefork worker, whose children consume for themselves: Celery's CLI
    gets the node's answers from the parent (stats with the children's pids, the task a
    child runs in `active`) and its terminate kills that child."""
    name = f"celeriac-{uuid.uuid4().hex[:6]}@interop"
    fleet.celeriac_worker("prefork", "-n", name)
    client = fleet.celeriac_client()
    assert client.send_task("interop.add", (2, 3)).get(timeout=30) == 5
    slow = client.send_task("interop.slow_note", ("never", 60))
    deadline = time.monotonic() + 20
    while True:
        active = json.loads(celery_cli(fleet, "inspect", "active", "-d", name, "-t", "5",
                                       "--json"))
        running = [t for t in active[name] if t["id"] == slow.id]
        if running:
            break
        assert time.monotonic() < deadline, active
        time.sleep(0.3)
    stats = json.loads(celery_cli(fleet, "inspect", "stats", "-d", name, "-t", "5",
                                  "--json"))[name]
    assert running[0]["worker_pid"] in stats["pool"]["processes"]
    assert running[0]["args"] == "('never', 60)"  # the message's argsrepr, off the board
    assert len(stats["pool"]["processes"]) == 2
    out = celery_cli(fleet, "control", "terminate", "SIGKILL", slow.id, "-d", name,
                     "-t", "5")
    assert slow.id in out and "terminate" in out
    deadline = time.monotonic() + 20
    while client.AsyncResult(slow.id).state != states.REVOKED:
        assert time.monotonic() < deadline, client.AsyncResult(slow.id).state
        time.sleep(0.2)
    time.sleep(1)
    assert fleet.records("note never") == []
    assert client.send_task("interop.add", (1, 1)).get(timeout=30) == 2  # it goes on
