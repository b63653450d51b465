"""prefork: tasks run in child processes; the parent keeps all broker I/O.

Children are forked from the worker after the app's tasks are imported; one job is one
task call. The parent:
- queues the jobs of ``run`` calls and, once per loop turn, writes each idle child a
  batch (one pipe write, one pickle): sized by ``Pacing`` from measured run times, so
  no-op tasks go 16 at a time and a long task goes alone; idle children share the
  queue. A child busy with under 20 ms of expected work gets its next batch before it
  is done (it waits in the pipe), so it does not idle while the parent catches up;
  behind a longer or never measured job nothing waits in a child;
- reads results in bunches (prefork_child.py says when a child sends them) and wakes
  each job's caller;
- at a job's hard time limit kills its child, reports TimeLimitExceeded and forks
  another (a watchdog timer per child, armed only while it holds a job with a limit);
- forks a replacement when a child exits: after ``max_tasks_per_child`` jobs (a batch
  never takes a child past it), over ``max_memory_per_child`` KiB, or killed.
When a child dies with jobs in hand, its shared-memory slot says which job was running:
that one is reported as WorkerLostError (the executor requeues it once); the ones it
never started, and the ones it finished but whose results died with it, are run again
by another child (no job runs twice unless a child was killed in between).
Soft time limits raise SoftTimeLimitExceeded inside the child (SIGALRM).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
from collections import deque
from multiprocessing.connection import Connection, Pipe
from typing import Any

from celeriac.context import Context
from celeriac.errors import EncodeError, TimeLimitExceeded, WorkerLostError
from celeriac.execution import Outcome
from celeriac.states import FAILURE
from celeriac.task import Task
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.pacing import (
    BATCH_BUDGET_S,
    MAX_BATCH,
    MAX_PER_CHILD,
    PIPELINE_BUDGET_S,
    Pacing,
)
from celeriac.worker.pools.prefork_child import Slots, child_main, request_to_wire

logger = logging.getLogger("celeriac.worker")

#: children a pool can grow to with --autoscale (a slot is 32 bytes of shared memory)
MAX_CHILDREN = 256


class _Job:
    __slots__ = ("args", "expected_s", "future", "hard_s", "kwargs", "no", "request", "task")

    def __init__(self, no: int, task: Task[Any, Any], args: list[Any],
                 kwargs: dict[str, Any], request: Context,
                 future: asyncio.Future[Outcome]) -> None:
        self.no, self.task, self.args, self.kwargs = no, task, args, kwargs
        self.request, self.future = request, future
        self.hard_s: float | None = request.timelimit[0]
        self.expected_s = 0.0  #: the run time expected when it was sent

    def wire(self, flush_first: bool) -> tuple[Any, ...]:
        return (self.no, self.task.name, self.args, self.kwargs,
                request_to_wire(self.request), flush_first)


class _Child:
    def __init__(self, pid: int, conn: Connection, slot: int) -> None:
        self.pid, self.conn, self.slot = pid, conn, slot
        self.fd = conn.fileno()
        self.jobs = 0  #: jobs handed to it so far (max_tasks_per_child)
        self.inflight: deque[_Job] = deque()
        self.expected_s = 0.0  #: expected run time of the jobs in flight
        self.watchdog: asyncio.TimerHandle | None = None
        self.gone = False


class PreforkPool(Pool):
    name = "prefork"

    def __init__(self, capacity: int, max_tasks_per_child: int | None = None,
                 max_memory_per_child_kib: int | None = None) -> None:
        super().__init__(capacity)
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child_kib = max_memory_per_child_kib
        #: calls the consumer should have in flight: enough for full batches
        self.calls_at_once = self.capacity * MAX_PER_CHILD
        self.pacing = Pacing(self.capacity)
        self._children: dict[int, _Child] = {}
        #: one shared-memory slot per child; room for --autoscale to grow into
        self._slots = Slots(max(self.capacity, MAX_CHILDREN))
        self._free_slots: list[int] = list(range(self._slots.count))
        self._queue: deque[_Job] = deque()
        self._next_no = 0
        self._dispatching = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- children -----------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for _ in range(self.capacity):
            self._fork()

    def _fork(self) -> _Child:
        slot = self._free_slots.pop()
        self._slots.reset(slot)
        parent_end, child_end = Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:  # in the child
            parent_end.close()
            code = 0
            try:
                child_main(child_end, self._slots, slot, self.max_tasks_per_child,
                           self.max_memory_per_child_kib)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child_end.close()
        child = _Child(pid, parent_end, slot)
        self._children[pid] = child
        assert self._loop is not None
        self._loop.add_reader(child.fd, self._readable, child)
        return child

    def describe(self) -> str:
        return f"{self.capacity} (prefork)"

    def child_pids(self) -> list[int]:
        return list(self._children)

    def window(self, configured: int) -> int:
        return self.pacing.window(configured)

    # -- jobs out -----------------------------------------------------------------------
    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._next_no += 1
        self._queue.append(_Job(self._next_no, task, args, kwargs, request, future))
        self._schedule_dispatch()
        return await future

    def _schedule_dispatch(self) -> None:
        if not self._dispatching and self._loop is not None:
            self._dispatching = True
            self._loop.call_soon(self._dispatch)  # after this turn's other jobs join

    def _dispatch(self) -> None:
        self._dispatching = False
        queue = self._queue
        ready = [c for c in self._children.values() if self._wants_more(c)]
        for i, child in enumerate(ready):
            if not queue:
                return
            share = -(-len(queue) // (len(ready) - i))  # ready children share the queue
            self._send(child, self._take(child, share))

    def _wants_more(self, child: _Child) -> bool:
        """Idle, or busy with short jobs only: a second batch waits in its pipe, so it
        goes on without waiting for the parent (never behind a long job)."""
        if child.gone or (self.max_tasks_per_child
                          and child.jobs >= self.max_tasks_per_child):
            return False
        return not child.inflight or (len(child.inflight) <= MAX_BATCH
                                      and child.expected_s < PIPELINE_BUDGET_S)

    def _take(self, child: _Child, share: int) -> list[_Job]:
        """The next batch for ``child``: its share of the queue, within the batch budget,
        never past its max_tasks_per_child."""
        limit = min(share, MAX_BATCH)
        if self.max_tasks_per_child:
            limit = min(limit, self.max_tasks_per_child - child.jobs)
        queue, expected = self._queue, self.pacing.expected
        first = queue.popleft()
        first.expected_s = expected(first.task.name)
        batch = [first]
        budget = BATCH_BUDGET_S - first.expected_s
        while queue and len(batch) < limit:
            job = queue[0]
            job.expected_s = cost = expected(job.task.name)
            if cost > budget:
                break
            budget -= cost
            batch.append(queue.popleft())
        return batch

    def _send(self, child: _Child, batch: list[_Job]) -> None:
        is_long = self.pacing.is_long
        wire = [job.wire(i > 0 and is_long(job.task.name)) for i, job in enumerate(batch)]
        try:
            payload = pickle.dumps(wire, protocol=5)
        except Exception:  # some job will not pickle: fail it alone, send the others
            batch, wire = _picklable(batch, wire)
            if not batch:
                if self._queue:
                    self._schedule_dispatch()
                return
            payload = pickle.dumps(wire, protocol=5)
        child.inflight.extend(batch)
        child.jobs += len(batch)
        child.expected_s += sum(job.expected_s for job in batch)
        try:
            child.conn.send_bytes(payload)
        except OSError:
            self._child_died(child)
            return
        if any(job.hard_s for job in batch):
            self._arm_watchdog(child)

    # -- results in ---------------------------------------------------------------------
    def _readable(self, child: _Child) -> None:
        try:
            raw = child.conn.recv_bytes()
        except (EOFError, OSError):
            self._child_died(child)
            return
        try:
            results, retiring = pickle.loads(raw)
        except Exception as exc:  # pickled in the child, yet will not load here
            self._unreadable(child, exc)
            return
        inflight, observe = child.inflight, self.pacing.observe
        for no, state, value, tb, retry, runtime_s, exhausted, hooked in results:
            job = inflight.popleft()
            assert job.no == no, (job.no, no)
            child.expected_s -= job.expected_s
            observe(job.task.name, runtime_s)
            _settle(job, Outcome(state, value, tb, retry, runtime_s, exhausted, hooked))
        if retiring:
            self._retire(child)
            return
        if not inflight:
            child.expected_s = 0.0  # no drift from the float sums
            self._disarm(child)
        elif child.watchdog is not None:
            self._arm_watchdog(child)
        if self._queue:
            self._dispatch()  # at once: the child may be waiting for its next job

    def _unreadable(self, child: _Child, exc: Exception) -> None:
        """Results the child pickled that will not load here: the jobs it finished and
        has not reported fail with EncodeError (running them again would fail again);
        the child is replaced (what it meant to say next is lost with those bytes)."""
        _, finished, _ = self._slots.read(child.slot)
        done = [job for job in child.inflight if job.no <= finished]
        for job in done:
            _settle(job, Outcome(FAILURE, EncodeError(
                f"Task {job.task.name}[{job.request.id}] returned a value that cannot be "
                f"unpickled from the pool's child process: {type(exc).__name__}: {exc}")))
        child.inflight = deque(job for job in child.inflight if job.no > finished)
        _kill(child.pid)
        self._child_died(child)

    def _retire(self, child: _Child) -> None:
        """A child that ran its last job: collect it, rerun what it did not start."""
        self._queue.extendleft(reversed(child.inflight))
        child.inflight.clear()
        self._reap(child)

    # -- deaths and time limits ---------------------------------------------------------
    def _child_died(self, child: _Child, lost: BaseException | None = None,
                    tb: str | None = None, culprit: int | None = None) -> None:
        """Account for every job the child held (see the module docstring); ``culprit``
        is the job it was killed for, if it was."""
        if child.gone:
            return
        started, finished, _ = self._slots.read(child.slot)
        if culprit is None and started > finished:
            culprit = started
        code = self._reap(child)
        again: list[_Job] = []
        for job in child.inflight:
            if job.no == culprit:
                _settle(job, Outcome(FAILURE, lost or WorkerLostError(
                    f"child {child.pid} exited ({code}) while running {job.task.name}"
                    f"[{job.request.id}]"), tb))
            else:
                again.append(job)
        child.inflight.clear()
        self._queue.extendleft(reversed(again))
        if self._queue:
            self._schedule_dispatch()

    def _arm_watchdog(self, child: _Child) -> None:
        """Wake at the soonest moment a job of this child could pass its hard limit."""
        self._disarm(child)
        loop = self._loop
        assert loop is not None
        started, finished, at = self._slots.read(child.slot)
        running = started > finished
        when = None
        for job in child.inflight:
            if not job.hard_s:
                continue
            at_s = at + job.hard_s if running and job.no == started else \
                loop.time() + job.hard_s  # not started yet: not before now + its limit
            when = at_s if when is None else min(when, at_s)
        if when is not None:
            # loop.time() is time.monotonic() (asyncio's and uvloop's), as the slot's
            child.watchdog = loop.call_at(when, self._check_limit, child)

    def _disarm(self, child: _Child) -> None:
        if child.watchdog is not None:
            child.watchdog.cancel()
            child.watchdog = None

    def _check_limit(self, child: _Child) -> None:
        child.watchdog = None
        if child.gone:
            return
        assert self._loop is not None
        started, finished, at = self._slots.read(child.slot)
        job = next((j for j in child.inflight if j.no == started), None)
        if started > finished and job is not None and job.hard_s \
                and self._loop.time() - at >= job.hard_s:
            hard_s = job.hard_s
            logger.error("Hard time limit (%ss) exceeded for %s[%s]: killing child %d",
                         f"{hard_s:g}", job.task.name, job.request.id, child.pid)
            limit = TimeLimitExceeded(f"hard time limit ({hard_s:g}s) exceeded")
            _kill(child.pid)
            self._child_died(child, limit, f"TimeLimitExceeded: {limit}\n", job.no)
            return
        if child.inflight:
            self._arm_watchdog(child)

    def _reap(self, child: _Child) -> int:
        """Collect an exited child and fork its replacement; returns its exit status."""
        child.gone = True
        self._disarm(child)
        if self._loop is not None:
            self._loop.remove_reader(child.fd)
        child.conn.close()
        self._children.pop(child.pid, None)
        self._free_slots.append(child.slot)
        try:
            _, status = os.waitpid(child.pid, 0)
            status = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            status = -1
        if not self._closing:
            self._fork()
            if self._queue:
                self._schedule_dispatch()
        return status

    # -- remote control and autoscale ---------------------------------------------------
    def terminate_job(self, task_id: str, signum: int) -> str | None:
        """Signal the child running ``task_id`` (remote control's terminate): it dies,
        that job is reported lost and the jobs it held but had not started run in
        another child. A job still waiting in a child's batch is not running yet."""
        for child in list(self._children.values()):
            started, finished, _ = self._slots.read(child.slot)
            running = next((j for j in child.inflight if j.no == started), None) \
                if started > finished else None
            if running is not None and running.request.id == task_id:
                try:
                    os.kill(child.pid, signum)
                except ProcessLookupError:
                    pass
                return None
        return "not running in this pool"

    async def resize(self, size: int) -> None:
        """--autoscale (worker/autoscale.py): fork children up to ``size``, or stop idle
        ones beyond it (busy ones are stopped by a later call, once idle)."""
        self.capacity = max(1, min(size, self._slots.count))
        self.calls_at_once = self.capacity * MAX_PER_CHILD
        while len(self._children) < self.capacity and not self._closing:
            self._fork()
        for child in [c for c in self._children.values() if not c.inflight]:
            if len(self._children) <= self.capacity:
                break
            await self._stop_idle(child)
        if self._queue:
            self._schedule_dispatch()

    async def _stop_idle(self, child: _Child) -> None:
        child.gone = True
        self._disarm(child)
        if self._loop is not None:
            self._loop.remove_reader(child.fd)
        self._children.pop(child.pid, None)
        try:
            child.conn.send_bytes(b"")  # empty job: exit
        except OSError:
            _kill(child.pid)
        await asyncio.get_running_loop().run_in_executor(None, _wait_pid, child.pid)
        child.conn.close()
        self._free_slots.append(child.slot)

    # -- shutdown -----------------------------------------------------------------------
    async def stop(self) -> None:
        self._closing = True
        children = list(self._children.values())
        for child in children:
            if self._loop is not None:
                self._loop.remove_reader(child.fd)
            try:
                child.conn.send_bytes(b"")  # empty job: exit
            except OSError:
                pass
        for child in children:
            await asyncio.get_running_loop().run_in_executor(None, _wait_pid, child.pid)
            child.conn.close()
        self._children.clear()

    def terminate(self) -> None:
        self._closing = True
        for child in list(self._children.values()):
            self._disarm(child)
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(child.fd)
            _kill(child.pid)
            _wait_pid(child.pid)
        self._children.clear()


def _picklable(batch: list[_Job], wire: list[tuple[Any, ...]]
               ) -> tuple[list[_Job], list[tuple[Any, ...]]]:
    """The jobs of a batch that pickle; the others fail (WorkerLostError, as before)."""
    jobs, wires = [], []
    for job, item in zip(batch, wire, strict=True):
        try:
            pickle.dumps(item, protocol=5)
        except Exception as exc:
            _settle(job, Outcome(FAILURE, WorkerLostError(
                f"cannot hand the task to a child: {exc}")))
            continue
        jobs.append(job)
        wires.append(item)
    return jobs, wires


def _settle(job: _Job, outcome: Outcome) -> None:
    if not job.future.done():
        job.future.set_result(outcome)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_pid(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
