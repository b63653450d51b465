"""Interop fixtures: a broker (Redis or RabbitMQ), real Celery and celeriac workers
started through their CLIs, and a client app of each kind, all on a per-test queue."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services import need_rabbitmq, need_redis

ROOT = Path(__file__).resolve().parents[2]
RESULT_DB = 7
RECORD_URL = f"redis://127.0.0.1:6379/{RESULT_DB}"


@dataclass
class Fleet:
    """One test's broker, queue, record list and processes."""

    broker_url: str
    backend_url: str
    queue: str
    record_key: str
    tmp_path: Path
    #: Redis: every broker key of this test starts with it (kombu's global_keyprefix)
    prefix: str = ""

    def __post_init__(self) -> None:
        import redis

        self.redis = redis.Redis.from_url(RECORD_URL)
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.clients: list[Any] = []  # celeriac client apps, settled in stop_all

    def env(self, side: str, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"INTEROP_BROKER_URL": self.broker_url, "INTEROP_BACKEND_URL":
                    self.backend_url, "INTEROP_RECORD": self.record_key,
                    "INTEROP_RECORD_URL": RECORD_URL, "INTEROP_SIDE": side,
                    "INTEROP_QUEUE": self.queue, "INTEROP_KEYPREFIX": self.prefix,
                    "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
                    "PYTHONUNBUFFERED": "1", **extra})
        for key in ("CELERIAC_BROKER_URL", "CELERIAC_RESULT_BACKEND", "CELERY_BROKER_URL",
                    "CELERY_RESULT_BACKEND"):
            env.pop(key, None)
        return env

    def _start(self, argv: list[str], side: str, ready: str, **extra: str
               ) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{side}-{len(self.procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env(side, **extra), stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        deadline = time.monotonic() + 30
        while ready not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{side} worker did not start:\n{log.read_text()}")
            time.sleep(0.05)
        return proc

    def celery_worker(self, pool: str = "solo", *args: str, **extra: str
                      ) -> subprocess.Popen[bytes]:
        return self._start(
            [sys.executable, "-m", "celery", "-A", "tests.interop.celery_side", "worker",
             "-P", pool, "-c", "2", "-l", "info", "-Q", self.queue, "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-n", f"celery-{uuid.uuid4().hex[:6]}@%h",
             *args], "celery", "ready.", **extra)

    def celeriac_worker(self, pool: str = "solo", *args: str, **extra: str
                        ) -> subprocess.Popen[bytes]:
        return self._start(
            [sys.executable, "-m", "celeriac", "-A", "tests.interop.celeriac_side", "worker",
             "-P", pool, "-c", "2", "-l", "info", "-Q", self.queue, *args],
            "celeriac", "ready.", **extra)

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return next(log for p, log in self.procs if p is proc).read_text(errors="replace")

    def records(self, prefix: str = "") -> list[str]:
        return [r.decode() for r in self.redis.lrange(self.record_key, 0, -1)
                if r.decode().startswith(prefix)]

    def wait_records(self, prefix: str, n: int, timeout_s: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while len(found := self.records(prefix)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {n} {prefix!r} records")
            time.sleep(0.05)
        return found

    def stop_all(self) -> None:
        # settle the clients' publishes while the vhost exists (not in an exit flush)
        for app in self.clients:
            with contextlib.suppress(Exception):  # the test has judged its publishes
                app.wait_for_publishes(timeout=10)
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:  # a Celery worker on RabbitMQ may take 10 s to say goodbye: not our test
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.redis.delete(self.record_key)

    def celery_client(self, **conf: Any) -> Any:
        from celery import Celery as RealCelery

        app = RealCelery("interop-client", broker=self.broker_url, backend=self.backend_url,
                         set_as_current=False)
        app.conf.task_default_queue = self.queue
        app.conf.broker_transport_options = {"global_keyprefix": self.prefix}
        app.conf.update(conf)
        return app

    def celeriac_client(self, **conf: Any) -> Any:
        from celeriac import Celery

        app = Celery("interop-client", broker=self.broker_url, backend=self.backend_url,
                     set_as_current=False)
        app.conf.task_default_queue = self.queue
        app.conf.broker_transport_options = {"global_keyprefix": self.prefix}
        app.conf.update(conf)
        self.clients.append(app)
        return app


def _amqp_vhost() -> str:
    vhost = f"celeriac-interop-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*",
                    ".*"], check=True, timeout=60)
    return vhost


@pytest.fixture(scope="session")
def amqp_vhost() -> Iterator[str]:
    need_rabbitmq()
    vhost = _amqp_vhost()
    yield vhost
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60)


@pytest.fixture(params=["redis", "amqp"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    need_redis()
    if request.param == "redis":
        broker_url = "redis://127.0.0.1:6379/6"
    else:
        pytest.importorskip("celeriac.brokers.amqp", reason="the AMQP broker is not built yet")
        vhost = request.getfixturevalue("amqp_vhost")
        broker_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    run = uuid.uuid4().hex[:8]
    prefix = f"interop-{run}:" if request.param == "redis" else ""
    fleet = Fleet(broker_url, f"redis://127.0.0.1:6379/{RESULT_DB}", f"interop-{run}",
                  f"interop:record:{run}", tmp_path, prefix)
    yield fleet
    fleet.stop_all()
    if prefix:
        import redis

        raw = redis.Redis.from_url(broker_url)
        keys = list(raw.scan_iter(f"{prefix}*"))
        if keys:
            raw.delete(*keys)
        raw.close()
