"""``celeriac multi`` as an init script uses it: start two detached workers with
pidfiles and log files, run tasks on them, restart them (new pids), stopwait them
(pidfiles gone, processes gone), and what it says for nodes that are down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import HERE, Harness


def multi(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celeriac", "-A", "taskapp", "multi", *args],
                          cwd=HERE, env=h.env(), capture_output=True, text=True, timeout=120)


def pid_of(path: Path, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"no pidfile {path}")
        time.sleep(0.05)
    return int(path.read_text())


def alive(pid: int) -> bool:
    """Running (an exited daemon waiting for init to reap it counts as gone)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def test_start_restart_stopwait(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    files = [f"--pidfile={h.tmp_path}/run/%n.pid", f"--logfile={h.tmp_path}/log/%n%I.log"]
    try:
        _start_restart_stopwait(h, files)
    finally:
        multi(h, "kill", "w1", "w2", *files)  # nothing left running if the test failed


def _start_restart_stopwait(h: Harness, files: list[str]) -> None:
    host = socket.gethostname()
    shown = multi(h, "show", "2", "-P", "threads", "-c", "2", "-c:2", "3", *files)
    assert shown.stdout.splitlines() == [
        f"{sys.executable} -m celeriac --app=taskapp worker --detach -n celery{n}@{host} "
        f"--pidfile={h.tmp_path}/run/celery{n}.pid --logfile={h.tmp_path}/log/celery{n}%I.log "
        f"-P threads -c {c}" for n, c in ((1, 2), (2, 3))]

    started = multi(h, "start", "w1", "w2", "-P", "threads", "-l", "info", *files)
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines()[1:] == [
        "> Starting nodes...", f"\t> w1@{host}: OK", f"\t> w2@{host}: OK"]
    pidfiles = [h.tmp_path / "run" / f"w{n}.pid" for n in (1, 2)]
    first = [pid_of(p) for p in pidfiles]
    results = [h.client.send_task("add", (n, n)) for n in range(6)]
    assert [r.get(timeout=30) for r in results] == [2 * n for n in range(6)]

    restarted = multi(h, "restart", "w1", "w2", "-P", "threads", "-l", "info", *files)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert f"> Restarting node w1@{host}: OK" in restarted.stdout
    assert f"> Restarting node w2@{host}: OK" in restarted.stdout
    assert not any(alive(pid) for pid in first)
    second = [pid_of(p) for p in pidfiles]
    assert set(second).isdisjoint(first)
    assert h.client.send_task("add", (20, 22)).get(timeout=30) == 42

    stopped = multi(h, "stopwait", "w1", "w2", *files)
    assert stopped.returncode == 0
    lines = stopped.stdout.splitlines()
    assert "> Stopping nodes..." in lines
    assert f"\t> w1@{host}: TERM -> {second[0]}" in lines
    assert f"\t> w2@{host}: TERM -> {second[1]}" in lines
    assert not any(alive(pid) for pid in second)
    assert not any(p.exists() for p in pidfiles)
    log = (h.tmp_path / "log" / "w1.log").read_text()
    assert log.count("ready.") == 2 and log.count("stopped.") == 2

    down = multi(h, "stop", "w1", *files)
    assert down.returncode == 0
    assert down.stdout.splitlines()[-1] == f"> w1@{host}: DOWN"


def test_kill_and_wrong_commands(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    files = [f"--pidfile={h.tmp_path}/%n.pid", f"--logfile={h.tmp_path}/%n.log"]
    assert multi(h, "start", "k1", "-P", "solo", *files).returncode == 0
    pid = pid_of(h.tmp_path / "k1.pid")
    try:
        _kill(h, files, pid)
    finally:
        if alive(pid):
            os.kill(pid, 9)


def _kill(h: Harness, files: list[str], pid: int) -> None:
    killed = multi(h, "kill", "k1", *files)
    assert f"Sending SIGKILL to node k1@{socket.gethostname()} ({pid})" in killed.stdout
    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    # the pidfile outlives a SIGKILL; stop says so and treats the node as down
    stale = multi(h, "stopwait", "k1", *files)
    assert f"Could not signal k1@{socket.gethostname()} ({pid}): No such process" in \
        stale.stdout
    wrong = multi(h, "begin", "k1")
    assert wrong.returncode == 2
    assert "unknown multi command 'begin': use one of start, stop" in wrong.stderr
    nameless = multi(h, "start")
    assert nameless.returncode == 2 and "name the nodes" in nameless.stderr
