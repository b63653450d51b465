"""OpenTelemetry traces for celeriac, in the form opentelemetry-instrumentation-celery
gives Celery, so one trace joins across a mixed Celery/celeriac fleet.

``CeleriacInstrumentor().instrument(tracer_provider=...)`` connects to celeriac's signals:

- ``before_task_publish``: a PRODUCER span ``apply_async/<task name>``, a child of
  whatever span is current (a task publishing from inside its run is its parent), and
  its context injected into the message headers by the global propagator (W3C
  ``traceparent``/``tracestate`` by default): the headers Celery's instrumentation
  reads back as ``task.request.traceparent``; ``after_task_publish`` ends it.
- ``task_prerun``: a CONSUMER span ``run/<task name>`` whose parent is the context
  extracted from the message headers (or, with ``use_span_links=True``, a link to it),
  made current while the task runs; ``task_failure`` records the exception and an
  ERROR status; ``task_retry`` the reason (``celery.retry.reason``); ``task_postrun``
  sets ``celery.state`` and ends it.

Attributes are Celery's instrumentation's: ``celery.action`` (apply_async or run),
``celery.task_name``, ``messaging.message.id``, ``messaging.destination`` (the routing
key), ``celery.hostname``, ``celery.retries`` (when > 0), ``celery.state``.
The run signals are sent in the process and thread that runs the task, so spans come
from prefork children too: set the tracer provider up before the worker forks (in the
app module) with an exporter that works after fork (or in ``worker_process_init``).
``pip install "celeriac[otel]"``. Bulk sends (``delay_many``) send no publish signals,
so they get no publish span.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from celeriac import __version__, signals

ACTION = "celery.action"
TASK_NAME = "celery.task_name"
MESSAGE_ID = "messaging.message.id"
DESTINATION = "messaging.destination"
#: spans whose end signal never came (a publish that raised) are ended past this many
MAX_OPEN_SPANS = 10_000

_Key = tuple[str, bool]


class CeleriacInstrumentor:
    """Publish and run spans from celeriac's signals (see the module docstring)."""

    def __init__(self) -> None:
        self._tracer: trace.Tracer | None = None
        self._use_span_links = False
        self._open: OrderedDict[_Key, tuple[Span, object | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.instrumented = False

    def instrument(self, tracer_provider: trace.TracerProvider | None = None,
                   use_span_links: bool = False) -> None:
        """Connect the receivers (idempotent). Without a provider, the global one."""
        if self.instrumented:
            return
        self._tracer = trace.get_tracer("celeriac.contrib.opentelemetry", __version__,
                                        tracer_provider)
        self._use_span_links = use_span_links
        signals.before_task_publish.connect(self._before_publish, weak=False)
        signals.after_task_publish.connect(self._after_publish, weak=False)
        signals.task_prerun.connect(self._prerun, weak=False)
        signals.task_failure.connect(self._failure, weak=False)
        signals.task_retry.connect(self._retry, weak=False)
        signals.task_postrun.connect(self._postrun, weak=False)
        self.instrumented = True

    def uninstrument(self) -> None:
        signals.before_task_publish.disconnect(self._before_publish)
        signals.after_task_publish.disconnect(self._after_publish)
        signals.task_prerun.disconnect(self._prerun)
        signals.task_failure.disconnect(self._failure)
        signals.task_retry.disconnect(self._retry)
        signals.task_postrun.disconnect(self._postrun)
        self.instrumented = False

    # -- publishing ----------------------------------------------------------------------
    def _before_publish(self, sender: Any = None, **kw: Any) -> None:
        headers = kw.get("headers")
        if not isinstance(headers, dict) or self._tracer is None:
            return
        task_id, name = headers.get("id"), str(sender or headers.get("task") or "unknown")
        if not task_id:
            return
        span = self._tracer.start_span(f"apply_async/{name}", kind=SpanKind.PRODUCER)
        if span.is_recording():
            span.set_attribute(ACTION, "apply_async")
            span.set_attribute(MESSAGE_ID, str(task_id))
            span.set_attribute(TASK_NAME, name)
            if kw.get("routing_key"):
                span.set_attribute(DESTINATION, str(kw["routing_key"]))
        inject(headers, context=trace.set_span_in_context(span))
        self._keep((str(task_id), True), span, None)

    def _after_publish(self, sender: Any = None, **kw: Any) -> None:
        headers = kw.get("headers")
        task_id = headers.get("id") if isinstance(headers, dict) else None
        opened = self._take((str(task_id), True)) if task_id else None
        if opened is not None:
            opened[0].end()

    # -- running -------------------------------------------------------------------------
    def _prerun(self, sender: Any = None, **kw: Any) -> None:
        task, task_id = kw.get("task"), kw.get("task_id")
        if task is None or not task_id or self._tracer is None:
            return
        request = task.request
        carrier = _carrier(request)
        parent = extract(carrier) if carrier else None
        name = f"run/{task.name}"
        links = None
        if self._use_span_links and parent is not None:
            linked = trace.get_current_span(parent).get_span_context()
            links = [trace.Link(linked)] if linked.is_valid else None
            parent = None
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER,
                                       links=links)
        if span.is_recording():
            _run_attributes(span, task.name, str(task_id), request)
        token = context_api.attach(trace.set_span_in_context(span, parent))
        self._keep((str(task_id), False), span, token)

    def _failure(self, sender: Any = None, **kw: Any) -> None:
        opened = self._peek((str(kw.get("task_id")), False))
        exc = kw.get("exception")
        if opened is None or not opened[0].is_recording():
            return
        span = opened[0]
        if isinstance(exc, BaseException):
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc) if exc is not None else None))

    def _retry(self, sender: Any = None, **kw: Any) -> None:
        request = kw.get("request")
        task_id = getattr(request, "id", None)
        opened = self._peek((str(task_id), False)) if task_id else None
        if opened is not None and opened[0].is_recording():
            opened[0].set_attribute("celery.retry.reason", str(kw.get("reason")))

    def _postrun(self, sender: Any = None, **kw: Any) -> None:
        opened = self._take((str(kw.get("task_id")), False))
        if opened is None:
            return
        span, token = opened
        if span.is_recording() and kw.get("state"):
            span.set_attribute("celery.state", str(kw["state"]))
        span.end()
        if token is not None:
            try:
                context_api.detach(token)  # type: ignore[arg-type]
            except Exception:  # attached in another context: nothing to restore there
                pass

    # -- the open spans ------------------------------------------------------------------
    def _keep(self, key: _Key, span: Span, token: object | None) -> None:
        with self._lock:
            self._open[key] = (span, token)
            while len(self._open) > MAX_OPEN_SPANS:
                _, (stale, _) = self._open.popitem(last=False)
                stale.end()

    def _take(self, key: _Key) -> tuple[Span, object | None] | None:
        with self._lock:
            return self._open.pop(key, None)

    def _peek(self, key: _Key) -> tuple[Span, object | None] | None:
        with self._lock:
            return self._open.get(key)


def _carrier(request: Any) -> Mapping[str, Any] | None:
    """The message headers of the running task (where the publisher injected)."""
    headers = getattr(request, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def _run_attributes(span: Span, name: str, task_id: str, request: Any) -> None:
    span.set_attribute(ACTION, "run")
    span.set_attribute(TASK_NAME, name)
    span.set_attribute(MESSAGE_ID, task_id)
    hostname = getattr(request, "hostname", None)
    if hostname:
        span.set_attribute("celery.hostname", str(hostname))
    info = getattr(request, "delivery_info", None) or {}
    if isinstance(info, Mapping) and info.get("routing_key"):
        span.set_attribute(DESTINATION, str(info["routing_key"]))
    retries = getattr(request, "retries", 0)
    if retries:
        span.set_attribute("celery.retries", int(retries))


__all__ = ["CeleriacInstrumentor"]
