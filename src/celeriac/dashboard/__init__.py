"""``celeriac -A app dashboard``: the fleet in a browser (Starlette + uvicorn, live by
SSE, extra ``dashboard``). events.py reads Celery-format events, state.py folds them
into workers, a bounded task history and chart series, server.py serves the page, its
API, actions and ``/metrics``, security.py guards it all, actions.py does what the
buttons ask. The page and the vendored uPlot are in static/ (no CDN)."""

from __future__ import annotations

from typing import Any

from celeriac.dashboard.events import EventSource, event_source
from celeriac.dashboard.security import Guard, check_bind


def serve(app: Any, *, address: str = "127.0.0.1", port: int = 5555,
          guard: Guard | None = None, insecure: bool = False,
          source: EventSource | None = None, queues: list[str] | None = None,
          max_tasks: int | None = None) -> None:
    """Run the dashboard until interrupted (raises ValueError for an unsafe bind)."""
    import uvicorn

    from celeriac.dashboard.server import Dashboard

    guard = guard or Guard()
    refusal = check_bind(address, guard, insecure)
    if refusal:
        raise ValueError(refusal)
    dashboard = Dashboard(app, source or event_source(app), guard, queues=queues,
                          max_tasks=max_tasks or int(app.conf.dashboard_max_tasks))
    config = uvicorn.Config(dashboard.asgi(), host=address, port=port, log_level="warning",
                            access_log=False, lifespan="on")
    print(f"celeriac dashboard on http://{address}:{port}/", flush=True)
    uvicorn.Server(config).run()


__all__ = ["Guard", "serve"]
