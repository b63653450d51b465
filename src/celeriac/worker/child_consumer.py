"""A consumer child: a prefork child that fetches, runs and acks its own tasks.

With ``worker_consumer_children`` (pools/consumer_children.py) each child of a prefork
worker is a small solo worker of its own: its broker and backend connections, its
consumer, executor and acker, on its own event loop. The parent forks and supervises
them, answers remote control and sends the worker's heartbeats; no task passes through
it. The life of a child, top to bottom (``ChildConsumer.run``):

    1. undo what the fork inherited (signal handlers, the running-loop marker), ask to
       be sent SIGTERM if the parent dies (PR_SET_PDEATHSIG), name
       the process ForkPoolWorker-N (its log lines say so, as Celery's children's do),
       send worker_process_init
    2. connect to the broker and the result backend (new connections: a fork starts
       with none, celeriac/clients.py)
    3. the revoked store (loaded before the first fetch, reloaded as on any worker);
       task events with -E (no worker-online or heartbeats: those are the parent's)
    4. once the parent says "go" (its start-up done: bootsteps started, "ready."),
       consume until the parent says stop (a "stop" on the command pipe; SIGTERM is
       left to kill, as ``revoke(terminate=True)`` expects), or until the child retires
       (``max_tasks_per_child``, ``max_memory_per_child``): then stop fetching, give
       back what is prefetched, finish what runs, flush acks, close, exit 0

Where a message goes here is where it goes in a solo worker: consumer.py (fetch) ->
executor.py (run, ack). The board (pools/board.py) is how the parent sees the running
task; the command pipe is how remote control reaches the child (the parent forwards
the commands that change a worker: revoke, rate_limit, time_limit, add/cancel_consumer,
enable/disable_events).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import pickle
import resource
import signal
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from celeriac import loops, signals
from celeriac.brokers.base import Delivery
from celeriac.context import Context
from celeriac.control.commands import COMMANDS
from celeriac.control.revoked import RevokedStore, revoked_ttl_s
from celeriac.control.state import WorkerState
from celeriac.errors import TimeLimitExceeded
from celeriac.execution import Outcome
from celeriac.task import Task
from celeriac.worker import log_lines
from celeriac.worker.acks import Acker, LeaseKeeper
from celeriac.worker.consumer import Consumer
from celeriac.worker.executor import Executor
from celeriac.worker.pools.board import HELD_PER_CHILD, Board
from celeriac.worker.pools.pacing import MAX_PER_CHILD, PREFETCH_BUDGET_S, Pacing
from celeriac.worker.pools.prefork_child import reset_inherited_state
from celeriac.worker.pools.solo import SoloPool

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

logger = logging.getLogger("celeriac.worker")


#: seconds each of a stopping child's steps may take (the fetch in flight; the acks,
#: events and connections) before it exits anyway
CLOSE_S = 15.0
#: seconds between two writes of the child's totals on the board
TOTALS_S = 1.0
#: before a task expected to run this long, acks of finished ones are written first
ACK_FIRST_S = 0.001
#: a task expected to run this long (or never measured in this child) goes alone: the
#: child gives back what it prefetched first (Consumer.give_back_waiting)
LONG_S = PREFETCH_BUDGET_S


class BoardSoloPool(SoloPool):
    """The solo pool, telling the board which task runs, pacing its prefetch window
    by the tasks' run times (as the prefork parent does: a long task is not fetched
    in dozens) and retiring the child at its task or memory limit."""

    def __init__(self, board: Board, index: int, max_tasks: int | None,
                 max_memory_kib: int | None, retire: Any) -> None:
        super().__init__()
        self.board, self.index = board, index
        self.pacing = Pacing(1)
        self.max_tasks, self.max_memory_kib = max_tasks, max_memory_kib
        self._retire = retire
        self.done = 0
        #: the child's consumer: around a task expected to take LONG_S or more (or never
        #: measured here), it gives back what it prefetched and fetches nothing more
        self.consumer: Consumer | None = None
        #: the executor's tasks run by name, written on the board every TOTALS_S (by a
        #: timer, and before a task once that long has passed: a sync task holds the loop)
        self.totals: Counter[str] | None = None
        self.totals_at = 0.0
        #: the child's acker: before a task expected to take ACK_FIRST_S or more, the
        #: finished tasks' acks go out first (no-op tasks keep theirs batched)
        self.acker: Acker | None = None
        #: the child's executor (its task events, when on, are flushed before such a task)
        self.executor: Executor | None = None

    def write_totals(self) -> None:
        if self.totals is not None:
            self.board.write_totals(self.index, dict(self.totals))
            self.totals_at = time.monotonic()

    def window(self, configured: int) -> int:
        return self.pacing.window(configured)

    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  request: Context) -> Outcome:
        if self.totals is not None and time.monotonic() - self.totals_at >= TOTALS_S:
            self.write_totals()  # before a task that may hold the loop a long time
        consumer = self.consumer \
            if self.pacing.per_task.get(task.name, LONG_S) >= LONG_S else None
        if consumer is not None:
            try:
                await consumer.give_back_waiting()
            except Exception as exc:  # (a channel closing under it): run the task anyway
                logger.warning("could not give back the prefetched tasks before %s[%s]: "
                               "%s", task.name, request.id, exc)
        if self.pacing.expected(task.name) >= ACK_FIRST_S:  # a task that holds the loop:
            acker = self.acker  # first the acks (a kill during it must not run the last
            if acker is not None and acker.pending:  # ones again), and the task events
                await acker.flush()  # (its own received/started included: the flusher
            events = self.executor.events if self.executor is not None else None
            if events is not None and events.pending:  # cannot run until it ends)
                await events.flush()
        get = request.headers.get
        self.board.start(self.index, request.id or "", task.name, request.timelimit[0],
                         str(get("argsrepr") or ""), str(get("kwargsrepr") or ""))
        try:
            outcome = await super().run(task, args, kwargs, request)
        finally:
            self.board.finish(self.index)
            if consumer is not None:
                consumer.resume_fetching()
        if outcome.runtime_s is not None:
            self.pacing.observe(task.name, outcome.runtime_s)
        if type(outcome.value) is TimeLimitExceeded:  # the line Celery's parent logs
            logger.error("Hard time limit (%ss) exceeded for %s[%s]",
                         f"{request.timelimit[0]:g}", task.name, request.id)
        self.done += 1
        if (self.max_tasks and self.done >= self.max_tasks) or (
                self.max_memory_kib and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                > self.max_memory_kib):
            self._retire()
        return outcome


def _die_with(parent_pid: int) -> None:
    """SIGTERM this child when its parent dies (Linux's PR_SET_PDEATHSIG): a killed
    parent must not leave children consuming unsupervised; what they held comes back
    from the broker. Elsewhere the closed command pipe stops them after their task."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # it died before the prctl
        os._exit(1)


class BoardLeaseKeeper(LeaseKeeper):
    """The lease keeper, also writing each held delivery on the board: the parent lists
    them (``inspect reserved``) and, on leased brokers, gives them back at once should
    this child die."""

    def __init__(self, board: Board, index: int, *args: Any) -> None:
        super().__init__(*args)
        self.board, self.index = board, index
        self._free = list(range(HELD_PER_CHILD - 1, -1, -1))
        self._entry: dict[int, int] = {}

    def hold_all(self, deliveries: list[Delivery]) -> None:
        super().hold_all(deliveries)
        for delivery in deliveries:
            if self._free:
                entry = self._free.pop()
                message = delivery.message
                if self.board.hold(self.index, entry, delivery.tag, delivery.queue,
                                   message.task_id, message.task_name):
                    self._entry[id(delivery)] = entry
                else:
                    self._free.append(entry)

    def release(self, deliveries: list[Delivery]) -> None:
        super().release(deliveries)
        for delivery in deliveries:
            entry = self._entry.pop(id(delivery), None)
            if entry is not None:
                self.board.release(self.index, entry)
                self._free.append(entry)


class ChildConsumer:
    """One consumer child's life (see the module docstring)."""

    def __init__(self, parent: Worker, index: int, board: Board, conn: Connection,
                 parent_pid: int) -> None:
        self.parent, self.index, self.board, self.conn = parent, index, board, conn
        self.parent_pid = parent_pid  # (read before the fork)
        self._stop = asyncio.Event()
        self._cold = asyncio.Event()
        self._go = asyncio.Event()
        self.state: WorkerState | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self._consumer: Consumer | None = None

    def main(self) -> int:
        """In the forked child: the whole life; returns the exit status."""
        reset_inherited_state()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # revoke(terminate=True) kills
        _die_with(self.parent_pid)
        multiprocessing.current_process().name = f"ForkPoolWorker-{self.index + 1}"
        log_lines.defer_lines()  # a loop of its own again: one write per turn
        signals.send(signals.worker_process_init, None)
        try:
            loops.run(self.run())
        finally:
            signals.send(signals.worker_process_shutdown, None, pid=os.getpid(),
                         exitcode=0)
        return 0

    async def run(self) -> None:
        parent, app = self.parent, self.parent.app
        self._stop, self._cold, self._go = asyncio.Event(), asyncio.Event(), asyncio.Event()
        broker = await parent._connect(app.clients.broker, app.broker_url)     # 2
        backend = await parent._connect(app.clients.backend, app.result_backend_url or "")
        pool = BoardSoloPool(self.board, self.index, parent.max_tasks_per_child,
                             parent.max_memory_per_child, self.stop)
        leases = BoardLeaseKeeper(self.board, self.index, app._new_broker, broker.lease_s,
                                  broker.leased)
        leases.start()
        acker = Acker(broker)
        executor = Executor(app, broker, backend, pool, acker, parent.hostname)
        executor.lost_tasks = self.board.losses
        self._consumer = consumer = Consumer(broker, executor, leases, parent.queues,
                                             pool.capacity, MAX_PER_CHILD)
        pool.consumer, pool.acker, pool.executor = consumer, acker, executor
        consumer.limiter.shares = max(1, parent.concurrency)  # rate limits are per worker
        store = RevokedStore(broker, revoked_ttl_s(app))                         # 3
        executor.revoked = store.ids
        self.state = state = WorkerState(app, parent.hostname, broker, pool, executor,
                                         consumer, store, self.stop)
        try:
            await store.load()
        except Exception as exc:
            logger.error("could not load the revoked ids from the broker: %s", exc)
        store.start()
        if broker.supports_broadcast:  # task events with -E, or once enable_events
            from celeriac.events.dispatcher import EventDispatcher  # says so

            state.events = EventDispatcher(state, parent.events_enabled,
                                           worker_events=False)
            await state.events.start()
            if parent.events_enabled:
                executor.events = state.events
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._on_command)
        pool.totals = executor.totals
        self._write_totals(pool)
        go = asyncio.ensure_future(self._go.wait())  # the parent's start-up is done
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([go, stop], return_when=asyncio.FIRST_COMPLETED)
        go.cancel()
        consuming = asyncio.create_task(consumer.run())                         # 4
        await stop
        loop.remove_reader(self.conn.fileno())
        consumer.stop_fetching()
        try:  # a child must end: each step is bounded (its parent may be gone)
            async with asyncio.timeout(CLOSE_S):
                await consuming
            finished = not self._cold.is_set() and await consumer.drain(
                parent.shutdown_timeout_s, self._cold)
            async with asyncio.timeout(CLOSE_S):
                if not finished:  # cold, or tasks still running after the timeout
                    await consumer.abandon()
                await acker.flush()
                pool.write_totals()
                leases.stop()
                if state.events is not None:
                    await state.events.stop()
                await store.stop()
                await app.clients.close()
        except TimeoutError:
            logger.warning("stopping took over %ss; exiting (what it held and did not "
                           "ack comes back from the broker)", CLOSE_S)

    def _write_totals(self, pool: BoardSoloPool) -> None:
        """Tasks run by name on the board, for the parent's ``inspect stats``, every
        TOTALS_S (a dict's marshal and a copy: nothing per task)."""
        pool.write_totals()
        if not self._stop.is_set():
            asyncio.get_running_loop().call_later(TOTALS_S, self._write_totals, pool)

    def stop(self) -> None:
        """Stop fetching now (runners give back what they have not started), then
        finish what runs: the parent said so, or this child retires."""
        if self._consumer is not None:
            self._consumer.stop_fetching()
        self._stop.set()

    def _on_command(self) -> None:
        """A message from the parent: "go", "stop", "cold", or (command, arguments)."""
        try:
            raw = self.conn.recv_bytes()
        except (EOFError, OSError):  # the parent is gone: stop (and give back)
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self.stop()
            return
        message = pickle.loads(raw)
        if message == "go":
            self._go.set()
        elif message == "stop":
            self.stop()
        elif message == "cold":
            self._cold.set()
            self.stop()
        else:
            name, arguments = message
            task = asyncio.create_task(self._command(name, arguments))
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)

    async def _command(self, name: str, arguments: dict[str, Any]) -> None:
        fun = COMMANDS.get(name)
        if fun is None or self.state is None:
            return
        try:
            await fun(self.state, **arguments)
        except Exception as exc:
            logger.error("control command %s failed in the child: %r", name, exc)
