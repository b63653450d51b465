"""The beat store contract on memory, SQLite, Redis (db 9, own key prefix) and RabbitMQ
(own vhost)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.beat.store import BeatStore
from celeriac.beat.store_amqp import AmqpStore
from celeriac.beat.store_memory import MemoryStore
from celeriac.beat.store_redis import RedisStore
from celeriac.beat.store_sqlite import SQLiteStore
from tests.contract.beat_suite import LEASE_S, BeatStoreContract, NewStore
from tests.contract.test_amqp_contract import url as amqp_url
from tests.contract.test_amqp_contract import vhost  # noqa: F401 (fixture)
from tests.contract.test_redis_contract import URL as REDIS_URL
from tests.services import need_redis


class _Stores:
    def __init__(self) -> None:
        self.made: list[BeatStore] = []

    def keep(self, store: BeatStore) -> BeatStore:
        self.made.append(store)
        return store

    def close(self) -> None:
        for store in self.made:
            try:
                store.close()
            except Exception:
                pass


class TestMemoryStore(BeatStoreContract):
    @pytest.fixture
    def new_store(self) -> Iterator[NewStore]:
        url = f"memory://beat-{uuid.uuid4().hex}"
        stores = _Stores()
        yield lambda: stores.keep(MemoryStore(url))
        stores.close()


class TestSQLiteStore(BeatStoreContract):
    @pytest.fixture
    def new_store(self, tmp_path: Path) -> Iterator[NewStore]:
        url = f"sqlite:///{tmp_path / 'beat.db'}"
        stores = _Stores()
        yield lambda: stores.keep(SQLiteStore(url))
        stores.close()


class TestRedisStore(BeatStoreContract):
    @pytest.fixture
    def new_store(self) -> Iterator[NewStore]:
        need_redis()
        prefix = f"celeriac-test-{uuid.uuid4().hex[:12]}:"
        stores = _Stores()
        yield lambda: stores.keep(RedisStore(REDIS_URL, {"global_keyprefix": prefix}))
        stores.close()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


class TestAmqpStore(BeatStoreContract):
    claims_without_lease = False

    @pytest.fixture
    def new_store(self, vhost: str) -> Iterator[NewStore]:  # noqa: F811
        stores = _Stores()
        yield lambda: stores.keep(AmqpStore(amqp_url(vhost), {}, LEASE_S))
        for store in stores.made:  # the next test starts with no token and no state
            store.close()
        cleanup = AmqpStore(amqp_url(vhost), {}, LEASE_S)
        from celeriac.bridge import BRIDGE

        async def drop() -> None:
            channel = await cleanup._open()
            await channel.queue_delete("celeriac.beat.leader")
            await channel.queue_delete("celeriac.beat.state")

        BRIDGE.run(drop(), 30)
        cleanup.close()
