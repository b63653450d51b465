"""The Redis result backend's batched scripts and a chord header task's one script, on a
real Redis: many callers' stores go out in a few writes, each caller gets its own reply
or its own error, an unknown script is loaded on the way, and ``store_part`` writes the
result exactly as ``store`` does (Celery's key, the PUBLISH its clients wait on, a
stored SUCCESS kept) with a part that counts once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from celeriac import states
from celeriac.backends.base import make_meta
from celeriac.backends.redis import RedisBackend
from celeriac.brokers.redis.connection import Lane
from celeriac.chords.base import Claim
from celeriac.chords.redis import RedisChordJoin
from tests.services import REDIS_HOST, REDIS_PORT, need_redis

DB = 10
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    need_redis()
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB)
    yield client
    await client.aclose()


@pytest.fixture
async def backend(raw: aioredis.Redis) -> AsyncIterator[RedisBackend]:
    prefix = f"celeriac-batch-{uuid.uuid4().hex[:12]}:"
    backend = RedisBackend(URL, {"global_keyprefix": prefix})
    await backend.connect()
    yield backend
    await backend.close()
    keys = [k async for k in raw.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await raw.delete(*keys)


def count_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of commands in each write a lane makes."""
    writes: list[int] = []
    real = Lane.execute_each

    async def counted(self: Lane, *commands: Any) -> list[Any]:
        writes.append(len(commands))
        return await real(self, *commands)

    monkeypatch.setattr(Lane, "execute_each", counted)
    return writes


async def test_concurrent_stores_share_writes(backend: RedisBackend,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    await backend.store("warm", make_meta("warm", states.SUCCESS, 0), 60)  # script loaded
    writes = count_writes(monkeypatch)
    ids = [f"t{i}" for i in range(200)]
    await asyncio.gather(*(backend.store(t, make_meta(t, states.SUCCESS, i), 60)
                           for i, t in enumerate(ids)))
    assert sum(writes) == 200 and len(writes) <= 3  # not 200 round trips
    found = await backend.get_many(ids)
    assert [found[t]["result"] for t in ids] == list(range(200))


async def test_each_caller_gets_its_own_reply_or_error(backend: RedisBackend) -> None:
    ok = "return ARGV[1]"
    boom = "return redis.error_reply('boom ' .. ARGV[1])"
    calls = [backend.scripts.eval(boom if i % 3 == 0 else ok, [], [str(i)])
             for i in range(9)]
    replies = await asyncio.gather(*calls, return_exceptions=True)
    for i, reply in enumerate(replies):
        if i % 3 == 0:
            assert isinstance(reply, ResponseError) and f"boom {i}" in str(reply)
        else:
            assert reply == str(i).encode()


async def test_a_script_redis_does_not_know_is_loaded(backend: RedisBackend) -> None:
    fresh = f"-- {uuid.uuid4().hex}\nreturn tonumber(ARGV[1]) * 2"  # never loaded
    replies = await asyncio.gather(*(backend.scripts.eval(fresh, [], [i])
                                     for i in range(5)))
    assert replies == [0, 2, 4, 6, 8]


async def test_store_part_stores_as_store_does_and_counts_once(
        backend: RedisBackend, raw: aioredis.Redis) -> None:
    join = RedisChordJoin(backend, 600, 600, 5)
    await join.set_size("g", 2)
    pubsub = raw.pubsub()
    await pubsub.subscribe(backend.key("a"))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    meta = make_meta("a", states.SUCCESS, 10)
    assert await join.store_part("g", "a", 0, states.SUCCESS, 10, meta, 60) is None
    stored = await raw.get(backend.key("a"))
    assert json.loads(stored) == json.loads(json.dumps(meta))
    assert stored.startswith(b'{"status":"SUCCESS"')  # what Celery's clients match
    assert 0 < await raw.ttl(backend.key("a")) <= 60
    message = await pubsub.get_message(timeout=2)
    assert message is not None and message["data"] == stored
    await pubsub.aclose()
    # the redelivered task stores again: the SUCCESS is kept, the part counts once
    again = make_meta("a", states.SUCCESS, 99)
    assert await join.store_part("g", "a", 0, states.SUCCESS, 99, again, 60) is None
    assert json.loads(await raw.get(backend.key("a")))["result"] == 10
    assert await raw.zcard(join.key("g", ".j")) == 1
    claim = await join.store_part("g", "b", 1, states.SUCCESS, 20,
                                  make_meta("b", states.SUCCESS, 20), 60)
    assert isinstance(claim, Claim)
    assert [result for _, _, result in claim.parts] == [10, 20]
    await join.done("g", claim)
    late = await join.store_part("g", "b", 1, states.SUCCESS, 20,
                                 make_meta("b", states.SUCCESS, 20), 60)
    assert late is None  # the join is done: nothing claimed again
