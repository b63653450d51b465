"""``celeriac -A app events --dump`` and the live view against real workers started with
-E (a celeriac worker, and a Celery worker beside it), and a celeriac client with
task_send_sent_event, on Redis and RabbitMQ."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.interop.conftest import ROOT, Fleet


def start_events(fleet: Fleet, log: Path, *argv: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "celeriac", "-A",
                                 "tests.interop.celeriac_side", "events", *argv], cwd=ROOT,
                                env=fleet.env("events"), stdout=out, stderr=subprocess.STDOUT)


def wait_text(log: Path, proc: subprocess.Popen[bytes], *wanted: str,
              timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while not all(w in text for w in wanted):
        assert proc.poll() is None, text
        assert time.monotonic() < deadline, f"missing {wanted!r} in:\n{text}"
        time.sleep(0.2)
        text = log.read_text(errors="replace")
    return text


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_events_dump_shows_workers_and_their_tasks(fleet: Fleet) -> None:
    log = fleet.tmp_path / "dump.log"
    dump = start_events(fleet, log, "--dump")
    try:
        wait_text(log, dump, "starting capture")
        ours = f"celeriac-{uuid.uuid4().hex[:6]}@events"
        fleet.celeriac_worker("threads", "-n", ours, "-E")
        theirs = f"celery-{uuid.uuid4().hex[:6]}@events"
        fleet.celery_worker("solo", "-n", theirs, "-E")
        client = fleet.celeriac_client(task_send_sent_event=True)
        results = [client.send_task("interop.add", (i, i)) for i in range(6)]
        assert [r.get(timeout=30) for r in results] == [2 * i for i in range(6)]
        bad = client.send_task("interop.boom")
        bad.get(timeout=30, propagate=False)
        text = wait_text(log, dump, f"{ours} [", f"{theirs} [", "task failed:",
                         *(f"result={2 * i}" for i in range(6)))
    finally:
        stop(dump)
    lines = text.splitlines()
    assert any(line.startswith(f"{ours} [") and "] started: active=0" in line
               and "sw_ident=celeriac" in line for line in lines)
    first = results[0].id
    # the client's event (sent after the task, as Celery's: a worker may be quicker)
    sent = [line for line in lines if f"] task sent: interop.add({first})" in line]
    assert len(sent) == 1 and sent[0].startswith("gen")
    assert "args=(0, 0) kwargs={}" in sent[0] and f"queue={fleet.queue}" in sent[0]
    # every task was received, started and succeeded on one of the two workers
    for r in results:
        mine = [line for line in lines if r.id in line]
        kinds = [line.split("] ", 1)[1].split(":", 1)[0] for line in mine]
        assert kinds.count("task sent") == 1 and "task received" in kinds
        assert "task started" in kinds and "task succeeded" in kinds, mine
        host = next(line for line in mine if "task succeeded" in line).split(" [")[0]
        assert host in (ours, theirs)
    failed = next(line for line in lines if "task failed:" in line)
    assert f"interop.boom({bad.id})" in failed and "exception=KeyError" in failed


def test_live_view_lists_the_worker_and_recent_tasks(fleet: Fleet) -> None:
    log = fleet.tmp_path / "live.log"
    live = start_events(fleet, log, "-F", "0.5")
    try:
        wait_text(log, live, "WORKERS")
        time.sleep(1.0)  # subscribed (the first frame is drawn after it)
        ours = f"celeriac-{uuid.uuid4().hex[:6]}@events"
        fleet.celeriac_worker("threads", "-n", ours, "-E")
        client = fleet.celeriac_client()
        ok = client.send_task("interop.add", (20, 22))
        assert ok.get(timeout=30) == 42
        bad = client.send_task("interop.boom")
        bad.get(timeout=30, propagate=False)
        text = wait_text(log, live, f"{bad.id} interop.boom")
    finally:
        stop(live)
    frame = text.rsplit("celeriac events  ", 1)[1]  # the last frame drawn
    assert "WORKERS  1 online, 0 offline" in frame
    row = next(line for line in frame.splitlines() if line.startswith(f"  {ours}"))
    assert " online " in row and "celeriac" in row
    task = next(line for line in frame.splitlines() if ok.id in line)
    assert "interop.add" in task and " SUCCESS " in task and ours in task
    assert "(20, 22)" in task and "-> 42" in task
    failed = next(line for line in frame.splitlines() if bad.id in line)
    assert " FAILURE " in failed and "KeyError" in failed
    assert "redis://" in frame or "amqp://" in frame
    assert "guest:guest" not in frame  # the password is masked
