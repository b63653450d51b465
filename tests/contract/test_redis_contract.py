"""The broker contract suite on a real Redis (db 9, a fresh key prefix per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac.brokers.redis.broker import RedisBroker
from tests.contract.broadcast_suite import BroadcastContract
from tests.contract.suite import BrokerContract
from tests.services import REDIS_HOST, REDIS_PORT, need_redis

DB = 9
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"


async def drop_keys(prefix: str) -> None:
    """Delete every key under the prefix (the test's whole footprint)."""
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def redis_broker(**options: Any) -> RedisBroker:
    need_redis()
    options.setdefault("global_keyprefix", f"celeriac-test-{uuid.uuid4().hex[:12]}:")
    broker = RedisBroker(URL, options)
    await broker.connect()
    return broker


class TestRedisBroker(BrokerContract, BroadcastContract):
    # kombu's Redis transport serves bucket 0 first: priority 0 before 9, as Celery does
    priority_order = RedisBroker.priority_order

    @pytest.fixture
    async def broker(self) -> AsyncIterator[RedisBroker]:
        broker = await redis_broker()
        yield broker
        await broker.close()
        await drop_keys(broker.prefix)

    @pytest.fixture
    async def short_lease_broker(self) -> AsyncIterator[RedisBroker]:
        broker = await redis_broker(visibility_timeout=1.0)
        yield broker
        await broker.close()
        await drop_keys(broker.prefix)
