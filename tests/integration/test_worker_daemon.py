"""The worker's daemon options through real processes: --detach with a pidfile and a log
file (Celery's %n %i %I %p), a second worker refused by the pidfile, --time-limit and
--soft-time-limit, -O fair, --autoscale growing and shrinking prefork children and
threads, and wrong arguments answered in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import HERE, Harness, WorkerProcess


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout_s}s: {what}")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    """Running (an exited daemon waiting for init to reap it counts as gone)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cli(h: Harness, *args: str, app: str = "cliapp", **env: str
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celeriac", "-A", app, *args], cwd=HERE,
                          env=h.env(**env), capture_output=True, text=True, timeout=60)


def test_detach_writes_pidfile_and_logfile_and_stops_on_sigterm(sqlite_harness: Harness
                                                                ) -> None:
    h = sqlite_harness
    host = socket.gethostname()
    started = cli(h, "worker", "--detach", "-n", "w1@%h", "-P", "solo", "-l", "info",
                  f"--pidfile={h.tmp_path}/run/%n.pid",
                  f"--logfile={h.tmp_path}/log/%p-%n-%i%I.log")
    assert started.returncode == 0, started.stderr
    assert started.stdout == "" and started.stderr == ""  # the daemon prints nothing here
    pidfile = h.tmp_path / "run" / "w1.pid"
    logfile = h.tmp_path / "log" / f"w1@{host}-w1-0.log"
    wait_until(pidfile.exists, "the pidfile")
    pid = int(pidfile.read_text())
    try:
        _check_daemon(h, pid, pidfile, logfile)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def _check_daemon(h: Harness, pid: int, pidfile: Path, logfile: Path) -> None:
    assert pidfile.read_text() == f"{pid}\n"
    wait_until(lambda: "ready." in logfile.read_text(), "the worker ready in its log file")
    assert os.getsid(pid) not in (os.getsid(0), pid)  # own session, not its leader
    assert os.readlink(f"/proc/{pid}/cwd") == str(HERE)
    assert h.client.send_task("add", (2, 3)).get(timeout=20) == 5
    assert "Task add[" in logfile.read_text()

    again = cli(h, "worker", "-n", "w1@%h", "-P", "solo", f"--pidfile={pidfile}")
    assert again.returncode == 1
    assert again.stderr == (f"Error: Pidfile ({pidfile}) already exists.\nSeems we're "
                            f"already running? (pid: {pid})\n")
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), "the daemon gone")
    assert not pidfile.exists()
    assert "stopped." in logfile.read_text()


