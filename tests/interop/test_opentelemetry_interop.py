"""One trace across a mixed fleet: a celeriac client's publish span is the parent of a
Celery 5.7 worker's run span (opentelemetry-instrumentation-celery), and a Celery
client's (instrumented the same way) the parent of a celeriac worker's."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.instrumentation.celery",
                    reason="opentelemetry-instrumentation-celery is not installed")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from tests.integration.spanfile import read_spans, span_dict
from tests.interop.conftest import Fleet


@pytest.fixture
def memory_provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter


def _run_span(path: Path, task_id: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for span in read_spans(path):
            if span["name"].startswith("run/") and \
                    span["attributes"].get("messaging.message.id") == task_id:
                return span
        time.sleep(0.05)
    raise AssertionError(f"no run span for {task_id}: {read_spans(path)}")


def _start(fleet: Fleet, side: str, span_file: Path) -> None:
    if side == "celery":
        argv = [sys.executable, "-m", "celery", "-A", "tests.interop.otel_sides:celery_app",
                "worker", "-P", "solo", "-l", "info", "-Q", fleet.queue, "--without-gossip",
                "--without-mingle", "--without-heartbeat"]
    else:
        argv = [sys.executable, "-m", "celeriac", "-A",
                "tests.interop.otel_sides:celeriac_app", "worker", "-P", "prefork", "-c", "2",
                "-l", "info", "-Q", fleet.queue]
    fleet._start(argv, side, "ready.", OTEL_SPAN_FILE=str(span_file))


def test_celeriac_publish_span_parents_a_celery_workers_run(
        fleet: Fleet, tmp_path: Path, memory_provider: Any) -> None:
    from celeriac.contrib.opentelemetry import CeleriacInstrumentor

    span_file = tmp_path / "spans.jsonl"
    _start(fleet, "celery", span_file)
    provider, exporter = memory_provider
    instrumentor = CeleriacInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        result = fleet.celeriac_client().send_task("interop.add", (2, 3))
        assert result.get(timeout=20) == 5
    finally:
        instrumentor.uninstrument()
    [published] = [span_dict(s) for s in exporter.get_finished_spans()]
    assert published["name"] == "apply_async/interop.add"
    run = _run_span(span_file, result.id)
    assert run["name"] == "run/interop.add" and run["kind"] == "CONSUMER"
    assert (run["trace_id"], run["parent_id"]) == (published["trace_id"],
                                                   published["span_id"])
    assert run["attributes"]["celery.state"] == "SUCCESS"


def test_celery_publish_span_parents_a_celeriac_workers_run(
        fleet: Fleet, tmp_path: Path, memory_provider: Any) -> None:
    from celery import Celery as RealCelery
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    span_file = tmp_path / "spans.jsonl"
    _start(fleet, "celeriac", span_file)
    provider, exporter = memory_provider
    # the current app, with the task registered: Celery's instrumentation ends the
    # publish span only for a task it finds in the current app's registry
    client = RealCelery("otel-client", broker=fleet.broker_url, backend=fleet.backend_url)
    client.conf.task_default_queue = fleet.queue
    client.conf.broker_transport_options = {"global_keyprefix": fleet.prefix}

    @client.task(name="interop.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        result = add.delay(4, 5)
        assert result.get(timeout=20) == 9
    finally:
        instrumentor.uninstrument()
        client.close()
    published = [span_dict(s) for s in exporter.get_finished_spans()
                 if s.name == "apply_async/interop.add"]
    assert len(published) == 1
    run = _run_span(span_file, result.id)
    assert run["name"] == "run/interop.add" and run["kind"] == "CONSUMER"
    assert run["pid"] != fleet.procs[-1][0].pid  # a prefork child
    assert (run["trace_id"], run["parent_id"]) == (published[0]["trace_id"],
                                                   published[0]["span_id"])
