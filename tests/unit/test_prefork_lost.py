"""A prefork child that dies mid-task is reported as celeriac.exceptions.WorkerLostError,
the one class applications catch (not a pool-private twin)."""

from __future__ import annotations

import asyncio
import os

import celeriac.exceptions
from celeriac import Celery
from celeriac.context import Context
from celeriac.states import FAILURE
from celeriac.worker.pools.prefork import PreforkPool


def test_a_child_that_exits_mid_task_is_the_public_worker_lost_error() -> None:
    app = Celery("prefork_lost", broker="memory://")

    @app.task(name="prefork_lost.die")
    def die() -> None:
        os._exit(3)

    async def main() -> object:
        pool = PreforkPool(1)
        await pool.start()
        try:
            outcome = await pool.run(die, [], {}, Context(id="t-1", task=die.name))
        finally:
            pool.terminate()
        return outcome

    outcome = asyncio.run(main())
    assert outcome.state == FAILURE  # type: ignore[attr-defined]
    exc = outcome.value  # type: ignore[attr-defined]
    assert isinstance(exc, celeriac.exceptions.WorkerLostError)
    assert f"while running {die.name}[t-1]" in str(exc)
