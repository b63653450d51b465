"""Result backend contract on a real Redis, plus Celery's exact result layout."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from celeriac import states
from celeriac.backends.base import make_meta, rebuild_exception
from celeriac.backends.redis import RedisBackend
from tests.contract.backend_suite import BackendContract
from tests.services import REDIS_HOST, REDIS_PORT, need_redis

DB = 10
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"

# Values a Celery 5.7 worker stored (tests/data/redis-capture-celery-5.7.txt).
CELERY_SUCCESS = (
    b'{"status": "SUCCESS", "result": 4, "traceback": null, "children": null, '
    b'"date_done": "2026-11-23T20:41:43.947607+00:00", '
    b'"task_id": "11111111-1111-1111-1111-111111111111"}'
)
CELERY_FAILURE = (
    b'{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": '
    b'["bad value", 42], "exc_module": "builtins"}, "traceback": "Traceback (most recent '
    b'call last):\\n  File \\"capture.py\\", line 52, in <module>\\n    raise '
    b'ValueError(\'bad value\', 42)\\nValueError: (\'bad value\', 42)\\n", "children": null, '
    b'"date_done": "2026-11-23T20:41:43.951706+00:00", '
    b'"task_id": "33333333-3333-3333-3333-333333333333"}'
)


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    need_redis()
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB)
    yield client
    await client.aclose()


@pytest.fixture
async def backend(raw: aioredis.Redis) -> AsyncIterator[RedisBackend]:
    prefix = f"celeriac-test-{uuid.uuid4().hex[:12]}:"
    backend = RedisBackend(URL, {"global_keyprefix": prefix})
    await backend.connect()
    yield backend
    await backend.close()
    keys = [k async for k in raw.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await raw.delete(*keys)


class TestRedisBackend(BackendContract):
    pass


async def test_layout_is_celerys_setex_and_publish(
        backend: RedisBackend, raw: aioredis.Redis) -> None:
    task_id = str(uuid.uuid4())
    key = backend.key(task_id)
    assert key.endswith(f"celery-task-meta-{task_id}")
    pubsub = raw.pubsub()
    await pubsub.subscribe(key)
    assert (await pubsub.get_message(timeout=1.0))["type"] == "subscribe"
    await backend.store(task_id, make_meta(task_id, states.SUCCESS, 4), 86400)
    pushed = await pubsub.get_message(timeout=1.0)
    stored = await raw.get(key)
    assert pushed["data"] == stored  # the same bytes on the key and the channel
    assert 86390 < await raw.ttl(key) <= 86400
    meta = json.loads(stored)
    assert list(meta) == ["status", "result", "traceback", "children", "date_done", "task_id"]
    assert meta["status"] == "SUCCESS" and meta["result"] == 4 and meta["task_id"] == task_id
    await pubsub.aclose()


async def test_reads_results_celery_stored(backend: RedisBackend, raw: aioredis.Redis) -> None:
    ok, bad = "11111111-1111-1111-1111-111111111111", "33333333-3333-3333-3333-333333333333"
    await raw.set(backend.key(ok), CELERY_SUCCESS, ex=60)
    await raw.set(backend.key(bad), CELERY_FAILURE, ex=60)
    found = await backend.get_many([ok, bad])
    assert found[ok]["result"] == 4
    exc = rebuild_exception(found[bad]["result"])
    assert isinstance(exc, ValueError) and exc.args == ("bad value", 42)
    waited = await backend.wait(ok, 1.0)
    assert waited is not None and waited["status"] == "SUCCESS"


async def test_celery_success_is_not_overwritten(
        backend: RedisBackend, raw: aioredis.Redis) -> None:
    task_id = "11111111-1111-1111-1111-111111111111"
    await raw.set(backend.key(task_id), CELERY_SUCCESS, ex=60)
    await backend.store(task_id, make_meta(task_id, states.FAILURE, {"exc_type": "X"}), 60)
    assert await raw.get(backend.key(task_id)) == CELERY_SUCCESS


async def test_progress_meta_mentioning_success_is_replaced(
        backend: RedisBackend, raw: aioredis.Redis) -> None:
    # a custom state whose result contains "status": "SUCCESS" is not a SUCCESS
    task_id = str(uuid.uuid4())
    await backend.store(task_id, make_meta(task_id, "PROGRESS", {"status": "SUCCESS"}), 60)
    await backend.store(task_id, make_meta(task_id, states.SUCCESS, 7), 60)
    meta = await backend.get(task_id)
    assert meta is not None and meta["result"] == 7


async def test_many_waiters_share_one_subscription(backend: RedisBackend) -> None:
    ids = [str(uuid.uuid4()) for _ in range(50)]
    waits = [asyncio.create_task(backend.wait(t, 5.0)) for t in ids + ids[:5]]
    await asyncio.sleep(0.05)
    for task_id in ids:
        await backend.store(task_id, make_meta(task_id, states.SUCCESS, task_id), 60)
    metas = await asyncio.gather(*waits)
    assert [m["result"] for m in metas if m] == ids + ids[:5]


async def test_fractional_and_no_expiry(backend: RedisBackend, raw: aioredis.Redis) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await backend.store(a, make_meta(a, states.SUCCESS, 1), 1.5)
    await backend.store(b, make_meta(b, states.SUCCESS, 1), None)
    assert 1000 < await raw.pttl(backend.key(a)) <= 1500
    assert await raw.ttl(backend.key(b)) == -1


async def test_a_value_over_the_limit_is_refused_before_it_is_sent(
        backend: RedisBackend, raw: aioredis.Redis) -> None:
    from celeriac.errors import BackendStoreError

    task_id = str(uuid.uuid4())
    backend.max_value_bytes = 1000  # Redis's default is 512 MiB; the rule is the same
    with pytest.raises(BackendStoreError, match="value too large for Redis backend"):
        await backend.store(task_id, make_meta(task_id, states.SUCCESS, "x" * 2000), 60)
    assert await raw.get(backend.key(task_id)) is None
    await backend.store(task_id, make_meta(task_id, states.SUCCESS, "small"), 60)
    assert await raw.get(backend.key(task_id)) is not None
