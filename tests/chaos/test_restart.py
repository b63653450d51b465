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
