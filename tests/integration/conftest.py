"""Real worker processes for integration tests, started through the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from tests.services import need_redis

HERE = Path(__file__).resolve().parent


class WorkerProcess:
    """``python -m celeriac -A taskapp worker ...`` with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, args: list[str]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "taskapp", "worker", "-l", "info", *args],
            cwd=HERE, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the worker log after {timeout_s}s:\n{self.log}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 30) -> int:
        """Wait for the worker to exit on its own (after a signal the test sent: a second
        SIGTERM here would mean cold shutdown)."""
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def stop(self, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()


class Harness:
    """A broker URL, an execution record and a client app, private to one test."""

    def __init__(self, tmp_path: Path, broker_url: str) -> None:
        self.tmp_path = tmp_path
        self.broker_url = broker_url
        self.prefix = ""  # Redis: the key prefix of this test
        self.record = tmp_path / "record.txt"
        self.record.touch()
        self.workers: list[WorkerProcess] = []
        self.client = Celery("itest", broker=broker_url, set_as_current=False)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"CELERIAC_BROKER_URL": self.broker_url, "ITEST_RECORD": str(self.record),
                    "PYTHONUNBUFFERED": "1", **extra})
        env.pop("CELERIAC_RESULT_BACKEND", None)
        return env

    def worker(self, *args: str, ready: bool = True, **env: str) -> WorkerProcess:
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        worker = WorkerProcess(self.env(**env), log, list(args))
        self.workers.append(worker)
        if ready:
            worker.wait_for_log("ready.")
        return worker

    def lines(self, prefix: str = "") -> list[str]:
        return [line for line in self.record.read_text().splitlines() if line.startswith(prefix)]

    def wait_for_record(self, prefix: str, n: int = 1, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.lines(prefix)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{prefix!r} x{n} not recorded: {self.lines()}")
            time.sleep(0.02)

    def cli(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "celeriac", "-A", "taskapp", *args],
                              cwd=HERE, env=self.env(), capture_output=True, text=True,
                              input=input_text, timeout=60)

    def close(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.kill()
        # settle the client's publishes while the test's vhost/db still exists, so the
        # exit flush has nothing left to read from a connection closed under it
        with contextlib.suppress(Exception):  # the test has judged its publishes already
            self.client.wait_for_publishes(timeout=10)


@pytest.fixture
def sqlite_harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, f"sqlite:///{tmp_path}/broker-{uuid.uuid4().hex[:8]}.db")
    yield harness
    harness.close()


#: Redis tests: db 12, a key prefix per test (broker and results), deleted after
DB_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def redis_harness(tmp_path: Path) -> Iterator[Harness]:
    need_redis()
    import redis

    prefix = f"itest-{uuid.uuid4().hex[:8]}:"
    harness = Harness(tmp_path, DB_URL)
    harness.client.conf.broker_transport_options = {"global_keyprefix": prefix}
    harness.client.conf.result_backend = DB_URL
    harness.prefix = prefix
    original_env = harness.env

    def env(**extra: str) -> dict[str, str]:
        return original_env(**{"ITEST_KEYPREFIX": prefix, **extra}) | {
            "CELERIAC_RESULT_BACKEND": DB_URL}

    harness.env = env  # type: ignore[method-assign]
    yield harness
    harness.close()
    raw = redis.Redis.from_url(DB_URL)
    keys = list(raw.scan_iter(f"{prefix}*"))
    if keys:
        raw.delete(*keys)
    raw.close()


@pytest.fixture(params=["sqlite", "redis"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """The same scenario on the embedded broker and on Redis."""
    found: Harness = request.getfixturevalue(f"{request.param}_harness")
    return found
