"""``celeriac events --dump``: one line per event, in ``celery events --dump``'s format.

``<hostname> [<UTC time>] <what>: <fields>``: worker events read ``started``,
``heartbeat``, ``shutdown``; task events ``task received``, ``task succeeded``, ...
followed by ``name(uuid) args=... kwargs=...`` (remembered from the task's sent or
received event for the events after it) and the remaining fields sorted by name.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Any

WORDS = {"worker-online": "started", "worker-heartbeat": "heartbeat",
         "worker-offline": "shutdown"}
#: tasks whose name line is remembered (the oldest forgotten first)
REMEMBER = 4095


def humanize(kind: str) -> str:
    kind = kind.lower()
    return WORDS.get(kind, kind.replace("-", " "))


class Dumper:
    """Formats events as lines; keeps the names of recent tasks."""

    def __init__(self) -> None:
        self.names: OrderedDict[str, str] = OrderedDict()

    def line(self, event: dict[str, Any]) -> str:
        ev = dict(event)
        stamp = ev.pop("timestamp", None)
        when = dt.datetime.fromtimestamp(float(stamp), dt.UTC) \
            if isinstance(stamp, (int, float)) else "?"
        kind = str(ev.pop("type", "?")).lower()
        hostname = ev.pop("hostname", "?")
        head = f"{hostname} [{when}] {humanize(kind)}"
        if not kind.startswith("task-"):
            return f"{head}{':' if ev else ''} {_fields(ev)}"
        task_id = str(ev.pop("uuid", ""))
        if kind in ("task-received", "task-sent"):
            task = (f"{ev.pop('name', None)}({task_id}) args={ev.pop('args', None)} "
                    f"kwargs={ev.pop('kwargs', None)}")
            self._remember(task_id, task)
        else:
            task = self.names.get(task_id, "")
        return f"{head}{':' if ev else ''} {task} {_fields(ev)}"

    def _remember(self, task_id: str, task: str) -> None:
        self.names[task_id] = task
        self.names.move_to_end(task_id)
        while len(self.names) > REMEMBER:
            self.names.popitem(last=False)


def _fields(ev: dict[str, Any]) -> str:
    return ", ".join(f"{key}={ev[key]}" for key in sorted(ev))
