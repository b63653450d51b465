"""A broker restart with persistence on: Redis started for the test with appendonly and
fsync on every write, SIGKILLed mid-stream and restarted on the same port.

A publish that returned was fsynced by Redis, so it must survive the crash and run.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from tests.chaos.harness import Scenario, free_port, tags, wait_until
from tests.chaos.test_network import Link


class PrivateRedis:
    """One redis-server with AOF (appendfsync always) in a temp dir, on a free port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.workdir), "--save", "", "--appendonly", "yes", "--appendfsync",
             "always"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        def answers() -> bool:
            try:
                return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
            except redis.RedisError:
                return False
        wait_until(answers, 15, f"redis-server on {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def test_redis_sigkill_and_restart_with_aof(tmp_path: Path, redis_server_bin: str) -> None:
    server = PrivateRedis(redis_server_bin, tmp_path)
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    scenario = Scenario(tmp_path, "redis (AOF)", url,
                        {"global_keyprefix": f"chaos-{uuid.uuid4().hex[:6]}:"})
    try:
        worker = scenario.worker("-P", "threads", "-c", "4", CHAOS_LEASE_S="3",
                                 CHAOS_SOCKET_TIMEOUT_S="5")
        link = Link(scenario, None, url)  # type: ignore[arg-type]
        sent = tags("aof", 300)
        thread, acked, _failed = link.stream(sent)
        time.sleep(0.8)
        server.kill()  # kill -9: only what was fsynced survives
        time.sleep(0.7)
        server.start()
        thread.join(60)
        assert not thread.is_alive()
        scenario.wait_done(acked, timeout_s=60)
        row = scenario.tally("redis kill -9 + restart (AOF)", acked)
        assert row.lost == 0 and row.completed == len(acked) >= 150
        assert worker.proc.poll() is None
        assert worker.stop() == 0
        assert "lost the connection to Redis" in worker.log
    finally:
        scenario.close()
        server.kill()


def test_rabbitmq_closes_every_connection_twice_mid_stream(tmp_path: Path) -> None:
    """RabbitMQ forcing connections closed (as on a node restart or an operator's
    ``close_all_connections``): publishers and the worker reconnect; every confirmed
    publish runs. A vhost of its own, so only this test's connections are cut."""
    from tests.chaos.conftest import amqp_available
    from tests.services import need_rabbitmq

    if not amqp_available():
        import pytest

        pytest.skip("RabbitMQ broker not available: celeriac.brokers.amqp is not importable")
    need_rabbitmq()
    vhost = f"celeriac-chaos-{uuid.uuid4().hex[:8]}"

    def ctl(*argv: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *argv], check=True, timeout=60,
                       stdout=subprocess.DEVNULL)

    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    scenario = Scenario(tmp_path, "rabbitmq", f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
    try:
        worker = scenario.worker("-P", "threads", "-c", "4")
        link = Link(scenario, None, scenario.broker_url)  # type: ignore[arg-type]
        sent = tags("rmq-closed", 300)
        thread, acked, _failed = link.stream(sent)
        for _ in range(2):
            time.sleep(0.7)
            ctl("close_all_connections", "--vhost", vhost, "celeriac chaos test")
        thread.join(60)
        assert not thread.is_alive()
        scenario.wait_done(acked, timeout_s=60)
        row = scenario.tally("server closes connections x2", acked)
        assert row.lost == 0 and row.completed == len(acked) >= 150
        assert worker.proc.poll() is None
        assert worker.stop() == 0
        assert "lost the connection to RabbitMQ" in worker.log
        assert "reconnected to RabbitMQ" in worker.log
    finally:
        scenario.close()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60)
