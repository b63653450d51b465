"""prefork with consumer children: each child fetches, runs and acks its own tasks.

The classic prefork pool (prefork.py) keeps all broker I/O in the parent: every task
is decoded, handed to a child over a pipe, and its result read back, logged and acked
by the parent. On two cores that parent is the bottleneck (docs/benchmarks.md, "The
default worker"). With ``worker_consumer_children = True`` (or ``--consumer-children``)
each child is a solo worker of its own instead (worker/child_consumer.py): its own
connections, consumer, executor and acker. No task passes through the parent, which:

- forks the children after the app is imported, and a new one when one exits
  (``max_tasks_per_child``/``max_memory_per_child`` retire a child: it stops fetching,
  gives back what it prefetched, finishes what runs and exits 0);
- answers remote control for the worker (one node, as Celery's parent) and forwards
  the commands that change a worker to every child over its command pipe: revoke,
  rate_limit, time_limit, add/cancel_consumer, enable/disable_events;
  ``inspect active`` reads the running tasks off the board (pools/board.py);
  ``revoke(terminate=True)`` signals the child running the task;
- sends the worker's heartbeats (task events with -E come from the children);
- watches hard time limits: a task raises TimeLimitExceeded in its child at its limit
  (SIGALRM, as on the solo pool); a child still running it ``KILL_GRACE_S`` later is
  killed;
- when a child dies while running a task, puts the task's id on the board's lost list:
  the broker gives the child's unacked messages back (RabbitMQ at once, when the
  connection drops; Redis when their lease runs out, ``lease_timeout``, 60 s by
  default), and the child that receives the running one records it as failed
  (WorkerLostError) instead of running it again; the others run as usual;
- on a warm shutdown tells every child to stop and waits for them; on a cold one tells
  them to give back everything at once, and kills those still running a task.

A killed parent: the kernel sends each child SIGTERM (PR_SET_PDEATHSIG), which ends
it at once; what it held comes back from the broker (elsewhere than Linux, the closed
command pipe stops it after the task it runs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from celeriac.brokers.base import Delivery
from celeriac.context import Context
from celeriac.execution import Outcome
from celeriac.protocol import Message
from celeriac.task import Task
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.board import DIED, TERMINATED, TIME_LIMIT, Board

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

logger = logging.getLogger("celeriac.worker")

#: seconds past a task's hard time limit before its child is killed (it had its
#: TimeLimitExceeded raised at the limit, but code that never returns to Python
#: cannot see it)
KILL_GRACE_S = 1.0
#: how often the parent looks for exited children and tasks past their hard limit
WATCH_S = 0.05
#: a child that dies younger than this is replaced after a pause (doubling, up to
#: RESPAWN_MAX_S): children that cannot start must not fork in a loop
YOUNG_S = 2.0
RESPAWN_MAX_S = 10.0
#: the remote control commands every child must hear too
FORWARDED = frozenset({"revoke", "terminate", "rate_limit", "time_limit", "add_consumer",
                       "cancel_consumer", "enable_events", "disable_events"})


@dataclass
class _Child:
    pid: int
    index: int
    conn: Connection
    #: why the parent killed it (TIME_LIMIT, TERMINATED) or 0
    killed_for: int = 0
    #: when it was forked (time.monotonic())
    born: float = field(default_factory=time.monotonic)


class ConsumerChildren(Pool):
    """The parent's side (see the module docstring)."""

    name = "prefork"
    #: the worker's own consumer does not run: the children consume
    children_consume = True

    def __init__(self, capacity: int, worker: Worker) -> None:
        super().__init__(capacity)
        self.worker = worker
        self.board = Board(self.capacity)
        self._children: dict[int, _Child] = {}  #: by index
        self._stopping = False
        self._consuming = False
        self._backoff_s = 0.0
        #: index -> when its replacement may be forked (children failing young)
        self._due: dict[int, float] = {}
        self._watch: asyncio.Task[None] | None = None
        self._giving_back: set[asyncio.Task[None]] = set()
        #: tasks finished by children that have exited (heartbeats' "processed")
        self._retired_processed = 0
        self._retired_totals: Counter[str] = Counter()
        #: the broker keeps leases (Redis, SQLite): a dead child's deliveries are given
        #: back by the parent; RabbitMQ redelivers them itself
        self.leased = True

    # -- children -----------------------------------------------------------------------
    async def start(self) -> None:
        self.leased = bool((await self.worker.app.clients.broker()).leased)
        for index in range(self.capacity):
            self._fork(index)
        self._watch = asyncio.create_task(self._watch_children(), name="children-watch")

    def _fork(self, index: int) -> None:
        from celeriac.worker.child_consumer import ChildConsumer

        self.board.clear(index)
        reader, writer = Pipe(duplex=False)
        me = os.getpid()
        pid = os.fork()
        if pid == 0:  # in the child
            writer.close()
            for other in self._children.values():
                other.conn.close()
            code = 1
            try:
                code = ChildConsumer(self.worker, index, self.board, reader, me).main()
            except BaseException:
                logger.exception("consumer child %d failed", index + 1)
            finally:
                os._exit(code)
        reader.close()
        self._children[index] = child = _Child(pid, index, writer)
        if self._consuming:  # a replacement: the worker is up, it may start at once
            self._send(child, "go")

    async def _watch_children(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                self.check_children()
            except Exception:  # the watch must outlive any one child's trouble
                logger.exception("watching the children failed; going on")

    def check_children(self) -> None:
        """Reap exited children (and fork their replacements); kill the ones past a
        task's hard limit."""
        now = time.monotonic()
        if self._due:
            self._fork_due()
        for child in list(self._children.values()):
            try:
                pid, status = os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = child.pid, 0
            if pid:
                self._exited(child, os.waitstatus_to_exitcode(status))
                continue
            running = self.board.running(child.index)
            if running and running[3] and not child.killed_for \
                    and now - running[2] > running[3] + KILL_GRACE_S:
                task_id, name, _, hard_s = running
                logger.error("Hard time limit (%ss) exceeded for %s[%s]: killing child %d",
                             f"{hard_s:g}", name, task_id, child.pid)
                self._kill_for(child, running, TIME_LIMIT, signal.SIGKILL)

    def _exited(self, child: _Child, code: int) -> None:
        del self._children[child.index]
        child.conn.close()
        held = self.board.held(child.index, clear=True)
        running = self.board.running(child.index)
        if running is not None:
            task_id, name, started_at, _ = running
            if not child.killed_for:  # (killed by the parent: written before the kill)
                times = self.board.add_lost(task_id, DIED, started_at)
                logger.error("Process 'ForkPoolWorker-%d' pid:%d exited with %s while "
                             "running %s[%s] (lost %d time%s)", child.index + 1, child.pid,
                             _exit_text(code), name, task_id, times,
                             "" if times == 1 else "s")
        elif code != 0 and not self._stopping:
            logger.error("Process 'ForkPoolWorker-%d' pid:%d exited with %s",
                         child.index + 1, child.pid, _exit_text(code))
        self._retired_processed += self.board.finished(child.index)
        self._retired_totals.update(self.board.totals(child.index))
        if held and self.leased:  # a leased broker's deliveries: back to their queues now
            task = asyncio.get_running_loop().create_task(self._give_back(held))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)
        if not self._stopping:
            self._respawn(child, code)

    def _respawn(self, child: _Child, code: int) -> None:
        """Fork the dead child's replacement: at once, unless children keep failing
        young (a broker they cannot reach, a module that fails in them): then after a
        pause that doubles up to RESPAWN_MAX_S, so a broken child does not fork-loop.
        (A child retiring at its task or memory limit exits 0: replaced at once.)"""
        lived_s = time.monotonic() - child.born
        if code == 0 or lived_s > YOUNG_S:
            self._backoff_s = 0.0
            self._fork(child.index)
            return
        self._backoff_s = min(RESPAWN_MAX_S, max(0.1, self._backoff_s * 2))
        logger.error("Process 'ForkPoolWorker-%d' lived %.1fs; the next in %.1fs",
                     child.index + 1, lived_s, self._backoff_s)
        self._due[child.index] = time.monotonic() + self._backoff_s

    def _fork_due(self) -> None:
        """Fork the replacements whose pause is over (check_children calls it)."""
        now = time.monotonic()
        for index, due in list(self._due.items()):
            if due <= now:
                del self._due[index]
                if not self._stopping and index not in self._children:
                    self._fork(index)

    async def _give_back(self, held: list[tuple[Any, str, str, str]]) -> None:
        deliveries = [Delivery(Message({}, b""), queue, tag, False)
                      for tag, queue, _, _ in held]
        try:
            broker = await self.worker.app.clients.broker()
            await broker.requeue(deliveries)
        except Exception as exc:
            logger.error("could not give back the %d messages of a dead child (%s): their "
                         "leases bring them back", len(deliveries), exc)

    # -- what the worker and remote control ask of a pool --------------------------------
    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        raise RuntimeError("consumer children run their tasks themselves")

    def describe(self) -> str:
        return f"{self.capacity} (prefork, children consume)"

    def child_pids(self) -> list[int]:
        return [c.pid for c in sorted(self._children.values(), key=lambda c: c.index)]

    def running(self) -> list[tuple[str, str, float, int, str, str]]:
        """(task id, name, started at (time.time), child pid, argsrepr, kwargsrepr) of
        each running task."""
        out = []
        offset = time.time() - time.monotonic()
        for child in self._children.values():
            found = self.board.running(child.index)
            if found is not None:
                args, kwargs = self.board.arguments(child.index)
                out.append((found[0], found[1], found[2] + offset, child.pid, args, kwargs))
        return out

    def reserved(self) -> list[tuple[str, str, int]]:
        """(task id, name, child pid) of each delivery a child holds but does not run."""
        out = []
        for child in self._children.values():
            running = self.board.running(child.index)
            for _, _, task_id, name in self.board.held(child.index):
                if running is None or running[0] != task_id:
                    out.append((task_id, name, child.pid))
        return out

    def active_count(self) -> int:
        return sum(self.board.running(c.index) is not None for c in self._children.values())

    def totals(self) -> dict[str, int]:
        """Tasks run by name (``inspect stats``), as of each child's last write (once
        a second), those of exited children included."""
        out = Counter(self._retired_totals)
        for child in self._children.values():
            out.update(self.board.totals(child.index))
        return dict(out)

    def processed(self) -> int:
        """Tasks the children finished, those that exited included."""
        return self._retired_processed + sum(self.board.finished(c.index)
                                             for c in self._children.values())

    def forward(self, name: str, arguments: dict[str, Any]) -> None:
        """A remote control command for every child (their replies are not wanted: the
        parent's is the worker's). A terminate is the parent's to do (terminate_job):
        the children hear a plain revoke."""
        if name not in FORWARDED:
            return
        if name in ("revoke", "terminate"):
            name, arguments = "revoke", {**arguments, "terminate": False}
        self._send_all((name, arguments))

    def terminate_job(self, task_id: str, signum: int) -> str | None:
        for child in self._children.values():
            found = self.board.running(child.index)
            if found is not None and found[0] == task_id:
                self._kill_for(child, found, TERMINATED, signum)
                return None
        return "not running in a child of this worker"

    def _kill_for(self, child: _Child, running: tuple[str, str, float, float], why: int,
                  signum: int) -> None:
        """Signal a child for its running task, the loss written first: the child that
        gets the redelivered message must find why (RabbitMQ redelivers at once)."""
        child.killed_for = why
        self.board.add_lost(running[0], why, running[2])
        _signal(child.pid, signum)

    async def stop(self) -> None:
        """Warm shutdown: each child stops fetching, gives back what it prefetched,
        finishes what runs (up to ``worker_shutdown_timeout``), and exits; a second
        signal meanwhile makes it a cold one (``terminate``)."""
        self._stopping = True
        self._send_all("stop")
        while self._children:
            if self.worker._cold.is_set():  # a second signal: cold shutdown now
                self.terminate()
                break
            self.check_children()
            if self._children:
                await asyncio.sleep(WATCH_S)
        await self._stop_watch()
        if self._giving_back:
            await asyncio.gather(*self._giving_back, return_exceptions=True)

    def terminate(self) -> None:
        """Cold shutdown: children give back everything at once; a child still busy
        with a task after a second is killed (the broker redelivers that task)."""
        self._stopping = True
        self._send_all("cold")
        deadline = time.monotonic() + 1.0
        while self._children and time.monotonic() < deadline:
            self.check_children()
            time.sleep(0.01)
        for child in list(self._children.values()):
            _signal(child.pid, signal.SIGKILL)
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            self._exited(child, -9)
        if self._watch is not None:
            self._watch.cancel()

    async def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            try:
                await self._watch
            except asyncio.CancelledError:
                pass
            self._watch = None

    def consume(self) -> None:
        """The worker is up (bootsteps started, "ready."): the children start fetching.
        Forked at the pool's start, they connect meanwhile but take nothing before."""
        self._consuming = True
        self._send_all("go")

    def _send_all(self, message: Any) -> None:
        for child in list(self._children.values()):
            self._send(child, message)

    @staticmethod
    def _send(child: _Child, message: Any) -> None:
        try:
            child.conn.send_bytes(pickle.dumps(message))
        except OSError:
            pass  # exiting: the watch reaps it


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _exit_text(code: int) -> str:
    """Celery's wording: "signal 9 (SIGKILL)" or "exitcode 1"."""
    if code < 0:
        try:
            return f"'signal {-code} ({signal.Signals(-code).name})'"
        except ValueError:
            return f"'signal {-code}'"
    return f"'exitcode {code}'"
