"""Celery's side of the benchmark (runs in .bench-envs/celery): the same tasks as
celeriac_app.py. Bulk publishing is Celery's ``group(...).apply_async()``: Celery has no
batch publish, a group sends its members one by one through one producer."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from celery import Celery, chord, group

CHUNK = 1000

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"],
             backend=os.environ.get("BENCH_RESULT_BACKEND") or None)
# The benchmark compares workers that ack after the task ran (celeriac's and Dramatiq's
# default): Celery's ack-on-receipt can lose a task when the worker dies mid-run.
app.conf.task_acks_late = True


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


@app.task(name="bench.block", ignore_result=True)
def block(seconds: float, path: str) -> None:
    """A blocking call (the tutorial's SMS SDK: green under -P eventlet/gevent, which
    monkey-patch time.sleep), then the time it ended."""
    time.sleep(seconds)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.time()!r}\n".encode())
    finally:
        os.close(fd)


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


def send_mark(path: str) -> None:
    mark.delay(path)


def delay_noop() -> None:
    noop.delay()


def bulk_noop(n: int, progress: Callable[[int], None]) -> None:
    # groups of CHUNK so the progress bar moves; one group of n costs the same per task
    sent = 0
    while sent < n:
        size = min(CHUNK, n - sent)
        group(noop.si() for _ in range(size)).apply_async()
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
    if coroutine:
        raise ValueError("Celery has no async def tasks")
    sent = 0
    while sent < n:
        size = min(CHUNK, n - sent)
        group(block.si(seconds, path) for _ in range(size)).apply_async()
        sent += size


def send_timed(n: int, path: str, cpu_ms: float, sleep_s: float) -> None:
    for _ in range(n):
        timed.delay(path, cpu_ms, sleep_s)


def roundtrip() -> None:
    noop_result.delay().get(timeout=10)


def close() -> None:
    # Without this a client that exits right after a bulk publish on RabbitMQ loses its
    # last messages (measured: 75 and 127 of 50,001): py-amqp publishes without confirms,
    # and the socket closed at exit with unread data is reset, so RabbitMQ drops what it
    # had received but not yet read. app.close() ends the connection properly.
    app.close()
