"""The benchmark's tasks, defined once for celeriac_app.py and celery_app.py: plain
functions each app registers as ``bench.<name>``, and the client calls that are the same
on both. It imports neither system, so each venv loads it from bench/peers as it is (the
Celery venv has no celeriac installed)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def noop() -> None:
    return None


def noop_result() -> None:
    return None


def count(results: list[None]) -> int:
    """A chord's body: how many header results arrived."""
    return len(results)


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


def block(seconds: float, path: str) -> None:
    """A blocking call (the tutorial's SMS SDK: green under Celery's -P eventlet/gevent,
    which monkey-patch time.sleep), then the time it ended."""
    time.sleep(seconds)
    append_time(path)


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


@dataclass(frozen=True)
class Tasks:
    """One app's registered tasks (what has ``delay``) and the client calls both make."""

    noop: Any
    noop_result: Any
    count: Any
    mark: Any
    block: Any
    timed: Any

    def send_mark(self, path: str) -> None:
        self.mark.delay(path)

    def delay_noop(self) -> None:
        self.noop.delay()

    def send_timed(self, n: int, path: str, cpu_ms: float, sleep_s: float) -> None:
        for _ in range(n):
            self.timed.delay(path, cpu_ms, sleep_s)

    def roundtrip(self) -> None:
        self.noop_result.delay().get(timeout=10)

    def chord_noop(self, chord: Callable[..., Any], n: int) -> float:
        """Seconds from sending a chord of ``n`` no-op tasks (``chord`` is the system's)
        to its body's result read."""
        began = time.perf_counter()
        result = chord(self.noop_result.s() for _ in range(n))(self.count.s())
        got = result.get(timeout=600)
        seconds = time.perf_counter() - began
        if got != n:
            raise RuntimeError(f"the chord's body counted {got} results, not {n}")
        return seconds


def register(app: Any) -> Tasks:
    """Register the task bodies on ``app`` (a celeriac or a Celery app)."""
    def task(body: Callable[..., Any], ignore_result: bool = True) -> Any:
        return app.task(name=f"bench.{body.__name__}", ignore_result=ignore_result)(body)

    return Tasks(noop=task(noop), noop_result=task(noop_result, ignore_result=False),
                 count=task(count, ignore_result=False), mark=task(mark), block=task(block),
                 timed=task(timed))
