"""The dashboard's web app (Starlette): the page, its JSON API, live updates by SSE,
actions by POST, ``/metrics``. ``Dashboard`` owns the state and its three background
loops: one folds events in (``events.EventSource`` -> ``state.Fleet``), one reads the
queues from the broker every ``poll_s`` seconds, one asks the workers for their pool
by remote control (remote.py).

Paths: ``/`` the page; ``/static/*`` its script, style and the vendored uPlot;
``/api/state`` workers, queues, counts, charts; ``/api/tasks?search=&state=``;
``/api/tasks/<id>``; ``/api/stream`` (SSE: the state when it changed, at most once a
second); ``POST /api/actions/<name>`` (actions.py; CSRF token required);
``/metrics`` (Prometheus). Every path sits behind ``security.Guard``.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from celeriac.brokers.base import Broker
from celeriac.dashboard.actions import run_action
from celeriac.dashboard.events import EventSource
from celeriac.dashboard.remote import Remote, StatsPoller
from celeriac.dashboard.security import TOKEN_COOKIE, Guard
from celeriac.dashboard.state import Fleet
from celeriac.observe.queues import BrokerStats, queue_stats

logger = logging.getLogger("celeriac.dashboard")
HERE = Path(__file__).resolve().parent
#: what the page may load: only this origin (no CDN, no inline script)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
FINAL_EVENTS = {"task-succeeded": "SUCCESS", "task-failed": "FAILURE",
                "task-retried": "RETRY", "task-revoked": "REVOKED"}


class Dashboard:
    """State, background loops and the ASGI app of one dashboard process."""

    def __init__(self, app: Any, source: EventSource, guard: Guard, *,
                 max_tasks: int = 10_000, queues: list[str] | None = None,
                 poll_s: float = 2.0, stream_s: float = 1.0) -> None:
        self.app = app
        self.source = source
        self.guard = guard
        self.fleet = Fleet(max_tasks)
        self.queues = list(queues or [str(app.conf.task_default_queue)])
        self.poll_s, self.stream_s = poll_s, stream_s
        self.stats: BrokerStats | None = None
        self.stats_error: str | None = None
        self.broker: Broker | None = None
        self.metrics: Any = _metrics()
        self.remote = Remote(app)
        self.stats_poller = StatsPoller(self.remote, self.fleet)
        self._tasks: list[asyncio.Task[None]] = []

    # -- background ---------------------------------------------------------------------
    async def start(self) -> None:
        self.broker = self.app._new_broker()
        await self.broker.connect()
        self._tasks = [asyncio.create_task(self._follow(), name="dashboard-events"),
                       asyncio.create_task(self._poll(), name="dashboard-queues"),
                       asyncio.create_task(self.stats_poller.run(), name="dashboard-stats")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self.source.close()
        if self.broker is not None:
            await self.broker.close()

    async def _follow(self) -> None:
        while True:
            try:
                async for batch in self.source.batches():
                    self.ingest(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("dashboard: reading events failed (%s); again in 2 s", exc)
                await asyncio.sleep(2)

    def ingest(self, batch: list[dict[str, Any]]) -> None:
        self.fleet.apply(batch)
        if self.metrics is not None:
            for event in batch:
                state = FINAL_EVENTS.get(event.get("type", ""))
                if state is not None:
                    task = self.fleet.tasks.get(event.get("uuid", ""))
                    name = str((task.get("name") if task else None) or "?")
                    runtime = event.get("runtime")
                    self.metrics.on_outcome(name, state, runtime
                                            if isinstance(runtime, (int, float)) else None)

    async def _poll(self) -> None:
        assert self.broker is not None
        while True:
            try:
                self.stats = await queue_stats(self.broker, self.queues)
                self.stats_error = None
                if self.metrics is not None:
                    self.metrics.set_broker_stats(self.stats)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(self.poll_s)

    # -- views --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        fleet = self.fleet
        return {"workers": fleet.worker_list(), "online": fleet.online_workers(),
                "queues": self.stats.as_dict() if self.stats else None,
                "queues_error": self.stats_error, "counts": fleet.counts(),
                "charts": fleet.charts(), "events_seen": fleet.events_seen,
                "tasks_kept": len(fleet.tasks), "max_tasks": fleet.max_tasks,
                "now": time.time()}

    async def page(self, request: Request) -> Response:
        text = (HERE / "page.html").read_text()
        text = text.replace("{{csrf}}", html.escape(self.guard.csrf_token, quote=True))
        response = HTMLResponse(text)
        token = request.query_params.get("token")
        if self.guard.token and token == self.guard.token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def state(self, request: Request) -> Response:
        return JSONResponse(self.snapshot())

    async def tasks(self, request: Request) -> Response:
        q = request.query_params
        try:
            limit = max(1, min(1000, int(q.get("limit", "200"))))
        except ValueError:
            limit = 200
        return JSONResponse(self.fleet.task_list(q.get("search", ""), q.get("state", ""),
                                                 limit))

    async def task(self, request: Request) -> Response:
        detail = self.fleet.task_detail(request.path_params["task_id"])
        if detail is None:
            return JSONResponse({"error": "no such task in the history"}, status_code=404)
        return JSONResponse(detail)

    async def stream(self, request: Request) -> Response:
        async def updates() -> AsyncIterator[str]:
            seen: tuple[int, int] | None = None
            quiet_s = 0.0
            while not await request.is_disconnected():
                mark = (self.fleet.version, id(self.stats))
                if mark != seen:
                    seen, quiet_s = mark, 0.0
                    yield f"data: {json.dumps(self.snapshot())}\n\n"
                elif quiet_s >= 15:
                    quiet_s = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(self.stream_s)
                quiet_s += self.stream_s

        return StreamingResponse(updates(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def action(self, request: Request) -> Response:
        if not self.guard.csrf_ok(request):
            return JSONResponse({"ok": False, "message": "missing or wrong CSRF token"},
                                status_code=403)
        try:
            params = await request.json()
        except ValueError:
            params = None
        if not isinstance(params, dict):
            return JSONResponse({"ok": False, "message": "send a JSON object"},
                                status_code=400)
        assert self.broker is not None
        name = request.path_params["name"]
        status, message = await run_action(name, params, self.app, self.broker,
                                           self.remote, self.fleet.online_workers())
        logger.warning("dashboard action %s %s: %s", name, params, message)
        # the action's own outcome is in the body (the page shows the sentence); HTTP
        # errors are kept for requests refused before any action (auth, CSRF, bad JSON)
        return JSONResponse({"ok": status == 200, "status": status, "message": message})

    async def metrics_page(self, request: Request) -> Response:
        if self.metrics is None:
            return PlainTextResponse("prometheus-client is not installed: pip install "
                                     "'celeriac[metrics]'\n", status_code=501)
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.metrics.workers.set(self.fleet.online_workers())
        return Response(generate_latest(self.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    # -- the ASGI app -------------------------------------------------------------------
    def asgi(self) -> ASGIApp:
        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        routes = [
            Route("/", self.page),
            Route("/api/state", self.state),
            Route("/api/tasks", self.tasks),
            Route("/api/tasks/{task_id}", self.task),
            Route("/api/stream", self.stream),
            Route("/api/actions/{name}", self.action, methods=["POST"]),
            Route("/metrics", self.metrics_page),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return _Guarded(Starlette(routes=routes, lifespan=lifespan), self.guard)


class _Guarded:
    """Authentication on every HTTP request, and the security headers on every reply."""

    def __init__(self, inner: ASGIApp, guard: Guard) -> None:
        self.inner, self.guard = inner, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        if not self.guard.allowed(Request(scope)):
            challenge = {"WWW-Authenticate": 'Basic realm="celeriac"'} \
                if self.guard.basic_auth else {}
            reply = PlainTextResponse("authentication required\n", status_code=401,
                                      headers=challenge)
            return await reply(scope, receive, send)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.inner(scope, receive, send_with_headers)


def _metrics() -> Any:
    try:
        from celeriac.observe.metrics import Metrics
    except ImportError:
        return None
    return Metrics()
