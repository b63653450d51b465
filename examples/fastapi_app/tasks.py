"""The task queue of the FastAPI example: a celeriac app and its tasks.

The worker runs them: ``celeriac -A tasks worker -l info`` (from this folder). The broker
and result backend come from the environment (``CELERIAC_BROKER_URL``,
``CELERIAC_RESULT_BACKEND``); without them, Redis on localhost.
"""

from __future__ import annotations

import asyncio

from celeriac import Celery

celery_app = Celery("fastapi_app", broker="redis://127.0.0.1:6379/0",
                    backend="redis://127.0.0.1:6379/0")


@celery_app.task(name="fastapi_app.add")
def add(x: int, y: int) -> int:
    return x + y


@celery_app.task(name="fastapi_app.word_count")
async def word_count(text: str) -> dict[str, int]:
    """An ``async def`` task: the worker runs it on its event loop."""
    await asyncio.sleep(0)
    counts: dict[str, int] = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return counts


@celery_app.task(name="fastapi_app.fail")
def fail(message: str) -> None:
    raise ValueError(message)
