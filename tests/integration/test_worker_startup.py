"""A worker started before its broker waits for it (broker_connection_retry_on_startup);
a wrong password still fails at once. Real workers, a real redis-server started late."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celeriac import Celery
from tests.integration.conftest import HERE, WorkerProcess
from tests.services import need_rabbitmq, need_redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def env_for(broker: str, backend: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CELERIAC_BROKER_URL": broker, "PYTHONUNBUFFERED": "1", **extra})
    env.pop("CELERIAC_RESULT_BACKEND", None)
    if backend:
        env["CELERIAC_RESULT_BACKEND"] = backend
    return env


def run_worker(env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celeriac", "-A", "taskapp", "worker", "-P",
                           "solo", "-l", "info"], cwd=HERE, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def test_worker_waits_for_a_redis_started_after_it(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    url = f"redis://:secret@127.0.0.1:{port}/0"
    worker = WorkerProcess(env_for(url, url), tmp_path / "worker.log", ["-P", "solo"])
    server = None
    try:
        worker.wait_for_log("Trying again in 2.00 seconds... (1/100)")
        line = next(x for x in worker.log.splitlines() if "Cannot connect" in x)
        assert f"ERROR/MainProcess] consumer: Cannot connect to redis://:**@127.0.0.1:{port}/0" \
               f": Error 111 connecting to 127.0.0.1:{port}. Connection refused. Trying again" \
               in line
        assert "secret" not in worker.log
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--requirepass", "secret",
             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        worker.wait_for_log("ready.", timeout_s=60)
        assert f"Connected to redis://:**@127.0.0.1:{port}/0" in worker.log
        client = Celery("late", broker=url, backend=url, set_as_current=False)
        assert client.send_task("add", (20, 22)).get(timeout=20) == 42
        client.wait_for_publishes(timeout=10)
        assert worker.stop() == 0
    finally:
        if worker.proc.poll() is None:
            worker.kill()
        if server is not None:
            server.terminate()
            server.wait(10)


def test_worker_gives_up_on_rabbitmq_after_max_retries() -> None:
    port = free_port()
    started = time.monotonic()
    done = run_worker(env_for(f"amqp://guest:guest@127.0.0.1:{port}//",
                              CELERIAC_BROKER_CONNECTION_MAX_RETRIES="2"))
    lines = [x for x in done.stderr.splitlines() if "consumer: Cannot connect to" in x]
    assert [x.rsplit("Trying again ", 1)[1] for x in lines] == [
        "in 2.00 seconds... (1/2)", "in 4.00 seconds... (2/2)"]
    assert f"amqp://guest:**@127.0.0.1:{port}//: [Errno 111]" in lines[0]
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"Error: cannot connect to amqp://guest:**@127.0.0.1:{port}//: [Errno 111] Connection "
        f"refused; gave up after 2 retries (broker_connection_max_retries=2)")
    assert time.monotonic() - started >= 6  # it did wait 2 + 4 seconds
    assert "Traceback" not in done.stderr
    assert "error when creating transport" not in done.stderr  # one line per attempt


def test_no_retry_on_startup_fails_at_once() -> None:
    done = run_worker(env_for(f"redis://127.0.0.1:{free_port()}/0",
                              CELERIAC_BROKER_CONNECTION_RETRY_ON_STARTUP="false"))
    assert done.returncode == 1
    assert "Trying again" not in done.stderr
    assert "Connection refused" in done.stderr.splitlines()[-1]


def test_wrong_password_fails_at_once_on_redis_and_rabbitmq() -> None:
    need_redis()
    need_rabbitmq()
    redis_done = run_worker(env_for("redis://:wrong-pw@127.0.0.1:6379/0"))
    amqp_done = run_worker(env_for("amqp://guest:wrong-pw@127.0.0.1:5672//"))
    for done in (redis_done, amqp_done):
        assert done.returncode == 1, done.stderr
        assert "Trying again" not in done.stderr
        assert "wrong-pw" not in done.stderr
        assert done.stderr.splitlines()[-1].startswith("Error: ")
    assert "refused the login of user 'guest'" in amqp_done.stderr


def test_unknown_scheme_fails_at_once() -> None:
    done = run_worker(env_for("kafka://127.0.0.1:9092"))
    assert done.returncode == 1
    assert "unknown broker URL 'kafka://127.0.0.1:9092'" in done.stderr
    assert "Trying again" not in done.stderr


def test_one_shot_commands_do_not_wait_for_the_broker() -> None:
    env = env_for(f"redis://127.0.0.1:{free_port()}/0")
    done = subprocess.run([sys.executable, "-m", "celeriac", "-A", "taskapp", "purge", "-f"],
                          cwd=HERE, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Trying again" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("Error: cannot connect to Redis broker")
