"""What the harness needs around the systems under test: broker set-up and clean-up,
queue-length probes (for the progress bar only), worker processes and their RSS.

Isolation: Redis db 15 (flushed before and after each system), a RabbitMQ vhost made
for the run and deleted after it, a temporary SQLite file. BENCH_REDIS_DB and
BENCH_AMQP_VHOST pick others (two runs at once on one machine must not share them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

REDIS_URL = f"redis://127.0.0.1:6379/{int(os.environ.get('BENCH_REDIS_DB', 15))}"
AMQP_VHOST = os.environ.get("BENCH_AMQP_VHOST", "celeriac-bench")
AMQP_URL = f"amqp://guest:guest@127.0.0.1:5672/{AMQP_VHOST}"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def redis_reason() -> str | None:
    """None when Redis answers on 127.0.0.1:6379, else why not."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:
        return f"Redis not reachable on 127.0.0.1:6379 ({exc})"
    return None


def amqp_reason() -> str | None:
    if not port_open(5672):
        return "RabbitMQ not reachable on 127.0.0.1:5672"
    try:
        subprocess.run(["rabbitmqctl", "-q", "status"], check=True, capture_output=True,
                       timeout=60)
    except Exception as exc:
        return f"rabbitmqctl cannot manage the local RabbitMQ ({exc})"
    return None


def flush_redis() -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=False, capture_output=True, timeout=120)


def create_vhost() -> None:
    _rabbitmqctl("delete_vhost", AMQP_VHOST)
    _rabbitmqctl("add_vhost", AMQP_VHOST)
    _rabbitmqctl("set_permissions", "-p", AMQP_VHOST, "guest", ".*", ".*", ".*")


def delete_vhost() -> None:
    _rabbitmqctl("delete_vhost", AMQP_VHOST)


# -- queue length, for the progress bar -----------------------------------------------
class QueueProbe:
    """Ready messages in one queue, or None when that cannot be known cheaply."""

    def __init__(self, broker: str, url: str, queue: str) -> None:
        self.broker, self.url, self.queue = broker, url, queue
        self._redis: redis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._amqp: object | None = None

    def ready(self) -> int | None:
        try:
            if self.broker == "redis":
                if self._redis is None:
                    self._redis = redis.Redis.from_url(self.url, socket_timeout=2)
                return int(self._redis.llen(self.queue))
            if self.broker == "sqlite":
                path = self.url[len("sqlite:///"):]
                with contextlib.closing(sqlite3.connect(path, timeout=1)) as db:
                    row = db.execute("SELECT COUNT(*) FROM messages WHERE queue = ? "
                                     "AND available_at <= ?", (self.queue, time.time())
                                     ).fetchone()
                return int(row[0])
            if self.broker == "amqp":
                if self._loop is None:
                    self._loop = asyncio.new_event_loop()
                return self._loop.run_until_complete(self._amqp_ready())
        except Exception:
            return None
        return None

    async def _amqp_ready(self) -> int | None:
        import aiormq

        if self._amqp is None:
            self._amqp = await aiormq.connect(self.url)
        channel = await self._amqp.channel()  # type: ignore[attr-defined]
        try:
            ok = await channel.queue_declare(self.queue, passive=True)
            return int(ok.message_count)
        finally:
            if not channel.is_closed:
                await channel.close()

    def close(self) -> None:
        if self._loop is not None:
            if self._amqp is not None:
                with contextlib.suppress(Exception):
                    self._loop.run_until_complete(self._amqp.close())  # type: ignore[attr-defined]
            left = asyncio.all_tasks(self._loop)  # aiormq's writer closing: let it finish
            if left:
                self._loop.run_until_complete(asyncio.wait(left, timeout=2.0))
            self._loop.close()


# -- worker processes -----------------------------------------------------------------
@dataclass
class RssSampler:
    """Peak resident memory of a process and its children, sampled every 50 ms.

    The list of children is looked up once a second, not at every sample: psutil finds
    children by reading every process's /proc stat (1.8 ms of CPU here), and doing that
    20 times a second took a core 4% of the time in bursts, which showed in every
    system's round-trip p99."""

    pid: int
    peak_bytes: int = 0
    last_bytes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _procs: list[psutil.Process] = field(default_factory=list)
    _looked_up: float = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def current(self, children_every_s: float = 0.0) -> int:
        if not self._procs or time.monotonic() - self._looked_up >= children_every_s:
            try:
                root = psutil.Process(self.pid)
                self._procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return 0
            self._looked_up = time.monotonic()
        total = 0
        for proc in self._procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            rss = self.current(children_every_s=1.0)
            self.last_bytes = rss
            self.peak_bytes = max(self.peak_bytes, rss)

    def reset_peak(self) -> None:
        self.peak_bytes = self.last_bytes

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


class WorkerProcess:
    """A worker started through its system's CLI, in a session of its own."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.argv = argv
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop())
        self.log_path = log
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.rss = RssSampler(self.proc.pid)
        self.rss.start()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        self.rss.stop()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # children of a pool that outlived their parent
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@contextlib.contextmanager
def worker(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(argv, env, cwd, log)
    try:
        yield proc
    finally:
        proc.stop()


def io_pressure() -> float | None:
    """The share of the last 10 s in which some task waited for the disk (Linux PSI,
    ``/proc/pressure/io``), in percent; None where the kernel does not report it."""
    try:
        first = Path("/proc/pressure/io").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=") for part in first.split()[1:])
    return float(fields["avg10"])


def settle_io(limit_s: float = 60.0, quiet_pct: float = 1.0) -> float:
    """Wait until the disk is quiet (the 10 s IO-pressure average under ``quiet_pct``),
    at most ``limit_s``; returns the seconds waited. Why: a phase that wrote 50,000
    persistent messages leaves the disk busy for a while, and RabbitMQ syncing a
    confirmed publish then waits behind it (round trips of 100 ms and more)."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        pressure = io_pressure()
        if pressure is None or pressure < quiet_pct:
            break
        time.sleep(0.5)
    return time.monotonic() - began


def wait_for_file(path: Path, proc: WorkerProcess, limit_s: float,
                  on_tick: object = None) -> bool:
    """True once ``path`` exists; False when the worker died or the limit passed."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return True
        if not proc.alive():
            return path.exists()
        if callable(on_tick):
            on_tick()
        time.sleep(0.02)
    return False
