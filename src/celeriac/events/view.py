"""``celeriac events``: the live terminal view, workers and recent tasks, as plain text.

``Monitor.apply(events)`` folds events in; ``Monitor.render()`` returns the screen.
Bounded: ``max_tasks`` tasks are kept (the oldest forgotten first), each field cut to a
column. A worker is online until ``worker-offline``, or until its last heartbeat is
older than twice its ``freq`` (Celery's rule). A task's state follows Celery's event
-> state map, and a finished task does not go back to an earlier state when events
arrive out of order. ``task-sent`` comes from the client: it does not name a worker.
This model is the CLI's own (the dashboard's needs its extra, Starlette).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

STATES = {
    "task-sent": "PENDING", "task-received": "RECEIVED", "task-started": "STARTED",
    "task-succeeded": "SUCCESS", "task-failed": "FAILURE", "task-retried": "RETRY",
    "task-revoked": "REVOKED", "task-rejected": "REJECTED",
}
FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})
#: a worker is offline once its last heartbeat is this many ``freq`` old
HEARTBEAT_WINDOW = 2.0


@dataclass
class WorkerRow:
    hostname: str
    online: bool = True
    seen: float = 0.0
    freq: float = 2.0
    active: int = 0
    processed: int = 0
    loadavg: list[float] = field(default_factory=list)
    software: str = ""

    def alive(self, now: float) -> bool:
        return self.online and now - self.seen <= self.freq * HEARTBEAT_WINDOW


@dataclass
class TaskRow:
    uuid: str
    name: str = ""
    state: str = "PENDING"
    worker: str = ""
    args: str = ""
    runtime: float | None = None
    updated: float = 0.0
    detail: str = ""


class Monitor:
    """See the module docstring."""

    def __init__(self, max_tasks: int = 1000) -> None:
        self.max_tasks = max_tasks
        self.workers: dict[str, WorkerRow] = {}
        self.tasks: OrderedDict[str, TaskRow] = OrderedDict()
        self.seen = 0

    def apply(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = str(event.get("type", ""))
            self.seen += 1
            if kind.startswith("worker-"):
                self._worker(kind, event)
            elif kind.startswith("task-"):
                self._task(kind, event)

    def _worker(self, kind: str, event: dict[str, Any]) -> None:
        host = str(event.get("hostname") or "?")
        row = self.workers.get(host) or self.workers.setdefault(host, WorkerRow(host))
        row.online = kind != "worker-offline"
        row.seen = _number(event.get("timestamp")) or time.time()
        row.freq = _number(event.get("freq")) or row.freq
        row.active = _int(event.get("active"), row.active)
        row.processed = _int(event.get("processed"), row.processed)
        load = event.get("loadavg")
        if isinstance(load, list):
            row.loadavg = [float(x) for x in load[:3] if isinstance(x, (int, float))]
        if event.get("sw_ident"):
            row.software = f"{event.get('sw_ident')} {event.get('sw_ver') or ''}".strip()

    def _task(self, kind: str, event: dict[str, Any]) -> None:
        task_id = event.get("uuid")
        if not isinstance(task_id, str):
            return
        row = self.tasks.pop(task_id, None) or TaskRow(task_id)
        self.tasks[task_id] = row  # the most recently updated last
        while len(self.tasks) > self.max_tasks:
            self.tasks.popitem(last=False)
        state = STATES.get(kind, kind[5:].upper())
        if row.state not in FINAL or state in FINAL:
            row.state = state
        row.updated = _number(event.get("timestamp")) or time.time()
        if event.get("name"):
            row.name = str(event["name"])
        if event.get("args") is not None:
            row.args = f"{event.get('args')} {event.get('kwargs') or ''}".strip()
        if kind != "task-sent" and event.get("hostname"):
            row.worker = str(event["hostname"])
        if isinstance(event.get("runtime"), (int, float)):
            row.runtime = float(event["runtime"])
        if kind == "task-succeeded":
            row.detail = f"-> {event.get('result')}"
        elif kind in ("task-failed", "task-retried"):
            row.detail = str(event.get("exception") or "")

    # -- the screen ---------------------------------------------------------------------
    def render(self, title: str, rows: int = 20, now: float | None = None) -> str:
        now = time.time() if now is None else now
        clock = dt.datetime.fromtimestamp(now).strftime("%H:%M:%S")
        online = sum(1 for w in self.workers.values() if w.alive(now))
        lines = [f"{title}  {clock}  {self.seen} events", "",
                 f"WORKERS  {online} online, {len(self.workers) - online} offline",
                 f"  {'HOSTNAME':<32} {'STATUS':<8} {'ACTIVE':>6} {'DONE':>8}  "
                 f"{'LOAD':<16} {'SEEN':>7}  SOFTWARE"]
        for w in sorted(self.workers.values(), key=lambda w: w.hostname):
            load = " ".join(f"{x:.2f}" for x in w.loadavg)
            lines.append(f"  {_cut(w.hostname, 32):<32} "
                         f"{'online' if w.alive(now) else 'OFFLINE':<8} {w.active:>6} "
                         f"{w.processed:>8}  {load:<16} {_age(now - w.seen):>7}  "
                         f"{w.software}")
        counts: dict[str, int] = {}
        for t in self.tasks.values():
            counts[t.state] = counts.get(t.state, 0) + 1
        summary = "  ".join(f"{s} {n}" for s, n in sorted(counts.items()))
        lines += ["", f"TASKS  {len(self.tasks)} seen  {summary}".rstrip(),
                  f"  {'UUID':<36} {'NAME':<24} {'STATE':<9} {'WORKER':<24} "
                  f"{'RUNTIME':>8}  ARGS / RESULT"]
        for t in list(reversed(self.tasks.values()))[:rows]:
            runtime = f"{t.runtime:.3f}s" if t.runtime is not None else ""
            lines.append(f"  {t.uuid:<36} {_cut(t.name, 24):<24} {t.state:<9} "
                         f"{_cut(t.worker, 24):<24} {runtime:>8}  "
                         f"{_cut(' '.join(x for x in (t.args, t.detail) if x), 60)}")
        return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "~"


def _age(seconds: float) -> str:
    return f"{max(0.0, seconds):.0f}s" if seconds < 600 else f"{seconds / 60:.0f}m"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
