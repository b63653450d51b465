"""A batch of task events as the worker records them, and the Celery events it becomes.

With ``-E`` every task makes three events (task-received, task-started, task-succeeded).
The worker records each task's part as one small tuple, an *entry*, of plain values
(``marshal`` can write them: see relay.py, which turns them into events in a process of
its own); ``build_events`` makes Celery's event dicts from a batch of entries, in the
relay or, without one, in the worker at flush time.

Entries:
- ``(BEGAN, fields, clock, timestamp)``: task-received (clock - 1) and task-started;
  ``fields`` as ``began_fields`` reads them from the task's headers;
- ``(SUCCEEDED, uuid, clock, result_repr, runtime_s, timestamp)``;
- ``(OTHER, event)``: any other task event, a dict already (failed, retried, revoked).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.protocol import TaskCall

BEGAN, SUCCEEDED, OTHER = 0, 1, 2

#: task-received's fields, as protocol 2's headers carry them (Celery's worker sends the
#: header values as they are: eta and expires as the ISO text the client wrote)
_HEADERS = operator.itemgetter("id", "task", "argsrepr", "kwargsrepr", "retries", "eta",
                               "expires", "root_id", "parent_id")


def began_fields(call: TaskCall) -> tuple[Any, ...]:
    """uuid, name, args, kwargs, retries, eta, expires, root_id, parent_id of a task."""
    try:
        fields: tuple[Any, ...] | None = _HEADERS(call.headers)
    except KeyError:  # a client that leaves headers out: read what the call has
        fields = None
    if fields is None or fields[2] is None or fields[3] is None:
        get, eta, expires = call.headers.get, call.eta, call.expires
        fields = (call.id, call.name, get("argsrepr") or repr(call.args),
                  get("kwargsrepr") or repr(call.kwargs), get("retries") or 0,
                  eta.isoformat() if eta else None,
                  expires.isoformat() if expires else None,
                  get("root_id"), get("parent_id"))
    return fields


def build_events(entries: list[tuple[Any, ...]], same: Any) -> list[dict[str, Any]]:
    """Celery's task events for a batch of entries. ``same`` is the value of each event's
    ``hostname`` key: an ``orjson.Fragment`` that also holds utcoffset and pid, so one
    dict entry carries the three fields every event repeats."""
    events: list[dict[str, Any]] = []
    append = events.append
    for entry in entries:
        kind = entry[0]
        if kind == BEGAN:
            _, fields, clock, now = entry
            uuid, name, args, kwargs, retries, eta, expires, root_id, parent_id = fields
            append({"hostname": same, "clock": clock - 1, "uuid": uuid, "name": name,
                    "args": args, "kwargs": kwargs, "retries": retries, "eta": eta,
                    "expires": expires, "root_id": root_id, "parent_id": parent_id,
                    "type": "task-received", "timestamp": now})
            append({"hostname": same, "clock": clock, "uuid": uuid,
                    "type": "task-started", "timestamp": now})
        elif kind == SUCCEEDED:
            _, uuid, clock, result, runtime, now = entry
            append({"hostname": same, "clock": clock, "uuid": uuid, "result": result,
                    "runtime": runtime, "type": "task-succeeded", "timestamp": now})
        else:
            append({"hostname": same, **entry[1]})
    return events
