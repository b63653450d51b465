"""Result backend contract on PostgreSQL (``db+postgresql://``), in a database of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from celeriac import states
from celeriac.backends import create_backend
from celeriac.backends.base import make_meta
from celeriac.errors import BrokerConnectionError
from tests.contract.backend_suite import BackendContract, tid
from tests.services import POSTGRES_ADMIN_URL, POSTGRES_HOST, POSTGRES_PORT, need_postgres

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database made for this module and dropped after it."""
    need_postgres()
    import psycopg

    name = f"celeriac_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"db+postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class TestPostgresBackend(BackendContract):
    @pytest.fixture
    async def backend(self, database: str) -> AsyncIterator[object]:
        backend = create_backend(database)
        await backend.connect()
        yield backend
        await backend.close()

    async def test_a_waiter_is_woken_by_another_process_s_store(self, database: str) -> None:
        """NOTIFY crosses connections: a store from a second backend (as a worker's)
        wakes a wait on the first at once."""
        waiter, writer = create_backend(database), create_backend(database)
        await waiter.connect()
        await writer.connect()
        try:
            task_id = tid()
            waiting = asyncio.create_task(waiter.wait(task_id, 10.0))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await writer.store(task_id, make_meta(task_id, states.SUCCESS, 42), 60)
            meta = await asyncio.wait_for(waiting, 2.0)
            assert meta is not None and meta["result"] == 42
        finally:
            await waiter.close()
            await writer.close()

    async def test_driver_suffixes_name_the_same_backend(self, database: str) -> None:
        for url in (database.replace("db+postgresql", "db+postgresql+psycopg2"),
                    database.replace("db+postgresql", "db+postgres")):
            backend = create_backend(url)
            await backend.connect()
            task_id = tid()
            await backend.store(task_id, make_meta(task_id, states.SUCCESS, 1), 60)
            assert (await backend.get(task_id) or {}).get("result") == 1
            await backend.close()

    async def test_a_wrong_password_fails_fast_with_it_masked(self) -> None:
        need_postgres()
        backend = create_backend(
            f"db+postgresql://nobody_here:s3cret@{POSTGRES_HOST}:{POSTGRES_PORT}/none")
        with pytest.raises(BrokerConnectionError) as raised:
            await backend.connect()
        assert "s3cret" not in str(raised.value) and "**" in str(raised.value)
