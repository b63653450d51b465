"""``celeriac migrate SOURCE DESTINATION``, run as a user runs it, between real brokers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from celeriac import Celery
from celeriac.brokers import create_broker
from celeriac.protocol import build_task_message
from tests.integration.conftest import HERE, Harness
from tests.integration.test_amqp_worker import vhost  # noqa: F401 (a fixture)
from tests.services import AMQP_HOST, AMQP_PORT, need_redis


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celeriac", "migrate", *args], cwd=HERE,
                          capture_output=True, text=True, timeout=60)


def waiting(url: str, queue: str = "celery") -> int:
    async def size() -> int:
        broker = create_broker(url)
        await broker.connect()
        try:
            return await broker.queue_size(queue)
        finally:
            await broker.close()

    return asyncio.run(size())


def test_moves_the_named_tasks_and_a_worker_on_the_destination_runs_them(
        tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    client = Celery("itest", broker=source, set_as_current=False)
    ids = [client.send_task("note", (f"m{i}",)).id for i in range(3)]
    client.send_task("shout", ("stays",))
    client.wait_for_publishes(timeout=10)

    destination = Harness(tmp_path, f"sqlite:///{tmp_path}/destination.db")
    try:
        done = migrate(source, destination.broker_url, "-a", "-T", "note")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert [line.split(": ", 1)[1].split("[")[0] for line in lines[:3]] == ["note"] * 3
        assert {line.split("[", 1)[1].split("]")[0] for line in lines[:3]} == set(ids)
        assert lines[3] == "3 tasks moved; 1 put back on the source"
        assert waiting(source) == 1  # the task not asked for stayed
        assert waiting(destination.broker_url) == 3

        destination.worker("-P", "solo")
        destination.wait_for_record("note ", 3)
        assert sorted(destination.lines("note ")) == ["note m0", "note m1", "note m2"]
    finally:
        destination.close()


def test_without_ack_the_tasks_are_copied(tmp_path: Path) -> None:
    source, copy = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    client = Celery("itest", broker=source, set_as_current=False)
    for i in range(2):
        client.send_task("note", (i,))
    client.wait_for_publishes(timeout=10)
    done = migrate(source, copy, "-n", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2 tasks copied (left on the source too: -a moves them)"
    assert "Migrating task 1/5: note[" in done.stdout
    assert (waiting(source), waiting(copy)) == (2, 2)


def test_redis_to_rabbitmq_keeps_each_message(vhost: str) -> None:  # noqa: F811
    need_redis()
    queue = f"migrate-{uuid.uuid4().hex[:8]}"
    redis_url = "redis://127.0.0.1:6379/12"
    amqp_url = f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    sent = [build_task_message("note", (i,), queue=queue) for i in range(5)]

    async def publish() -> None:
        broker = create_broker(redis_url)
        await broker.connect()
        await broker.publish(sent)
        await broker.close()

    async def receive() -> list[tuple[str, bytes, str]]:
        broker = create_broker(amqp_url)
        await broker.connect()
        try:
            got: list[Any] = []
            deadline = time.monotonic() + 15
            while len(got) < len(sent) and time.monotonic() < deadline:
                # a fetch returns what RabbitMQ has delivered so far: ask until all are in
                batch = await broker.fetch([queue], 10, 1.0)
                await broker.ack(batch)
                got += batch
            return [(d.message.task_id, d.message.body, d.message.task_name) for d in got]
        finally:
            await broker.close()

    asyncio.run(publish())
    try:
        done = migrate(redis_url, amqp_url, "-a", "-Q", queue)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "5 tasks moved"
        assert waiting(redis_url, queue) == 0
        assert sorted(asyncio.run(receive())) == sorted(
            (m.task_id, m.body, "note") for m in sent)
    finally:
        import redis

        raw = redis.Redis.from_url(redis_url)
        keys = list(raw.scan_iter(f"{queue}*")) + list(raw.scan_iter(f"*{queue}*"))
        if keys:
            raw.delete(*set(keys))
        raw.close()


def test_a_wrong_url_is_one_line_with_the_password_masked(tmp_path: Path) -> None:
    done = migrate("nosuch://user:secret@host/", f"sqlite:///{tmp_path}/b.db")
    assert done.returncode != 0
    assert "unknown broker URL" in done.stderr and "secret" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
