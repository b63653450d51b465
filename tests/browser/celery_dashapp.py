"""A Celery 5.7 app with the dashboard tests' task, run with ``-E`` so its worker sends
real heartbeats and task events (``celery -A tests.browser.celery_dashapp worker -E``)."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("celery_dashapp", broker=os.environ["DASH_BROKER"],
             backend=os.environ.get("DASH_BACKEND") or os.environ["DASH_BROKER"])
app.conf.broker_transport_options = {"global_keyprefix": os.environ.get("DASH_KEYPREFIX", "")}
app.conf.task_default_queue = os.environ.get("DASH_QUEUE", "celery")
app.conf.worker_hijack_root_logger = True


@app.task(name="dash.add")
def add(x: object, y: int) -> str:
    return f"{x}+{y}"


@app.task(name="dash.fail")
def fail() -> None:
    raise ValueError("broken on purpose")
