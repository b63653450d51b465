"""The prefork child: runs the batches of jobs its parent writes to its pipe.

Wire (both ways, one ``send_bytes`` per message, pickled):
- parent -> child: a list of jobs ``(no, task name, args, kwargs, request, flush_first)``;
  an empty message means "exit".
- child -> parent: ``(results, retiring)``, results a list of
  ``(no, state, value, traceback, retry, runtime_s, exhausted, hooked)`` in job order.

The child runs a batch's jobs one by one and sends results back in bunches: after a job
once ``FLUSH_S`` has passed since the last send, before a job marked ``flush_first``
(one the parent expects to be long, so the results before it do not wait behind it), and
at the end of the batch. So a batch of no-op tasks costs one write each way, and a long
task's result leaves as soon as it ends.

What the parent cannot learn from the pipe, the child keeps in its ``Slot``, a few bytes
of memory shared with the parent: the number of the job it started last, of the job it
finished last, and when the running one started. A job costs two stores there, no
syscall. When the child dies or must be killed (hard time limit), the parent reads the
slot to tell the job that was running from those that finished (results not yet sent)
and those that never started.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import pickle
import resource
import signal
import struct
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from celeriac import signals
from celeriac.context import Context, WorkerRequest
from celeriac.errors import CeleriacError, EncodeError, SoftTimeLimitExceeded
from celeriac.execution import Outcome, run_anywhere
from celeriac.protocol import Message, TaskCall
from celeriac.states import FAILURE

#: seconds of finished results a child may hold before it writes them to the parent
FLUSH_S = 0.001

_SLOT = struct.Struct("qqd")  # started job no, finished job no, started at (monotonic)
SLOT_SIZE = 32


class Slots:
    """Shared memory for ``count`` children (anonymous, MAP_SHARED: survives fork)."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._map = mmap.mmap(-1, self.count * SLOT_SIZE)

    def reset(self, index: int) -> None:
        _SLOT.pack_into(self._map, index * SLOT_SIZE, -1, -1, 0.0)

    def read(self, index: int) -> tuple[int, int, float]:
        """(started no, finished no, started at): started > finished while a job runs."""
        started, finished, at = _SLOT.unpack_from(self._map, index * SLOT_SIZE)
        return started, finished, at

    def start(self, index: int, no: int) -> None:
        """In the child: job ``no`` starts now (the time first, so a reader that sees
        the new number sees its time)."""
        offset = index * SLOT_SIZE
        struct.pack_into("d", self._map, offset + 16, time.monotonic())
        struct.pack_into("q", self._map, offset, no)

    def finish(self, index: int, no: int) -> None:
        struct.pack_into("q", self._map, index * SLOT_SIZE + 8, no)


def reset_inherited_state() -> None:
    """Undo what the parent's event loop set up: signals and the running-loop marker."""
    asyncio.events._set_running_loop(None)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, _on_soft_limit)


def _on_soft_limit(signum: int, frame: Any) -> None:
    raise SoftTimeLimitExceeded("soft time limit exceeded")


def child_main(conn: Connection, slots: Slots, index: int, max_tasks: int | None,
               max_memory_kib: int | None) -> None:
    """The child's whole life: read batches, run them, send results, until told to exit
    or retiring (max tasks, max memory)."""
    reset_inherited_state()
    signals.send(signals.worker_process_init, None)
    try:
        _serve(conn, slots, index, max_tasks, max_memory_kib)
    finally:
        signals.send(signals.worker_process_shutdown, None, pid=os.getpid(), exitcode=0)


