"""``celeriac events``: the live terminal view, workers and recent tasks, as plain text.

``Monitor.apply(events)`` folds events in; ``Monitor.render()`` returns the screen.
Bounded: ``max_tasks`` tasks are kept (the oldest forgotten first), each field cut to a
column. Workers are ``events.state.Worker``, as on the dashboard: online until
``worker-offline``, or until the last heartbeat is older than twice its ``freq`` (Celery's
rule). A task's state follows Celery's event -> state map, and a finished task does not
go back to an earlier state when events arrive out of order. ``task-sent`` comes from the
client: it does not name a worker. The task rows are the CLI's own.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from celeriac.events.state import FINAL, TASK_STATES, Worker, number


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
        self.workers: dict[str, Worker] = {}
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
        row = self.workers.get(host) or self.workers.setdefault(host, Worker(host))
        row.update(kind, event)

    def _task(self, kind: str, event: dict[str, Any]) -> None:
        task_id = event.get("uuid")
        if not isinstance(task_id, str):
            return
        row = self.tasks.pop(task_id, None) or TaskRow(task_id)
        self.tasks[task_id] = row  # the most recently updated last
        while len(self.tasks) > self.max_tasks:
            self.tasks.popitem(last=False)
        state = TASK_STATES.get(kind, kind[5:].upper())
        if row.state not in FINAL or state in FINAL:
            row.state = state
        row.updated = number(event.get("timestamp")) or time.time()
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
                         f"{w.processed:>8}  {load:<16} {_age(now - w.last_heartbeat):>7}  "
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

