"""Traces across a real worker: the client's publish span and the worker's run span are
one trace, linked through the message headers (celeriac.contrib.opentelemetry), with
the worker running on prefork (spans from its children), and a task that publishes
from inside its run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from celeriac import Celery
from celeriac.contrib.opentelemetry import CeleriacInstrumentor
from tests.integration.spanfile import read_spans, span_dict

HERE = Path(__file__).resolve().parent


@pytest.fixture
def traced_client() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleriacInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield exporter
    instrumentor.uninstrument()


def _wait_spans(path: Path, names: set[str], timeout_s: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        spans = read_spans(path)
        if names <= {s["name"] for s in spans}:
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"spans {names} not all exported: {spans}")
        time.sleep(0.05)


def test_publish_and_run_spans_join_across_a_prefork_worker(
        tmp_path: Path, traced_client: InMemorySpanExporter) -> None:
    broker = f"sqlite:///{tmp_path}/b.db"
    span_file = tmp_path / "worker-spans.jsonl"
    env = {**os.environ, "OTEL_BROKER": broker, "OTEL_SPAN_FILE": str(span_file),
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE)])}
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "otelapp", "worker", "-l", "info",
         "-P", "prefork", "-c", "2", "-Q", "otel"], cwd=HERE, env=env, stdout=log,
        stderr=subprocess.STDOUT)
    client = Celery("otelapp", broker=broker, backend=broker, set_as_current=False)
    client.conf.task_default_queue = "otel"
    try:
        assert client.send_task("otel.add", (2, 3)).get(timeout=30) == 5
        failed = client.send_task("otel.fails")
        with pytest.raises(ValueError):
            failed.get(timeout=30)
        child_id = client.send_task("otel.parent").get(timeout=30)
        assert client.AsyncResult(child_id).get(timeout=30) == 2
        spans = _wait_spans(span_file, {"run/otel.add", "run/otel.fails", "run/otel.parent",
                                        "apply_async/otel.add"})
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    published = {s["attributes"]["celery.task_name"]: s for s in
                 map(span_dict, traced_client.get_finished_spans())}
    assert set(published) == {"otel.add", "otel.fails", "otel.parent"}
    for name, pub in published.items():
        assert pub["name"] == f"apply_async/{name}" and pub["kind"] == "PRODUCER"
        assert pub["attributes"]["celery.action"] == "apply_async"
        assert pub["attributes"]["messaging.destination"] == "otel"
    runs = [s for s in spans if s["name"].startswith("run/")]
    by_id = {s["attributes"]["messaging.message.id"]: s for s in runs}
    for name, pub in published.items():
        run = by_id[pub["attributes"]["messaging.message.id"]]
        assert run["name"] == f"run/{name}" and run["kind"] == "CONSUMER"
        assert run["trace_id"] == pub["trace_id"]       # one trace,
        assert run["parent_id"] == pub["span_id"]       # the publish span its parent
        assert run["pid"] != worker.pid                 # run in a prefork child
        assert run["attributes"]["celery.action"] == "run"
    assert by_id[published["otel.add"]["attributes"]["messaging.message.id"]][
        "attributes"]["celery.state"] == "SUCCESS"
    failed_run = by_id[failed.id]
    assert failed_run["status"] == "ERROR" and "exception" in failed_run["events"]
    assert failed_run["attributes"]["celery.state"] == "FAILURE"
    # a publish from inside a run is that run's child, and its task's run is its child
    parent_run = by_id[published["otel.parent"]["attributes"]["messaging.message.id"]]
    inner_pub = next(s for s in spans if s["name"] == "apply_async/otel.add")
    inner_run = by_id[child_id]
    assert inner_pub["parent_id"] == parent_run["span_id"]
    assert inner_run["parent_id"] == inner_pub["span_id"]
    assert {inner_pub["trace_id"], inner_run["trace_id"]} == {parent_run["trace_id"]}
