"""RedisBroker against private redis-server processes this test starts and stops itself:
a password-protected server, a crash and restart under load, and Sentinel discovery.
The shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.backends.base import make_meta
from celeriac.backends.redis import RedisBackend
from celeriac.brokers.redis.broker import RedisBroker
from celeriac.errors import BrokerConnectionError
from celeriac.protocol import build_task_message
from tests.services import need_redis

PASSWORD = "s3cret-pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"redis-server on {port} did not start")


class Server:
    """One private redis-server: AOF with fsync on every write, so a crash loses nothing."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.workdir), "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    need_redis()
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    srv = Server(tmp_path, "--requirepass", PASSWORD)
    srv.start()
    yield srv
    srv.kill()


async def test_wrong_password_fails_fast_and_names_the_masked_url(server: Server) -> None:
    url = f"redis://:nope-{PASSWORD}@127.0.0.1:{server.port}/0"
    for client in (RedisBroker(url), RedisBackend(url)):
        started = time.monotonic()
        with pytest.raises(BrokerConnectionError) as info:
            await client.connect()
        assert time.monotonic() - started < 2
        assert PASSWORD not in str(info.value)
        assert f"redis://:**@127.0.0.1:{server.port}/0" in str(info.value)
        await client.close()
    good = RedisBroker(f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0")
    await good.connect()
    await good.close()


async def test_restart_under_load_loses_no_acknowledged_publish(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="celeriac.brokers.redis")
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    options = {"lease_timeout": 1.0, "sweep_interval": 0.2, "retry_timeout": 20.0}
    producer, consumer = RedisBroker(url, options), RedisBroker(url, options)
    await producer.connect()
    await consumer.connect()
    acknowledged: list[str] = []
    seen: set[str] = set()
    stop = asyncio.Event()

    async def produce() -> None:
        for i in range(400):
            await producer.publish([build_task_message("t", task_id=f"m{i}", queue="q")])
            acknowledged.append(f"m{i}")
            await asyncio.sleep(0.002)

    async def consume() -> None:
        while not stop.is_set():
            got = await consumer.fetch(["q"], 20, 0.2)
            seen.update(d.message.task_id for d in got)
            if got:
                await consumer.ack(got)

    async def crash() -> None:
        await asyncio.sleep(0.3)
        server.kill()
        await asyncio.sleep(0.5)
        server.start()

    consuming = asyncio.create_task(consume())
    await asyncio.gather(produce(), crash())
    deadline = time.monotonic() + 20
    while not set(acknowledged) <= seen and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await consuming
    await producer.close()
    await consumer.close()
    assert len(acknowledged) == 400
    assert set(acknowledged) - seen == set()
    losses = [r for r in caplog.records if "lost the connection" in r.getMessage()]
    assert 1 <= len(losses) <= 2  # once per broker that noticed, not once per retry
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


async def test_sentinel_url_finds_the_master(tmp_path: Path) -> None:
    need_redis()
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    master = Server(tmp_path)
    master.start()
    sentinel_port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n")
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(sentinel_port)
        url = f"sentinel://127.0.0.1:{free_port()};sentinel://127.0.0.1:{sentinel_port}/0"
        options: dict[str, Any] = {"master_name": "mymaster"}
        broker, backend = RedisBroker(url, options), RedisBackend(url, options)
        await broker.connect()
        await backend.connect()
        await broker.publish([build_task_message("t", task_id="via-sentinel", queue="q")])
        [got] = await broker.fetch(["q"], 1, 1.0)
        await broker.ack([got])
        await backend.store("via-sentinel", make_meta("via-sentinel", "SUCCESS", 1), 60)
        meta = await backend.wait("via-sentinel", 2.0)
        assert meta is not None and meta["result"] == 1
        await broker.close()
        await backend.close()
    finally:
        sentinel.kill()
        sentinel.wait()
        master.kill()
