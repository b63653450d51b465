"""The worker's event sender: worker-online/heartbeat/offline, and task events with -E.

Worker events go out at once (one message each; a heartbeat every
``worker_heartbeat_interval`` s, 2 by default; 0 turns them off, as
``--without-heartbeat``). Task events are buffered and sent as one list message per
``FLUSH_S`` or per ``BATCH`` events, so ``-E`` costs a publish per batch rather than
per event. task-received is sent when the task is taken to run (celeriac keeps no
separate "received" step for prefetched tasks).

The buffer holds at most ``CHUNK`` events as dicts; then they are encoded to JSON
(bytes) and wait for the batch as such. Dicts are allocations the garbage collector
counts: a thousand of them alive at once doubled the worker's young collections and
brought a full collection every ~30,000 tasks (25 ms on the worker's own heap), which
cost -E more than building the events did (docs/control.md, session 21).

What -E costs is measured by ``make bench`` (BENCH_PHASES=events: the consume rate with
and without) and ``bench/pipeline.py --count --events`` (instructions per task).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback as tb
from typing import TYPE_CHECKING, Any

import orjson

from celeriac import states
from celeriac.events.event import (
    event,
    event_exchange,
    event_message,
    raw_event_message,
    utcoffset,
    worker_fields,
)
from celeriac.utils.aio import cancel_and_wait

if TYPE_CHECKING:
    from celeriac.control.state import WorkerState
    from celeriac.execution import Outcome
    from celeriac.protocol import TaskCall

logger = logging.getLogger("celeriac.events")
FLUSH_S = 0.1
#: events held as dicts before they are encoded (kept well under the collector's
#: young-generation threshold, 700 allocations)
CHUNK = 96
#: events per message (each PUBLISH costs the worker ~0.2 ms besides its bytes)
BATCH = 2880


class EventDispatcher:
    """See the module docstring."""

    def __init__(self, state: WorkerState, task_events: bool,
                 worker_events: bool = True) -> None:
        self.state = state
        #: False in a consumer child: worker-online, heartbeats and worker-offline are
        #: its parent's (the node Flower and `celery events` show), task events its own
        self.worker_events = worker_events
        conf = state.app.conf
        self.exchange = event_exchange(str(conf.event_exchange or "celeryev"))
        self.heartbeat_s = float(conf.seconds("worker_heartbeat_interval") or 0.0)
        self.task_events = task_events
        self.hostname = state.hostname
        #: task events not encoded yet (at most CHUNK)
        self.buffer: list[dict[str, Any]] = []
        #: task events encoded, each chunk a JSON list, and how many events they hold
        self.encoded: list[bytes] = []
        self._encoded_count = 0
        self._flush_soon = False
        self._refresh()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- worker events --------------------------------------------------------------------
    def _worker_event(self, type_: str) -> dict[str, Any]:
        s = self.state
        return event(type_, s.hostname, s.clock.forward(),
                     **worker_fields(self.heartbeat_s or 2.0, *_counts(s)))

    async def _send(self, events: dict[str, Any]) -> None:
        try:
            await self.state.broker.broadcast(self.exchange,
                                              event_message(events, self.state.hostname))
        except Exception as exc:
            logger.warning("sending events failed: %s", exc)

    async def heartbeat(self) -> None:
        self._refresh()  # a DST change, a fork
        await self._send(self._worker_event("worker-heartbeat"))

    async def start(self) -> None:
        if self.worker_events:
            await self._send(self._worker_event("worker-online"))
        if self.heartbeat_s > 0 and self.worker_events:
            self._tasks.append(asyncio.create_task(self._beat(), name="events-heartbeat"))
        self._tasks.append(asyncio.create_task(self._flusher(), name="events-flush"))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self.heartbeat()

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_S)
            self._wake.clear()
            await self.flush()

    @property
    def pending(self) -> bool:
        """Task events not sent yet."""
        return bool(self.buffer or self.encoded)

    def _encode(self) -> None:
        """The buffer's events to one JSON list (bytes: nothing for the collector)."""
        chunk, self.buffer = self.buffer, []
        self.encoded.append(orjson.dumps(chunk, default=repr))
        self._encoded_count += len(chunk)

    async def flush(self) -> None:
        self._flush_soon = False
        if self.buffer:
            self._encode()
        chunks, self.encoded, self._encoded_count = self.encoded, [], 0
        if len(chunks) == 1:
            await self._send_raw(chunks[0])
        elif chunks:  # the lists' insides, joined: one list
            await self._send_raw(b"[" + b",".join([c[1:-1] for c in chunks]) + b"]")

    async def _send_raw(self, body: bytes) -> None:
        """A batch of task events, already a JSON list."""
        try:
            await self.state.broker.broadcast(
                self.exchange, raw_event_message(body, "task.multi", self.state.hostname))
        except Exception as exc:
            logger.warning("sending events failed: %s", exc)

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        await self.flush()
        if self.worker_events:
            await self._send(self._worker_event("worker-offline"))

    # -- task events (the executor calls these when -E is on) ---------------------------
    # The hot path of -E: three events per task, so each costs a dict display and an
    # append here, and nothing more: no JSON yet (a chunk of CHUNK events is encoded by
    # one orjson call). The fields an event type always has the same (hostname,
    # utcoffset, pid, type; eta and expires when both are null, as they mostly are) are
    # one value, JSON already (an orjson.Fragment, written as it is):
    # `"hostname":"w@h","utcoffset":0,"pid":7,"type":"task-started"`.
    def _refresh(self) -> None:
        same = (orjson.dumps(self.hostname) + b',"utcoffset":' + orjson.dumps(utcoffset())
                + b',"pid":' + orjson.dumps(os.getpid()))
        fragment = orjson.Fragment
        self._same = fragment(same)
        self._received = fragment(same + b',"type":"task-received"')
        self._received_undated = fragment(
            same + b',"type":"task-received","eta":null,"expires":null')
        self._started = fragment(same + b',"type":"task-started"')
        self._succeeded = fragment(same + b',"type":"task-succeeded"')

    def _added(self) -> None:
        """After an append: wake the flusher for a new batch; encode a full chunk, and
        send a full batch now."""
        n = len(self.buffer)
        if n <= 2:
            self._wake.set()
        elif n >= CHUNK:
            self._encode()
            if self._encoded_count >= BATCH and not self._flush_soon:
                self._flush_soon = True
                asyncio.get_running_loop().create_task(self.flush())

    def task_began(self, call: TaskCall) -> None:
        """task-received then task-started: celeriac takes a task when it runs it."""
        if not self.task_events:
            return
        get, eta, expires, task_id = call.headers.get, call.eta, call.expires, call.id
        ticks = self.state.clock.ticks
        received_at, started, now = next(ticks), next(ticks), time.time()
        buffer = self.buffer
        undated = eta is None and expires is None
        received = {"hostname": self._received_undated if undated else self._received,
                    "clock": received_at, "uuid": task_id, "name": call.name,
                    "args": get("argsrepr") or repr(call.args),
                    "kwargs": get("kwargsrepr") or repr(call.kwargs),
                    "retries": get("retries") or 0,
                    "root_id": get("root_id"), "parent_id": get("parent_id"),
                    "timestamp": now}
        if not undated:
            received["eta"] = eta.isoformat() if eta else None
            received["expires"] = expires.isoformat() if expires else None
        buffer.append(received)
        buffer.append({"hostname": self._started, "clock": started, "uuid": task_id,
                       "timestamp": now})
        if not 2 < len(buffer) < CHUNK:
            self._added()

    def task_finished(self, call: TaskCall, outcome: Outcome) -> None:
        if not self.task_events:
            return
        state = outcome.state
        if state == states.SUCCESS:
            buffer = self.buffer
            buffer.append({"hostname": self._succeeded, "clock": next(self.state.clock.ticks),
                           "uuid": call.id, "result": repr(outcome.value),
                           "runtime": outcome.runtime_s, "timestamp": time.time()})
            if not 2 < len(buffer) < CHUNK:
                self._added()
        elif state == states.RETRY:
            self._task("task-retried", call.id, exception=repr(outcome.value),
                       traceback=outcome.traceback or "")
        elif state == states.REVOKED:
            self._task("task-revoked", call.id, terminated=True, signum=None,
                       expired=False)
        else:
            text = outcome.traceback or "".join(tb.format_exception_only(outcome.value))
            self._task("task-failed", call.id, exception=repr(outcome.value),
                       traceback=text)

    def task_revoked(self, call: TaskCall, expired: bool) -> None:
        if self.task_events:
            self._task("task-revoked", call.id, terminated=False, signum=None,
                       expired=expired)

    def _task(self, type_: str, task_id: str, **fields: Any) -> None:
        self.buffer.append({"hostname": self._same, "clock": self.state.clock.forward(),
                            "uuid": task_id, **fields, "type": type_, "timestamp": time.time()})
        self._added()


def _counts(state: WorkerState) -> tuple[int, int]:
    """(tasks running, tasks processed) for heartbeats: the worker's own, or what its
    consumer children report on the board (worker/pools/consumer_children.py)."""
    pool = state.pool
    if getattr(pool, "children_consume", False):
        return pool.active_count(), pool.processed()  # type: ignore[attr-defined]
    return len(state.consumer.active), state.executor.processed


async def start_worker_events(state: WorkerState, task_events: bool) -> EventDispatcher:
    dispatcher = EventDispatcher(state, task_events)
    await dispatcher.start()
    return dispatcher