def test_stale_pidfile_is_replaced_and_logfile_takes_the_log(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    pidfile = h.tmp_path / "w.pid"
    pidfile.write_text("999999\n")  # no such process
    logfile = h.tmp_path / "w.log"
    worker = WorkerProcess(h.env(), h.tmp_path / "stdout.log",
                           ["-A", "cliapp", "-P", "solo", f"--pidfile={pidfile}",
                            f"--logfile={logfile}"])
    h.workers.append(worker)
    try:
        wait_until(lambda: logfile.exists() and "ready." in logfile.read_text(), "ready")
        assert pidfile.read_text() == f"{worker.proc.pid}\n"
        assert "Stale pidfile exists - Removing it." in logfile.read_text()
        assert "ready." not in worker.log  # stderr no longer gets log records
    finally:
        assert worker.stop() == 0
    assert not pidfile.exists()


def test_time_limit_options_apply_to_every_task(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = WorkerProcess(h.env(), h.tmp_path / "w.log",
                           ["-A", "cliapp", "-P", "prefork", "-c", "1",
                            "--soft-time-limit", "0.5"])
    h.workers.append(worker)
    worker.wait_for_log("ready.")
    assert h.client.send_task("sleepy", (5, "s1")).get(timeout=20) == "soft limit"
    worker.stop()
    worker = WorkerProcess(h.env(), h.tmp_path / "w2.log",
                           ["-A", "cliapp", "-P", "prefork", "-c", "1", "--time-limit", "1"])
    h.workers.append(worker)
    worker.wait_for_log("ready.")
    hard = h.client.send_task("sleepy", (30, "h1"))
    hard.get(timeout=20, propagate=False)
    assert hard.state == "FAILURE"
    assert type(hard.result).__name__ == "TimeLimitExceeded"
    assert h.lines("done h1") == []
    worker.stop()


def test_fair_is_accepted_and_said_what_it_means(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = WorkerProcess(h.env(), h.tmp_path / "w.log",
                           ["-A", "cliapp", "-P", "threads", "-O", "fair"])
    h.workers.append(worker)
    worker.wait_for_log("ready.")
    assert "-O fair is how celeriac always hands out tasks" in worker.log
    assert h.client.send_task("add", (1, 1)).get(timeout=20) == 2
    worker.stop()


def test_autoscale_grows_and_shrinks_prefork_children(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = WorkerProcess(h.env(AUTOSCALE_KEEPALIVE="1"), h.tmp_path / "w.log",
                           ["-A", "cliapp", "-P", "prefork", "--autoscale=3,1"])
    h.workers.append(worker)
    worker.wait_for_log("ready.")
    assert ".> concurrency: {min=1, max=3} (prefork)" in worker.log
    assert len(children(worker.proc.pid)) == 1
    results = [h.client.send_task("sleepy", (2, f"a{i}")) for i in range(6)]
    most = 0

    def grown() -> bool:
        nonlocal most
        most = max(most, len(children(worker.proc.pid)))
        return most == 3

    wait_until(grown, "3 children under load")
    assert [r.get(timeout=30) for r in results] == ["slept"] * 6
    wait_until(lambda: len(children(worker.proc.pid)) == 1, "back to 1 child when idle")
    assert "Scaling up 2 processes." in worker.log
    assert "Scaling down " in worker.log
    assert h.client.send_task("add", (2, 2)).get(timeout=20) == 4  # the one left works
    assert worker.stop() == 0


def test_autoscale_grows_and_shrinks_threads(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    worker = WorkerProcess(h.env(AUTOSCALE_KEEPALIVE="1"), h.tmp_path / "w.log",
                           ["-A", "cliapp", "-P", "threads", "--autoscale=4,1"])
    h.workers.append(worker)
    worker.wait_for_log("ready.")
    busy = [h.client.send_task("sleepy", (3, f"t{i}")) for i in range(4)]
    h.wait_for_record("start", 4)  # four at once: the pool grew to 4 threads
    assert h.client.send_task("task_threads").get(timeout=20) == 4
    assert [r.get(timeout=30) for r in busy] == ["slept"] * 4
    wait_until(lambda: "Scaling down" in worker.log, "a shrink")
    assert h.client.send_task("task_threads").get(timeout=20) == 1
    assert worker.stop() == 0


def test_wrong_daemon_arguments_get_one_line(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    bad_scale = cli(h, "worker", "--autoscale=ten")
    assert bad_scale.returncode == 2
    assert "'ten' is not MAX,MIN: two whole numbers" in bad_scale.stderr
    bad_opt = cli(h, "worker", "-O", "fastest")
    assert bad_opt.returncode == 2 and "'fastest' is not one of 'default', 'fair'" in \
        bad_opt.stderr
    if os.geteuid() != 0:
        not_root = cli(h, "worker", "--uid", "0")
        assert not_root.returncode == 1
        assert "--uid/--gid need root" in not_root.stderr
    unwritable = cli(h, "worker", "--detach", "--logfile=/proc/no/such.log")
    assert unwritable.returncode == 1
    assert unwritable.stderr.startswith("Error: cannot write the log file /proc/no/such.log")
    for done in (bad_scale, bad_opt, unwritable):
        assert "Traceback" not in done.stderr
