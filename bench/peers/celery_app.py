"""Celery's side of the benchmark (runs in .bench-envs/celery): the same tasks as
celeriac_app.py (both register bench_tasks.py's). Bulk publishing is Celery's
``group(...).apply_async()``: Celery has no batch publish, a group sends its members one
by one through one producer."""

from __future__ import annotations

import os
from collections.abc import Callable

from bench_tasks import register
from celery import Celery, chord, group

CHUNK = 1000

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"],
             backend=os.environ.get("BENCH_RESULT_BACKEND") or None)
# The benchmark compares workers that ack after the task ran (celeriac's and Dramatiq's
# default): Celery's ack-on-receipt can lose a task when the worker dies mid-run.
app.conf.task_acks_late = True
tasks = register(app)  # bench.noop, noop_result, count, mark, block, timed: bench_tasks.py
noop, block = tasks.noop, tasks.block
send_mark, delay_noop, send_timed = tasks.send_mark, tasks.delay_noop, tasks.send_timed
roundtrip = tasks.roundtrip


def bulk_noop(n: int, progress: Callable[[int], None]) -> None:
    # groups of CHUNK so the progress bar moves; one group of n costs the same per task
    sent = 0
    while sent < n:
        size = min(CHUNK, n - sent)
        group(noop.si() for _ in range(size)).apply_async()
        sent += size
        progress(sent)


def chord_noop(n: int) -> float:
    return tasks.chord_noop(chord, n)


def send_blocks(n: int, seconds: float, path: str, coroutine: bool = False) -> None:
    if coroutine:
        raise ValueError("Celery has no async def tasks")
    sent = 0
    while sent < n:
        size = min(CHUNK, n - sent)
        group(block.si(seconds, path) for _ in range(size)).apply_async()
        sent += size


def close() -> None:
    # Without this a client that exits right after a bulk publish on RabbitMQ loses its
    # last messages (measured: 75 and 127 of 50,001): py-amqp publishes without confirms,
    # and the socket closed at exit with unread data is reset, so RabbitMQ drops what it
    # had received but not yet read. app.close() ends the connection properly.
    app.close()
