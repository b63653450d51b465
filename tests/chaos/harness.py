"""The chaos harness: real workers, a record of executions outside them, and a count.

A ``Scenario`` owns one broker URL (a temp SQLite file, or a private key prefix in
Redis db 13), one record file and the workers started for one test. Tests publish a
known set of tagged ``chaos.work`` tasks, inject a fault, wait, and call ``tally``:
sent, completed (distinct tags that finished), duplicates (extra finishes) and lost
(sent, never finished). Every tally is also a row in the ``make chaos`` table.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celeriac.brokers import create_broker
from celeriac.brokers.base import Broker
from celeriac.protocol import build_task_message

HERE = Path(__file__).resolve().parent
REDIS_DB_URL = "redis://127.0.0.1:6379/13"

#: rows of the ``make chaos`` table, filled by ``Scenario.tally`` (conftest prints them)
TABLE: list[Tally] = []


@dataclass
class Tally:
    fault: str
    broker: str
    sent: int
    completed: int
    duplicates: int
    lost: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


class ChaosWorker:
    """``python -m celeriac -A chaosapp worker ...`` with its whole output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, args: Sequence[str]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "chaosapp", "worker", "-l", "info",
             *args], cwd=HERE, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged after {timeout_s}s:\n{self.log}")
            time.sleep(0.05)

    def child_pids(self) -> list[int]:
        import psutil

        return [c.pid for c in psutil.Process(self.proc.pid).children()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._log.close()


class Scenario:
    """One test's broker, record file and workers. See the module docstring."""

    def __init__(self, tmp_path: Path, broker_name: str, broker_url: str,
                 options: dict[str, Any] | None = None, env: dict[str, str] | None = None
                 ) -> None:
        self.tmp_path = tmp_path
        self.broker_name = broker_name
        self.broker_url = broker_url
        self.options = dict(options or {})
        self.record = tmp_path / "record.txt"
        self.record.touch()
        self.extra_env = dict(env or {})
        #: a queue of its own, so tests sharing a server never see each other's tasks
        self.queue = f"chaos-{uuid.uuid4().hex[:8]}"
        self.workers: list[ChaosWorker] = []

    # -- workers ------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CELERIAC_RESULT_BACKEND", None)
        env.update({"CELERIAC_BROKER_URL": self.broker_url, "CHAOS_RECORD": str(self.record),
                    "CHAOS_KEYPREFIX": str(self.options.get("global_keyprefix", "")),
                    "PYTHONUNBUFFERED": "1", **self.extra_env, **extra})
        return env

    def worker(self, *args: str, ready: bool = True, broker_url: str | None = None,
               **env: str) -> ChaosWorker:
        extra = {"CELERIAC_BROKER_URL": broker_url} if broker_url else {}
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        worker = ChaosWorker(self.env(**extra, **env), log, ["-Q", self.queue, *args])
        self.workers.append(worker)
        if ready:
            worker.wait_for_log("ready.")
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.close()

    # -- sending ------------------------------------------------------------------------
    def broker(self, url: str | None = None, **options: Any) -> Broker:
        return create_broker(url or self.broker_url, {**self.options, **options})

    def publish(self, tags: Sequence[str], seconds: float = 0.0, batch: int = 100,
                task: str = "chaos.work") -> list[str]:
        """Publish ``task(tag, seconds)`` for each tag, in batches; returns the tags."""
        async def run() -> None:
            broker = self.broker()
            await broker.connect()
            try:
                for i in range(0, len(tags), batch):
                    await broker.publish([
                        build_task_message(task, (tag, seconds), queue=self.queue,
                                       ignore_result=True)
                        for tag in tags[i:i + batch]])
            finally:
                await broker.close()

        asyncio.run(run())
        return list(tags)

    # -- counting -----------------------------------------------------------------------
    def done(self) -> Counter[str]:
        """How many times each tag finished."""
        lines = self.record.read_text().splitlines()
        return Counter(line.split()[1] for line in lines if line.startswith("done "))

    def wait_done(self, tags: Sequence[str], timeout_s: float = 60) -> None:
        wanted = set(tags)
        wait_until(lambda: wanted <= set(self.done()), timeout_s,
                   f"{len(wanted - set(self.done()))} of {len(wanted)} tasks to finish")

    def tally(self, fault: str, sent: Sequence[str], settle_s: float = 0.3) -> Tally:
        """Count what happened to the sent tags and add the row to the table."""
        time.sleep(settle_s)  # a late duplicate still counts
        done = self.done()
        sent_set = set(sent)
        completed = sum(1 for tag in sent_set if done[tag])
        duplicates = sum(done[tag] - 1 for tag in sent_set if done[tag] > 1)
        row = Tally(fault, self.broker_name, len(sent_set), completed, duplicates,
                    len(sent_set) - completed)
        TABLE.append(row)
        return row


def tags(prefix: str, n: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{run}-{i}" for i in range(n)]
