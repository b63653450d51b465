"""taskapp plus tasks the CLI tests need (``celeriac -A cliapp worker``): a worker's
task threads, and a task with no time limit of its own."""

from __future__ import annotations

import threading
import time

from taskapp import app, record

from celeriac import SoftTimeLimitExceeded


@app.task(name="task_threads")
def task_threads() -> int:
    """How many threads of the threads pool this worker process has now."""
    return sum(1 for t in threading.enumerate() if t.name.startswith("celeriac-task"))


@app.task(name="sleepy")
def sleepy(seconds: float, tag: str) -> str:
    """Sleeps; says whether a soft time limit interrupted it."""
    record(f"start {tag}")
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        record(f"soft {tag}")
        return "soft limit"
    record(f"done {tag}")
    return "slept"
