"""The dashboard's remote control over HTTP against a real celeriac worker (-E), on
Redis and on RabbitMQ: the worker's pool and size reach ``/api/state`` from ``inspect
stats``; a rate limit POSTed with the page's CSRF token comes back with the worker's
answer and is what ``inspect registered`` then reports; a revoke comes back with the
worker's answer. (tests/browser does the same through the page, on Redis.)"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import BROKER, Stack, free_port
from tests.services import need_rabbitmq, need_redis

AMQP = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture(params=["redis", "amqp"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    pytest.importorskip("starlette")
    run = uuid.uuid4().hex[:8]
    if request.param == "redis":
        need_redis()
        found = Stack(tmp_path, f"dashctl-{run}:", f"dashctl-{run}", free_port())
    else:
        need_rabbitmq()
        found = Stack(tmp_path, "", f"dashctl-{run}", free_port(), broker=AMQP,
                      backend="rpc://")
    yield found
    found.stop()
    if request.param == "redis":
        import redis

        raw = redis.Redis.from_url(BROKER)
        keys = list(raw.scan_iter(f"{found.prefix}*"))
        if keys:
            raw.delete(*keys)
        raw.close()
    else:
        from kombu import Connection

        with Connection(AMQP) as conn:
            for queue in (found.queue, f"{found.queue}-parked"):
                try:
                    conn.default_channel.queue_delete(queue)
                except Exception:
                    pass


def _get(stack: Stack, path: str) -> Any:
    with urllib.request.urlopen(stack.url + path, timeout=10) as reply:
        return reply.read().decode()


def _post(stack: Stack, csrf: str, name: str, params: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{stack.url}/api/actions/{name}", data=json.dumps(params).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_pool_rate_limit_and_revoke_through_the_dashboard(stack: Stack) -> None:
    hostname = stack.celeriac_worker("-P", "threads", "-c", "3", wait=False)
    stack.dashboard()
    stack.events_flowing()
    deadline = time.monotonic() + 60
    while True:
        workers = json.loads(_get(stack, "/api/state"))["workers"]
        mine = [w for w in workers if w["hostname"] == hostname]
        if mine and (mine[0]["pool"], mine[0]["concurrency"]) == ("threads", 3):
            break
        assert time.monotonic() < deadline, f"no pool from inspect stats: {workers}"
        time.sleep(0.2)
    found = re.search(r'name="csrf-token" content="([^"]+)"', _get(stack, "/"))
    assert found is not None
    csrf = found.group(1)

    limit = _post(stack, csrf, "rate_limit", {"task_name": "dash.add", "rate": "7/m"})
    # (other workers on the same RabbitMQ vhost answer too: only ours is asserted)
    assert limit["ok"] is True and limit["status"] == 200, limit
    assert limit["message"].startswith("Rate limit of dash.add to 7/m: ")
    assert f"{hostname}: new rate limit set successfully" in limit["message"]
    client = stack.celeriac_client()
    registered = client.control.inspect(destination=[hostname], timeout=5).registered(
        "rate_limit")
    assert "dash.add [rate_limit=7/m]" in registered[hostname]
    unknown = _post(stack, csrf, "rate_limit", {"task_name": "no.such", "rate": "1/s"})
    assert unknown["ok"] is False and f"{hostname}: unknown task" in unknown["message"]

    task_id = str(uuid.uuid4())
    revoke = _post(stack, csrf, "revoke", {"task_id": task_id, "terminate": False})
    assert revoke["ok"] is True
    assert f"{hostname}: tasks {task_id} flagged as revoked" in revoke["message"]
    revoked = client.control.inspect(destination=[hostname], timeout=5).revoked()
    assert task_id in revoked[hostname]
