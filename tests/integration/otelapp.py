"""A worker app traced by celeriac.contrib.opentelemetry: spans go to the file named by
OTEL_SPAN_FILE (spanfile.py), for test_opentelemetry.py."""

from __future__ import annotations

import os

from spanfile import file_provider

from celeriac import Celery
from celeriac.contrib.opentelemetry import CeleriacInstrumentor

app = Celery("otelapp", broker=os.environ["OTEL_BROKER"], backend=os.environ["OTEL_BROKER"])
app.conf.task_default_queue = "otel"
app.conf.broker_transport_options = {"global_keyprefix": os.environ.get("OTEL_KEYPREFIX", "")}

CeleriacInstrumentor().instrument(tracer_provider=file_provider(os.environ["OTEL_SPAN_FILE"]))


@app.task(name="otel.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="otel.fails")
def fails() -> None:
    raise ValueError("traced failure")


@app.task(name="otel.parent")
def parent() -> str:
    return add.delay(1, 1).id
