"""celeriac's side of the benchmark: the app its worker runs and the client calls.

The app is Celery's tutorial app with the import changed (compare celery_app.py). The
broker and result backend come from BENCH_BROKER_URL / BENCH_RESULT_BACKEND.
celeriac has no public bulk-publishing API yet: ``bulk`` builds each message with the
app's own builder (``_build_message``, as ``.delay()`` does) and hands batches of
``BATCH`` to the broker contract's ``publish(messages)``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from celeriac import Celery

BATCH = 1000

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"],
             backend=os.environ.get("BENCH_RESULT_BACKEND") or None)


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    return None


@app.task(name="bench.noop_result")
def noop_result() -> None:
    return None


@app.task(name="bench.mark", ignore_result=True)
def mark(path: str) -> None:
    with open(path, "w") as f:
        f.write(repr(time.time()))


# -- what the client calls -----------------------------------------------------------
def send_mark(path: str) -> None:
    mark.delay(path)


def delay_noop() -> None:
    noop.delay()


def _publish(batch: list[Any], delayed: bool) -> None:
    async def go() -> None:
        broker = await app.clients.broker()
        if delayed:
            await broker.delay(batch)
        else:
            await broker.publish(batch)

    app.run_sync(go())


def bulk_noop(n: int, progress: Callable[[int], None], countdown_s: float | None = None) -> None:
    batch: list[Any] = []
    options = {} if countdown_s is None else {"countdown": countdown_s}
    for i in range(n):
        message, due = app._build_message(noop.name, (), {}, noop, dict(options))
        batch.append(message if countdown_s is None else (message, due))
        if len(batch) == BATCH:
            _publish(batch, countdown_s is not None)
            batch = []
            progress(i + 1)
    if batch:
        _publish(batch, countdown_s is not None)
    progress(n)


def roundtrip() -> None:
    noop_result.delay().get(timeout=10)


def close() -> None:
    pass