def _serve(conn: Connection, slots: Slots, index: int, max_tasks: int | None,
           max_memory_kib: int | None) -> None:
    from celeriac.app import _all_apps

    tasks: dict[str, Any] = {}
    done = 0
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not raw:
            return
        results: list[tuple[Any, ...]] = []
        labels: list[str] = []  #: "name[id]" of each result, should it not pickle
        sent_at = time.monotonic()
        retiring = False
        for no, name, args, kwargs, request, flush_first in pickle.loads(raw):
            if flush_first and results:
                conn.send_bytes(_dump(results, labels, False))
                results, labels = [], []
            task = tasks.get(name)
            if task is None:
                task = tasks[name] = next(app.tasks[name] for app in _all_apps
                                          if name in app._tasks)
            if type(request) is dict:
                request = request_from_wire(request)
            slots.start(index, no)
            outcome = _run(task, args, kwargs, request)
            slots.finish(index, no)
            results.append((no, outcome.state, outcome.value, outcome.traceback,
                            outcome.retry, outcome.runtime_s, outcome.exhausted,
                            outcome.hooked))
            labels.append(f"{name}[{request.id}]")
            done += 1
            retiring = bool(max_tasks and done >= max_tasks) or bool(
                max_memory_kib
                and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > max_memory_kib)
            if retiring:
                break  # the jobs after this one never started: the parent runs them
            now = time.monotonic()
            if now - sent_at >= FLUSH_S:
                conn.send_bytes(_dump(results, labels, False))
                results, labels, sent_at = [], [], now
        if results or retiring:
            conn.send_bytes(_dump(results, labels, retiring))
        if retiring:
            return


def request_to_wire(request: Context) -> Any:
    """What a child needs of ``task.request``: a WorkerRequest's fields with its source
    as plain tuples (pickling the TaskCall and Message dataclasses was half the cost of
    handing a job over), or any other Context as it is."""
    if type(request) is not WorkerRequest:
        return request
    fields = dict(request.__dict__)
    call, message, redelivered, hostname = fields["_source"]
    fields["_source"] = (
        (call.id, call.name, call.args, call.kwargs, call.callbacks, call.errbacks,
         call.chain, call.chord, call.headers, call.eta, call.expires),
        (message.properties, message.exchange, message.routing_key, message.content_type,
         message.content_encoding),
        redelivered, hostname)
    return fields


def request_from_wire(fields: dict[str, Any]) -> WorkerRequest:
    """The child's WorkerRequest, its source rebuilt (without the message body, which
    the request never reads)."""
    call, (properties, exchange, routing_key, content_type, content_encoding), \
        redelivered, hostname = fields["_source"]
    message = Message(call[8], b"", properties, content_type, content_encoding, exchange,
                      routing_key)
    fields["_source"] = (TaskCall(*call), message, redelivered, hostname)
    request: WorkerRequest = WorkerRequest.from_fields(fields)  # type: ignore[assignment]
    return request


def _run(task: Any, args: list[Any], kwargs: dict[str, Any], request: Context) -> Outcome:
    soft_s = request.timelimit[1]
    if not soft_s or task.is_coroutine:
        return run_anywhere(task, args, kwargs, request)
    signal.setitimer(signal.ITIMER_REAL, soft_s)
    try:
        return run_anywhere(task, args, kwargs, request)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _dump(results: list[tuple[Any, ...]], labels: list[str], retiring: bool) -> bytes:
    try:
        return pickle.dumps((results, retiring), protocol=5)
    except Exception:
        return pickle.dumps(([_picklable(r, label) for r, label in zip(results, labels,
                                                                       strict=True)],
                             retiring), protocol=5)


def _picklable(result: tuple[Any, ...], label: str) -> tuple[Any, ...]:
    """One result that will pickle: an exception that will not becomes its text; a
    value that will not is an EncodeError failure naming the task and the type (the
    child lives on; the worker records it as failed, as for a result JSON cannot
    carry); a retry that will not becomes a failure."""
    try:
        pickle.dumps(result, protocol=5)
        return result
    except Exception as exc:
        no, state, value, tb, retry, runtime_s, exhausted, hooked = result
        if isinstance(value, BaseException):
            value = CeleriacError(f"{type(value).__name__}: {value}")
        else:
            state, tb, hooked = FAILURE, traceback.format_exc(), False
            value = EncodeError(
                f"Task {label} returned a value that cannot be pickled to leave the "
                f"pool's child process: {type(value)!r} ({type(exc).__name__}: {exc})")
        if retry is not None:
            retry, state = None, FAILURE
        return (no, state, value, tb, retry, runtime_s, exhausted, hooked)
