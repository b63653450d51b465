"""The interop apps, traced: ``celery -A tests.interop.otel_sides:celery_app`` runs a
Celery 5.7 worker instrumented by opentelemetry-instrumentation-celery, ``celeriac -A
tests.interop.otel_sides:celeriac_app`` a celeriac worker instrumented by
celeriac.contrib.opentelemetry; both export spans to the file named by OTEL_SPAN_FILE.
Only the side that runs imports its framework's instrumentation."""

from __future__ import annotations

import os
from typing import Any

from tests.integration.spanfile import file_provider


def __getattr__(name: str) -> Any:
    provider = file_provider(os.environ["OTEL_SPAN_FILE"])
    if name == "celery_app":
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        from tests.interop.celery_side import app as celery_app

        CeleryInstrumentor().instrument(tracer_provider=provider)
        return celery_app
    if name == "celeriac_app":
        from celeriac.contrib.opentelemetry import CeleriacInstrumentor
        from tests.interop.celeriac_side import app as celeriac_app

        CeleriacInstrumentor().instrument(tracer_provider=provider)
        return celeriac_app
    raise AttributeError(name)
