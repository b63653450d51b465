"""prefork: each task runs in a child process; the parent keeps all broker I/O.

Children are forked from the worker after the app's tasks are imported. A child reads
one job at a time from its pipe, runs it (``async def`` tasks on a loop of its own) and
writes the Outcome back. The parent:
- gives each job to an idle child and waits on the pipe without blocking its loop;
- at the hard time limit kills the child, reports TimeLimitExceeded and forks another;
- forks a replacement when a child exits: after ``max_tasks_per_child`` jobs, over
  ``max_memory_per_child`` KiB, or killed (the job is then reported as WorkerLostError so
  the executor can requeue it).
Soft time limits raise SoftTimeLimitExceeded inside the child (SIGALRM).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import resource
import signal
import traceback
from multiprocessing.connection import Connection, Pipe
from typing import Any

from celeriac import signals
from celeriac.context import Context
from celeriac.errors import (
    CeleriacError,
    EncodeError,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    WorkerLostError,
)
from celeriac.execution import Outcome, run_anywhere
from celeriac.states import FAILURE
from celeriac.task import Task
from celeriac.worker.pools.base import Pool

logger = logging.getLogger("celeriac.worker")


class _Child:
    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid = pid
        self.conn = conn
        self.jobs = 0
        self.task_id: str | None = None  # the call it runs (terminate_job)


class PreforkPool(Pool):
    name = "prefork"

    def __init__(self, capacity: int, max_tasks_per_child: int | None = None,
                 max_memory_per_child_kib: int | None = None) -> None:
        super().__init__(capacity)
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child_kib = max_memory_per_child_kib
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: dict[int, _Child] = {}
        self._closing = False

    async def start(self) -> None:
        for _ in range(self.capacity):
            self._idle.put_nowait(self._fork())

    def _fork(self) -> _Child:
        parent_end, child_end = Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:  # in the child
            parent_end.close()
            code = 0
            try:
                _child_main(child_end, self.max_tasks_per_child, self.max_memory_per_child_kib)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child_end.close()
        child = _Child(pid, parent_end)
        self._children[pid] = child
        return child

    def describe(self) -> str:
        return f"{self.capacity} (prefork)"

    def child_pids(self) -> list[int]:
        return list(self._children)

    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        child = await self._idle.get()
        child.task_id = request.id
        try:
            child.conn.send_bytes(pickle.dumps((task.name, args, kwargs, request), protocol=5))
        except (OSError, pickle.PicklingError, TypeError) as exc:
            self._replace(child)
            return Outcome(FAILURE, WorkerLostError(f"cannot hand the task to a child: {exc}"))
        hard_s = request.timelimit[0]
        try:
            raw = await asyncio.wait_for(self._receive(child), hard_s) if hard_s else \
                await self._receive(child)
        except asyncio.TimeoutError:
            logger.error("Hard time limit (%ss) exceeded for %s[%s]: killing child %d",
                         hard_s, task.name, request.id, child.pid)
            self._kill(child)
            limit = TimeLimitExceeded(f"hard time limit ({hard_s:g}s) exceeded")
            return Outcome(FAILURE, limit, f"TimeLimitExceeded: {limit}\n")
        except (EOFError, OSError):
            code = self._reap(child)
            return Outcome(FAILURE, WorkerLostError(
                f"child {child.pid} exited ({code}) while running {task.name}[{request.id}]"))
        try:
            outcome, retiring = pickle.loads(raw)
        except Exception as exc:  # pickled in the child, yet will not load here
            self._replace(child)  # whether it meant to retire is in the bytes: start anew
            return Outcome(FAILURE, EncodeError(
                f"Task {task.name}[{request.id}] returned a value that cannot be unpickled "
                f"from the pool's child process: {type(exc).__name__}: {exc}"))
        child.jobs += 1
        if retiring:
            self._reap(child)
        else:
            child.task_id = None
            self._idle.put_nowait(child)
        result: Outcome = outcome
        return result

    async def _receive(self, child: _Child) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = child.conn.fileno()
        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        return child.conn.recv_bytes()

    def terminate_job(self, task_id: str, signum: int) -> str | None:
        """Signal the child running task_id (it dies; run() reports it lost)."""
        for child in self._children.values():
            if child.task_id == task_id:
                try:
                    os.kill(child.pid, signum)
                except ProcessLookupError:
                    pass
                return None
        return "not running in this pool"

    def _kill(self, child: _Child) -> None:
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap(child)

    def _reap(self, child: _Child) -> int:
        """Collect an exited child and fork its replacement; returns its exit status."""
        child.conn.close()
        self._children.pop(child.pid, None)
        try:
            _, status = os.waitpid(child.pid, 0)
        except ChildProcessError:
            status = -1
        if not self._closing:
            self._idle.put_nowait(self._fork())
        return status

    def _replace(self, child: _Child) -> None:
        self._kill(child)

    async def stop(self) -> None:
        self._closing = True
        for child in list(self._children.values()):
            try:
                child.conn.send_bytes(b"")  # empty job: exit
            except OSError:
                pass
        for child in list(self._children.values()):
            await asyncio.get_running_loop().run_in_executor(None, _wait_pid, child.pid)
            child.conn.close()
        self._children.clear()

    def terminate(self) -> None:
        self._closing = True
        for child in list(self._children.values()):
            try:
                os.kill(child.pid, signal.SIGKILL)
                os.waitpid(child.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._children.clear()

    async def resize(self, size: int) -> None:
        """--autoscale (worker/autoscale.py): fork children up to ``size``, or retire
        idle ones beyond it (busy ones are retired by a later call, once idle)."""
        self.capacity = max(1, size)
        while len(self._children) < self.capacity and not self._closing:
            self._idle.put_nowait(self._fork())
        loop = asyncio.get_running_loop()
        while len(self._children) > self.capacity and not self._idle.empty():
            child = self._idle.get_nowait()
            self._children.pop(child.pid, None)
            try:
                child.conn.send_bytes(b"")  # empty job: exit
            except OSError:
                os.kill(child.pid, signal.SIGKILL)
            await loop.run_in_executor(None, _wait_pid, child.pid)
            child.conn.close()


def _wait_pid(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


# -- the child side ---------------------------------------------------------------------


def _reset_inherited_state() -> None:
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


def _child_main(conn: Connection, max_tasks: int | None, max_memory_kib: int | None) -> None:
    _reset_inherited_state()
    signals.send(signals.worker_process_init, None)
    try:
        _serve(conn, max_tasks, max_memory_kib)
    finally:
        signals.send(signals.worker_process_shutdown, None, pid=os.getpid(), exitcode=0)


def _serve(conn: Connection, max_tasks: int | None, max_memory_kib: int | None) -> None:
    """The child's loop: a job in, its outcome out, until told to stop or retiring."""
    from celeriac.app import _all_apps

    done = 0
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not raw:
            return
        name, args, kwargs, request = pickle.loads(raw)
        task = next(app.tasks[name] for app in _all_apps if name in app._tasks)
        soft_s = request.timelimit[1]
        if soft_s and not task.is_coroutine:
            signal.setitimer(signal.ITIMER_REAL, soft_s)
        try:
            outcome = run_anywhere(task, args, kwargs, request)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        done += 1
        retiring = bool(max_tasks and done >= max_tasks) or bool(
            max_memory_kib and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > max_memory_kib)
        conn.send_bytes(_pickle_outcome(outcome, retiring, request))
        if retiring:
            return


def _pickle_outcome(outcome: Outcome, retiring: bool, request: Context) -> bytes:
    """Pickle an Outcome. An exception that will not pickle becomes its text; a result
    that will not is an EncodeError failure naming the task and the type (the child
    lives on, and the task is recorded as failed, as for a result JSON cannot carry)."""
    try:
        return pickle.dumps((outcome, retiring), protocol=5)
    except Exception as exc:
        value = outcome.value
        if isinstance(value, BaseException):
            outcome.value = CeleriacError(f"{type(value).__name__}: {value}")
        else:
            outcome.state = FAILURE
            outcome.value = EncodeError(
                f"Task {request.task}[{request.id}] returned a value that cannot be "
                f"pickled to leave the pool's child process: {type(value)!r} "
                f"({type(exc).__name__}: {exc})")
            outcome.traceback = traceback.format_exc()
            outcome.hooked = False  # the parent runs on_failure for what it records
        if outcome.retry is not None:
            outcome.retry = None
            outcome.state = FAILURE
        return pickle.dumps((outcome, retiring), protocol=5)
