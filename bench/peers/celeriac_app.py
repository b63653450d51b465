"""celeriac's side of the benchmark: the app its worker runs and the client calls.

The app is Celery's tutorial app with the import changed (compare celery_app.py). The
broker and result backend come from BENCH_BROKER_URL / BENCH_RESULT_BACKEND.
``bulk`` is the public bulk API, ``Task.delay_many`` (batches of ``BATCH`` messages per
broker round trip; the options are resolved once per batch).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from celeriac import Celery, chord

BATCH = 1000

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"],
             backend=os.environ.get("BENCH_RESULT_BACKEND") or None)


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    return None


@app.task(name="bench.noop_result")
def noop_result() -> None:
    return None


@app.task(name="bench.count")
def count(results: list[None]) -> int:
    """A chord's body: how many header results arrived."""
    return len(results)


@app.task(name="bench.mark", ignore_result=True)
def mark(path: str) -> None:
    with open(path, "w") as f:
        f.write(repr(time.time()))


def append_time(path: str) -> None:
    """One line with the time this task ended (O_APPEND: whole lines from any thread)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.time()!r}\n".encode())
    finally:
        os.close(fd)


@app.task(name="bench.block", ignore_result=True)
def block(seconds: float, path: str) -> None:
    """A blocking call (the tutorial's SMS SDK), then the time it ended."""
    time.sleep(seconds)
    append_time(path)


@app.task(name="bench.ablock", ignore_result=True)
async def ablock(seconds: float, path: str) -> None:
    await asyncio.sleep(seconds)
    append_time(path)


@app.task(name="bench.timed", ignore_result=True)
def timed(path: str, cpu_ms: float, sleep_s: float) -> None:
    """Burn ``cpu_ms`` of CPU, then sleep ``sleep_s``; append this run's start and end
    (the CPU-bound and long-task rows time a batch from its tasks' own records)."""
    began = time.time()
    spin_until = time.process_time() + cpu_ms / 1000
    while time.process_time() < spin_until:
        pass
    if sleep_s:
        time.sleep(sleep_s)
    with open(path, "a") as f:
        f.write(f"{began!r} {time.time()!r}\n")


# -- what the client calls -----------------------------------------------------------
def send_mark(path: str) -> None:
    mark.delay(path)


def delay_noop() -> None:
    noop.delay()


def bulk_noop(n: int, progress: Callable[[int], None], countdown_s: float | None = None) -> None:
    options = {} if countdown_s is None else {"countdown": countdown_s}
    sent = 0
    while sent < n:
        size = min(BATCH, n - sent)
        noop.delay_many([()] * size, batch_size=BATCH, **options)
        sent += size
        progress(sent)


def chord_noop(n: int) -> float:
    """Seconds from sending a chord of ``n`` no-op tasks to its body's result read."""
    began = time.perf_counter()
    result = chord(noop_result.s() for _ in range(n))(count.s())
    got = result.get(timeout=600)
    seconds = time.perf_counter() - began
    if got != n:
        raise RuntimeError(f"the chord's body counted {got} results, not {n}")
    return seconds


def send_blocks(n: int, seconds: float, path: str, coroutine: bool = False) -> None:
    (ablock if coroutine else block).delay_many([(seconds, path)] * n, batch_size=BATCH)


def send_timed(n: int, path: str, cpu_ms: float, sleep_s: float) -> None:
    for _ in range(n):
        timed.delay(path, cpu_ms, sleep_s)


def roundtrip() -> None:
    noop_result.delay().get(timeout=10)


def close() -> None:
    pass
