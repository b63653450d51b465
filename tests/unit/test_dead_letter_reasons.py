"""Dead-letter reasons stay readable: a huge bad value is quoted only in part."""

from __future__ import annotations

from typing import Any

from celeriac import Celery
from celeriac.protocol import build_task_message
from celeriac.testing import drain, memory_app


def test_a_huge_bad_value_is_quoted_in_the_dead_letter_reason_only_in_part() -> None:
    from celeriac.worker.executor import REASON_LIMIT

    app = memory_app("reasons")

    @app.task(name="one")
    def one(x: int) -> int:
        return x

    async def publish_and_read() -> list[Any]:
        broker = await app.clients.broker()
        message = build_task_message("one", (1,))
        message.headers["eta"] = "x" * 100_000  # not a datetime: dead-lettered, quoted
        await broker.publish([message])
        return []

    app.run_sync(publish_and_read())
    drain(app, raise_errors=False)
    letters = app.run_sync(_letters(app))
    assert len(letters) == 1 and "ISO-8601" in letters[0].reason
    assert len(letters[0].reason) <= REASON_LIMIT and letters[0].reason.endswith("(truncated)")


async def _letters(app: Celery) -> list[Any]:
    broker = await app.clients.broker()
    return list(await broker.dead_letters(10))
