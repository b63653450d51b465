"""The celeriac app whose worker the dashboard tests watch (``celeriac -A
tests.browser.celeriac_dashapp worker -E``): Redis from DASH_BROKER, keys under
DASH_KEYPREFIX. ``dash.touch`` leaves a file behind, so a test can tell that a task
never ran; ``dash.sleep`` runs until terminated."""

from __future__ import annotations

import os
import time
from pathlib import Path

from celeriac import Celery

app = Celery("celeriac_dashapp", broker=os.environ["DASH_BROKER"],
             backend=os.environ.get("DASH_BACKEND") or os.environ["DASH_BROKER"])
app.conf.task_default_queue = os.environ.get("DASH_QUEUE", "celery")
app.conf.broker_transport_options = {"global_keyprefix": os.environ.get("DASH_KEYPREFIX", "")}


@app.task(name="dash.add")
def add(x: object, y: int) -> str:
    return f"{x}+{y}"


@app.task(name="dash.fail")
def fail() -> None:
    raise ValueError("broken on purpose")


@app.task(name="dash.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="dash.touch")
def touch(path: str) -> str:
    Path(path).write_text("ran")
    return path
