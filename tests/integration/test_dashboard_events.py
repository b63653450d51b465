"""The dashboard's event readers against real brokers: events sent by Celery 5.7's own
``app.events.Dispatcher`` (single and batched) arrive as Celery-format dicts from
Redis (kombu's PUB/SUB fan-out, under a global key prefix) and RabbitMQ (the celeryev
topic exchange); ``celeriac dashboard`` refuses a public address without auth."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from celeriac.dashboard.events import AmqpEventSource, EventSource, RedisEventSource
from tests.services import need_rabbitmq, need_redis

HERE = Path(__file__).resolve().parent


def _send_with_celery(broker_url: str, prefix: str, hostname: str, task_id: str) -> None:
    from celery import Celery as RealCelery

    app = RealCelery("events-sender", broker=broker_url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix} if prefix else {}
    with app.connection_for_write() as conn:
        dispatcher = app.events.Dispatcher(conn, hostname=hostname, enabled=True,
                                           buffer_while_offline=False)
        dispatcher.send("worker-online", freq=2.0, active=0, processed=0,
                        loadavg=[0.1, 0.1, 0.1], sw_ident="py-celery", sw_ver="5.7.0")
        batcher = app.events.Dispatcher(conn, hostname=hostname, enabled=True,
                                        buffer_group=["task"], buffer_limit=2)
        batcher.send("task-received", uuid=task_id, name="add", args="(1, 2)", kwargs="{}")
        batcher.send("task-succeeded", uuid=task_id, result="3", runtime=0.1)
        batcher.flush()
        batcher.close()
        dispatcher.close()


async def _collect(source: EventSource, hostname: str, send: Any, n: int
                   ) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    async def read() -> None:
        async for batch in source.batches():
            got.extend(e for e in batch if e.get("hostname") == hostname)
            if len(got) >= n:
                return

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.5)  # subscribed before anything is sent
    await asyncio.to_thread(send)
    try:
        await asyncio.wait_for(reader, 15)
    finally:
        await source.close()
    return got


@pytest.mark.parametrize("broker", ["redis", "amqp"])
async def test_celery_events_read_from_the_broker(broker: str) -> None:
    hostname, task_id = f"celery-{uuid.uuid4().hex[:6]}@test", str(uuid.uuid4())
    source: EventSource
    if broker == "redis":
        need_redis()
        url, prefix = "redis://127.0.0.1:6379/13", f"dev-{uuid.uuid4().hex[:6]}:"
        source = RedisEventSource(url, keyprefix=prefix)
    else:
        need_rabbitmq()
        url, prefix = "amqp://guest:guest@127.0.0.1:5672//", ""
        source = AmqpEventSource(url)  # Celery's URL as the app has it: vhost "/"
    events = await _collect(source, hostname,
                            lambda: _send_with_celery(url, prefix, hostname, task_id), 3)
    assert [e["type"] for e in events] == ["worker-online", "task-received",
                                           "task-succeeded"]
    assert events[0]["sw_ident"] == "py-celery" and events[0]["freq"] == 2.0
    assert {e.get("uuid") for e in events[1:]} == {task_id}
    assert events[2]["runtime"] == 0.1


def test_cli_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    env = {**os.environ, "DASH_BROKER": f"sqlite:///{tmp_path}/b.db",
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE)])}
    done = subprocess.run([sys.executable, "-m", "celeriac", "-A", "dashapp", "dashboard",
                           "--address", "0.0.0.0", "--port", "0"], cwd=HERE, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "without authentication" in done.stderr and "--insecure" in done.stderr
