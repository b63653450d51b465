"""celeriac's side of the benchmark: the app its worker runs and the client calls.

The app is Celery's tutorial app with the import changed (compare celery_app.py). The
broker and result backend come from BENCH_BROKER_URL / BENCH_RESULT_BACKEND.
``bulk`` is the public bulk API, ``Task.delay_many`` (batches of ``BATCH`` messages per
broker round trip; the options are resolved once per batch).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from bench_tasks import append_time, register

from celeriac import Celery, chord

BATCH = 1000

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"],
             backend=os.environ.get("BENCH_RESULT_BACKEND") or None)
tasks = register(app)  # bench.noop, noop_result, count, mark, block, timed: bench_tasks.py
noop, block = tasks.noop, tasks.block
send_mark, delay_noop, send_timed = tasks.send_mark, tasks.delay_noop, tasks.send_timed
roundtrip = tasks.roundtrip


@app.task(name="bench.ablock", ignore_result=True)
async def ablock(seconds: float, path: str) -> None:
    """``block`` as a coroutine (celeriac runs ``async def`` tasks; Celery has none)."""
    await asyncio.sleep(seconds)
    append_time(path)


# -- what the client calls -----------------------------------------------------------
def bulk_noop(n: int, progress: Callable[[int], None], countdown_s: float | None = None) -> None:
    options = {} if countdown_s is None else {"countdown": countdown_s}
    sent = 0
    while sent < n:
        size = min(BATCH, n - sent)
        noop.delay_many([()] * size, batch_size=BATCH, **options)
        sent += size
        progress(sent)


def chord_noop(n: int) -> float:
    return tasks.chord_noop(chord, n)


def send_blocks(n: int, seconds: float, path: str, coroutine: bool = False) -> None:
    (ablock if coroutine else block).delay_many([(seconds, path)] * n, batch_size=BATCH)


def close() -> None:
    pass
