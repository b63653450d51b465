"""The result backend contract as tests. Subclass with an async ``backend`` fixture."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid

import pytest

from celeriac import states
from celeriac.backends.base import ResultBackend, make_meta
from celeriac.errors import EncodeError


def tid() -> str:
    return str(uuid.uuid4())


class BackendContract:
    async def test_missing_result_is_none(self, backend: ResultBackend) -> None:
        assert await backend.get(tid()) is None

    async def test_store_and_get_roundtrip_with_rich_values(self, backend: ResultBackend) -> None:
        task_id = tid()
        value = {"when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                 "amount": decimal.Decimal("1.10"), "raw": b"\x00\x01"}
        await backend.store(task_id, make_meta(task_id, states.SUCCESS, value), 60)
        meta = await backend.get(task_id)
        assert meta is not None
        assert meta["status"] == "SUCCESS"
        assert meta["result"] == value
        assert meta["task_id"] == task_id
        assert meta["date_done"]

    async def test_success_is_never_overwritten(self, backend: ResultBackend) -> None:
        task_id = tid()
        await backend.store(task_id, make_meta(task_id, states.SUCCESS, 1), 60)
        await backend.store(task_id, make_meta(task_id, states.FAILURE, {"exc_type": "X"}), 60)
        meta = await backend.get(task_id)
        assert meta is not None and meta["status"] == "SUCCESS" and meta["result"] == 1

    async def test_retry_state_is_replaced_by_success(self, backend: ResultBackend) -> None:
        task_id = tid()
        await backend.store(task_id, make_meta(task_id, states.RETRY, None), 60)
        await backend.store(task_id, make_meta(task_id, states.SUCCESS, 2), 60)
        meta = await backend.get(task_id)
        assert meta is not None and meta["result"] == 2

    async def test_wait_returns_result_stored_before_waiting(self, backend: ResultBackend) -> None:
        task_id = tid()
        await backend.store(task_id, make_meta(task_id, states.SUCCESS, 5), 60)
        meta = await backend.wait(task_id, 2.0)
        assert meta is not None and meta["result"] == 5

    async def test_wait_wakes_on_later_store(self, backend: ResultBackend) -> None:
        task_id = tid()

        async def later() -> None:
            await asyncio.sleep(0.2)
            await backend.store(task_id, make_meta(task_id, states.STARTED, None), 60)
            await asyncio.sleep(0.1)
            await backend.store(task_id, make_meta(task_id, states.SUCCESS, 6), 60)

        job = asyncio.create_task(later())
        meta = await backend.wait(task_id, 5.0)
        await job
        assert meta is not None and meta["result"] == 6

    async def test_wait_times_out_with_none(self, backend: ResultBackend) -> None:
        assert await backend.wait(tid(), 0.3) is None

    async def test_expired_result_reads_as_missing(self, backend: ResultBackend) -> None:
        task_id = tid()
        await backend.store(task_id, make_meta(task_id, states.SUCCESS, 1), 1)
        await asyncio.sleep(2.1)
        assert await backend.get(task_id) is None

    async def test_get_many_and_forget(self, backend: ResultBackend) -> None:
        a, b, missing = tid(), tid(), tid()
        await backend.store(a, make_meta(a, states.SUCCESS, "a"), 60)
        await backend.store(b, make_meta(b, states.SUCCESS, "b"), 60)
        found = await backend.get_many([a, b, missing])
        assert {k: v["result"] for k, v in found.items()} == {a: "a", b: "b"}
        await backend.forget(a)
        assert await backend.get(a) is None

    async def test_unencodable_result_raises_encode_error_and_stores_nothing(
            self, backend: ResultBackend) -> None:
        task_id = tid()
        meta = make_meta(task_id, states.SUCCESS, {"rows": [1, object()]})
        with pytest.raises(EncodeError, match="cannot be serialized as json: <class 'object'>"):
            await backend.store(task_id, meta, 60)
        assert await backend.get(task_id) is None
        await backend.store(task_id, make_meta(task_id, states.SUCCESS, [1, 2]), 60)
        stored = await backend.get(task_id)
        assert stored is not None and stored["result"] == [1, 2]
