"""A real dashboard (``celeriac -A dashapp dashboard``), a real worker sending events
(-E: a celeriac worker, or a Celery 5.7 one) and a headless Chromium (Debian's package,
driven by playwright with ``executable_path``: no browser download), on Redis under a
key prefix per test. Every wait has a generous deadline (a loaded 2-core machine) and
nothing is timed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.services import need_redis, services_required

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/14"
#: how long a process may take to start on a loaded machine
START_S = 60


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    tmp_path: Path
    prefix: str
    queue: str
    port: int
    broker: str = BROKER
    backend: str = BROKER
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pending: list[tuple[str, str, Path, subprocess.Popen[bytes]]] = field(
        default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"DASH_BROKER": self.broker, "DASH_BACKEND": self.backend,
                    "DASH_KEYPREFIX": self.prefix,
                    "DASH_QUEUE": self.queue, "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                                   str(ROOT / "tests" / "integration")])})
        return env

    def start(self, argv: list[str], name: str, ready: str, wait: bool = True) -> None:
        """Start a process logging to ``<name>.log``; it is up once ``ready`` shows in
        the log (waited for now, or by the next ``wait_ready``)."""
        log = self.tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env(), stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.names[name] = proc
        self.pending.append((name, ready, log, proc))
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Every started process up (they start side by side)."""
        deadline = time.monotonic() + START_S
        for name, ready, log, proc in self.pending:
            while ready not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{name} did not start:\n{log.read_text()}")
                time.sleep(0.05)
        self.pending.clear()

    def dashboard(self, *args: str) -> None:
        self.start([sys.executable, "-m", "celeriac", "-A", "dashapp", "dashboard",
                    "--port", str(self.port), "-Q", f"{self.queue},{self.queue}-parked",
                    *args], "dashboard", "celeriac dashboard on")
        deadline = time.monotonic() + START_S
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/state", timeout=2).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def events_flowing(self) -> None:
        """Wait until the dashboard has heard a worker (a heartbeat: its subscription
        is up, so no task event sent from now on is missed)."""
        import json

        deadline = time.monotonic() + START_S
        while not json.loads(urllib.request.urlopen(self.url + "/api/state",
                                                    timeout=5).read())["workers"]:
            if time.monotonic() > deadline:
                raise AssertionError("the dashboard heard no worker")
            time.sleep(0.2)

    def celeriac_worker(self, *args: str, wait: bool = True) -> str:
        """A celeriac worker with -E; returns its hostname."""
        hostname = f"celeriac-{self.prefix.strip(':')}@dash"
        self.start([sys.executable, "-m", "celeriac", "-A", "tests.browser.celeriac_dashapp",
                    "worker", "-E", "-l", "info", "-Q", self.queue, "-n", hostname, *args],
                   "celeriac-worker", f"{hostname} ready.", wait)
        return hostname

    def celery_worker(self, wait: bool = True) -> None:
        self.start([sys.executable, "-m", "celery", "-A", "tests.browser.celery_dashapp",
                    "worker", "-E", "-P", "solo", "-l", "info", "-Q", self.queue,
                    "-n", f"celery-{self.prefix.strip(':')}@%h", "--without-gossip",
                    "--without-mingle"], "celery-worker", "ready.", wait)

    def celery_client(self) -> Any:
        from celery import Celery as RealCelery

        app = RealCelery("dash-client", broker=self.broker, backend=self.backend,
                         set_as_current=False)
        app.conf.broker_transport_options = {"global_keyprefix": self.prefix}
        app.conf.task_default_queue = self.queue
        return app

    def celeriac_client(self) -> Any:
        from celeriac import Celery

        app = Celery("dash-client", broker=self.broker, backend=self.backend,
                     set_as_current=False)
        app.conf.broker_transport_options = {"global_keyprefix": self.prefix}
        app.conf.task_default_queue = self.queue
        return app

    def stop_process(self, name: str) -> None:
        """SIGTERM (a warm shutdown), then wait for the process to end."""
        proc = self.names[name]
        proc.terminate()
        try:
            proc.wait(START_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"{name} did not stop on SIGTERM") from None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    need_redis()
    import redis

    run = uuid.uuid4().hex[:8]
    found = Stack(tmp_path, f"dash-{run}:", f"dash-{run}", free_port())
    yield found
    found.stop()
    raw = redis.Redis.from_url(BROKER)
    keys = list(raw.scan_iter(f"{found.prefix}*"))
    if keys:
        raw.delete(*keys)
    raw.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        reason = "no chromium (apt-get install chromium; make browser-deps)"
        if services_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        from playwright import sync_api
    except ImportError:
        reason = "no playwright (pip install -e '.[dev]')"
        if services_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with sync_api.sync_playwright() as play:
        launched = play.chromium.launch(executable_path=executable, headless=True,
                                        args=["--no-sandbox"])
        yield launched
        launched.close()
