"""The app the dashboard tests serve (``celeriac -A dashapp dashboard``): Redis from
DASH_BROKER (results in DASH_BACKEND, else there too), keys under DASH_KEYPREFIX."""

from __future__ import annotations

import os

from celeriac import Celery

app = Celery("dashapp", broker=os.environ["DASH_BROKER"],
             backend=os.environ.get("DASH_BACKEND") or os.environ["DASH_BROKER"])
app.conf.task_default_queue = os.environ.get("DASH_QUEUE", "celery")
app.conf.broker_transport_options = {"global_keyprefix": os.environ.get("DASH_KEYPREFIX", "")}


@app.task(name="dash.add")
def add(x: int, y: int) -> int:
    return x + y
