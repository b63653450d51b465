"""An application's extensions in a real worker started by the CLI (``-A extapp``), on
SQLite and Redis: custom remote control commands (celeriac.worker.control) called by
the CLI and by app.control, and bootsteps (celeriac.bootsteps) on solo and prefork."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Harness

HOST = "ext@itest"


def remote(h: Harness, *args: str) -> tuple[int, str, str]:
    """``celeriac inspect|control -A extapp ...`` to the test's worker (named: the
    replies are in as soon as it answered)."""
    done = h.cli(*args[:1], "-A", "extapp", *args[1:], "-t", "10", "-d", HOST)
    return done.returncode, done.stdout, done.stderr


def test_custom_commands_from_the_cli_and_the_client(harness: Harness) -> None:
    h = harness
    h.worker("-A", "extapp", "-P", "solo", "-n", HOST)
    code, out, err = remote(h, "inspect", "current_prefetch_count", "--json")
    assert code == 0, err
    [(host, reply)] = json.loads(out).items()
    assert host == HOST
    start = reply["prefetch_count"]

    code, out, err = remote(h, "control", "increase_prefetch_count", "3")
    assert code == 0, err
    assert f"->  {host}: OK" in out and "prefetch count incremented" in out
    assert h.client.control.broadcast("increase_prefetch_count", arguments={"n": 2},
                                      destination=[HOST], reply=True, timeout=10) == [
        {host: {"ok": "prefetch count incremented"}}]
    inspect = h.client.control.inspect([HOST], timeout=10)
    assert inspect._request("current_prefetch_count") == {
        host: {"prefetch_count": start + 5}}

    code, out, err = remote(h, "control", "note", "t1", "hello", "world")
    assert code == 0, err
    assert h.lines("note") == [f"note t1 hello world {host} itest"]

    # Celery's CLI rules: arguments converted by the spec, or a usage error
    code, out, err = remote(h, "control", "increase_prefetch_count", "x")
    assert code == 2 and "n='x'" in err
    code, out, err = remote(h, "control", "increase_prefetch_count", "1", "2")
    assert code == 2 and "takes arguments: [N=1]" in err
    code, out, err = remote(h, "control", "current_prefetch_count")
    assert code == 2 and "not recognized" in err and "increase_prefetch_count" in err
    listing = h.cli("control", "-A", "extapp", "--list")
    assert "increase_prefetch_count [N=1]" in listing.stdout
    assert "Increase the prefetch window by N." in listing.stdout


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_bootsteps_start_stop_shutdown_once_in_order(harness: Harness, pool: str,
                                                     tmp_path: Path) -> None:
    h = harness
    liveness = tmp_path / "alive"
    worker = h.worker("-A", "extapp", "-P", pool, "-c", "2", EXTAPP_LIVENESS=str(liveness))
    pid = worker.proc.pid
    assert h.client.send_task("add", (1, 2)).id
    h.wait_for_record("add 1 2")
    deadline = time.monotonic() + 10
    while not liveness.exists():
        assert time.monotonic() < deadline, "the liveness file was never touched"
        time.sleep(0.05)
    first = liveness.stat().st_mtime_ns
    while liveness.exists() and liveness.stat().st_mtime_ns == first:
        assert time.monotonic() < deadline, "the liveness file was touched only once"
        time.sleep(0.05)
    assert worker.stop() == 0
    assert not liveness.exists()  # removed by the step's stop
    steps = h.lines("step")
    assert steps == [
        f"step worker init {pid}",
        f"step worker start {pool} {pid}",
        f"step consumer start {h.lines('step consumer start')[0].split()[-1]}",
        "step consumer stop",
        f"step worker stop {pid}",
        "step consumer shutdown",
    ]
    # the steps started before the first task ran
    record = h.lines()
    assert record.index("add 1 2") > record.index(f"step worker start {pool} {pid}")


def test_a_step_that_fails_to_start_stops_the_worker(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = h.worker("-A", "extapp", "-P", "solo", ready=False, EXTAPP_FAIL_START="1")
    assert worker.wait() == 1
    log = worker.log
    lines = [line for line in log.splitlines() if "Unrecoverable error" in line]
    assert len(lines) == 1, log
    assert lines[0].endswith("bootstep FailingStep failed to start: "
                             "RuntimeError('port 1 is taken')")
    assert "ready." not in log
    pid = worker.proc.pid
    # the step started before it was stopped; nothing was consumed
    assert h.lines("step") == [f"step worker init {pid}",
                               f"step worker start solo {pid}",
                               f"step worker stop {pid}"]
