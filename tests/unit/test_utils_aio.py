"""utils/aio.py: ``cancel_and_wait`` ends every task it is given before it returns,
swallows their cancellation, skips None, and raises an error a task ended with."""

from __future__ import annotations

import asyncio

import pytest

from celeriac.utils.aio import cancel_and_wait


def test_every_task_has_ended_when_it_returns() -> None:
    cleaned: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that takes a loop turn
            cleaned.append(name)

    async def main() -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(forever(n)) for n in ("a", "b")]
        await asyncio.sleep(0)
        await cancel_and_wait(tasks[0], None, tasks[1])
        return tasks

    tasks = asyncio.run(main())
    assert sorted(cleaned) == ["a", "b"]
    assert all(t.cancelled() for t in tasks)


def test_an_error_a_task_ended_with_is_raised() -> None:
    async def broken() -> None:
        raise LookupError("the reader failed")

    async def main() -> None:
        task = asyncio.create_task(broken())
        await asyncio.sleep(0)
        await cancel_and_wait(task)

    with pytest.raises(LookupError):
        asyncio.run(main())
