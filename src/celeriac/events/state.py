"""What the event consumers share (Celery's ``celery.events.state``, in small): the
task event -> state map and the worker model that ``worker-*`` events are folded into.
``celeriac events`` (view.py) and the dashboard (dashboard/state.py) both keep their
workers as ``Worker``; no web framework is imported here, so the CLI needs no extra.

A worker is online until ``worker-offline``, or until its last heartbeat is older than
``HEARTBEAT_WINDOW`` times its ``freq`` (Celery's rule).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: task event type -> Celery's state name
TASK_STATES = {
    "task-sent": "PENDING", "task-received": "RECEIVED", "task-started": "STARTED",
    "task-succeeded": "SUCCESS", "task-failed": "FAILURE", "task-retried": "RETRY",
    "task-revoked": "REVOKED", "task-rejected": "REJECTED",
}
#: states after which a task changes no more (an older event cannot move it back)
FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})
#: a worker is offline once its last heartbeat is this many ``freq`` old (Celery: 2x)
HEARTBEAT_WINDOW = 2.0


@dataclass
class Worker:
    """One worker as its events (and, on the dashboard, ``inspect stats``) tell it."""

    hostname: str
    online: bool = True
    last_heartbeat: float = 0.0
    freq: float = 2.0
    active: int = 0
    processed: int = 0
    loadavg: list[float] = field(default_factory=list)
    sw_ident: str = ""
    sw_ver: str = ""
    pid: int | None = None
    pool: str | None = None
    concurrency: int | None = None

    def update(self, kind: str, event: Mapping[str, Any]) -> None:
        """Fold in one ``worker-*`` event: the fields it carries, of the right type,
        replace those kept; ``worker-offline`` marks the worker offline."""
        self.online = kind != "worker-offline"
        self.last_heartbeat = number(event.get("timestamp")) or time.time()
        self.freq = number(event.get("freq")) or self.freq
        for name in ("active", "processed", "pid", "concurrency"):
            value = event.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, value)
        loadavg = event.get("loadavg")
        if isinstance(loadavg, list):
            self.loadavg = [float(x) for x in loadavg if isinstance(x, (int, float))][:3]
        for name in ("sw_ident", "sw_ver", "pool"):
            if isinstance(event.get(name), str):
                setattr(self, name, event[name])

    def alive(self, now: float) -> bool:
        return self.online and now - self.last_heartbeat <= self.freq * HEARTBEAT_WINDOW

    @property
    def software(self) -> str:
        """``celeriac 0.1.0``: sw_ident and sw_ver, as Flower shows them."""
        return f"{self.sw_ident} {self.sw_ver}".strip()

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"hostname": self.hostname, "online": self.alive(now),
                "heartbeat_age": round(now - self.last_heartbeat, 1)
                if self.last_heartbeat else None,
                "active": self.active, "processed": self.processed,
                "loadavg": self.loadavg, "sw": self.software,
                "pid": self.pid, "pool": self.pool, "concurrency": self.concurrency}


def number(value: Any) -> float | None:
    """An event's numeric field as a float; None when it is missing or not a number."""
    return float(value) if isinstance(value, (int, float)) else None
