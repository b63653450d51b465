"""task_publish_retry and task_publish_retry_policy on real brokers that are down when
the send starts and come up during it: a policy whose window covers the outage sends,
one that does not (or retry=False) raises OperationalError. Redis: a redis-server of the
test's own on a free port, started late. RabbitMQ: a TCP proxy whose upstream is a
closed port, then the real server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from celeriac import Celery
from celeriac.exceptions import OperationalError
from tests.chaos.harness import free_port, wait_until
from tests.chaos.proxy import FaultProxy
from tests.services import AMQP_HOST, AMQP_PORT, need_rabbitmq, need_redis

#: covers an outage of a few seconds: 60 retries, 0.5 s apart (30 s in all)
LONG = {"max_retries": 60, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 0.5}
#: Celery's default: 3 retries, 0 / 0.2 / 0.2 s apart (0.4 s in all)
SHORT = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
OUTAGE_S = 1.5


class LateRedis:
    """A redis-server on a free port that is not running until ``start_in``."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.workdir), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start_in(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.start)
        timer.start()
        return timer

    def queue_length(self, queue: str) -> int:
        client = redis.Redis(port=self.port)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
        wait_until(answers, 15, f"redis-server on {self.port}")
        return int(client.llen(queue))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def late_redis(tmp_path: Path) -> Iterator[LateRedis]:
    need_redis()  # the redis-server binary is there where the shared server is
    server = LateRedis(tmp_path)
    yield server
    server.stop()


def _app(url: str, **settings: object) -> Celery:
    return Celery(f"publish-retry-{uuid.uuid4().hex[:6]}", broker=url, backend="disabled",
                  set_as_current=False, **settings)


def test_redis_a_policy_that_covers_the_outage_sends(late_redis: LateRedis) -> None:
    app = _app(late_redis.url, task_publish_retry_policy=LONG)
    timer = late_redis.start_in(OUTAGE_S)
    try:
        result = app.send_task("t.add", (1, 2))
        app.wait_for_publishes(10)
    finally:
        timer.join()
        app.close()
    assert late_redis.queue_length("celery") == 1
    assert result.id


def test_redis_celerys_default_policy_raises_once_its_retries_are_spent(
        late_redis: LateRedis) -> None:
    app = _app(late_redis.url, task_publish_retry_policy=SHORT)
    timer = late_redis.start_in(OUTAGE_S)
    try:
        with pytest.raises(OperationalError, match="unreachable"):
            app.send_task("t.add", (1, 2))
    finally:
        timer.join()
        app.close()
    assert late_redis.queue_length("celery") == 0


def test_redis_retry_off_raises_and_a_per_call_policy_overrides_it(
        late_redis: LateRedis) -> None:
    app = _app(late_redis.url, task_publish_retry=False)
    timer = late_redis.start_in(OUTAGE_S)
    try:
        with pytest.raises(OperationalError):
            app.send_task("t.add", (1, 2))
        app.send_task("t.add", (3, 4), retry=True, retry_policy=LONG)  # apply_async's
        app.wait_for_publishes(10)
    finally:
        timer.join()
        app.close()
    assert late_redis.queue_length("celery") == 1


def test_redis_async_send_connects_within_the_policy(late_redis: LateRedis) -> None:
    app = _app(late_redis.url, task_publish_retry_policy=LONG)

    async def send() -> None:
        await app.asend_task("t.add", (1, 2))
        await app.clients.close()

    timer = late_redis.start_in(OUTAGE_S)
    try:
        asyncio.run(send())
    finally:
        timer.join()
    assert late_redis.queue_length("celery") == 1


def test_redis_async_send_with_retry_off_raises(late_redis: LateRedis) -> None:
    app = _app(late_redis.url, task_publish_retry=False)

    async def send() -> None:
        try:
            await app.asend_task("t.add", (1, 2))
        finally:
            await app.clients.close()

    with pytest.raises(OperationalError):
        asyncio.run(send())


# -- RabbitMQ ---------------------------------------------------------------------------
@pytest.fixture
def down_rabbit() -> Iterator[FaultProxy]:
    need_rabbitmq()
    proxy = FaultProxy(free_port())  # upstream: a closed port; every connection reset
    yield proxy
    proxy.close()


def _queue_depth(queue: str) -> int:
    import aiormq

    async def depth() -> int:
        conn = await aiormq.connect(f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/")
        channel = await conn.channel()
        ok = await channel.queue_declare(queue, passive=True)
        await channel.queue_delete(queue)
        await conn.close()
        return int(ok.message_count or 0)

    return asyncio.run(depth())


@pytest.mark.parametrize("policy", [LONG, SHORT], ids=["long", "short"])
def test_rabbitmq_down_then_up(down_rabbit: FaultProxy, policy: dict[str, object]) -> None:
    queue = f"publish-retry-{uuid.uuid4().hex[:8]}"
    app = _app(f"amqp://guest:guest@127.0.0.1:{down_rabbit.port}//",
               task_publish_retry_policy=policy, task_default_queue=queue)
    timer = threading.Timer(OUTAGE_S, lambda: setattr(down_rabbit, "upstream",
                                                      (AMQP_HOST, AMQP_PORT)))
    timer.start()
    try:
        if policy is LONG:
            app.send_task("t.add", (1, 2))
            app.wait_for_publishes(10)
        else:
            with pytest.raises(OperationalError):
                app.send_task("t.add", (1, 2))
    finally:
        timer.join()
        app.close()
    if policy is LONG:  # (the short policy never declared the queue: nothing to clean)
        assert _queue_depth(queue) == 1
