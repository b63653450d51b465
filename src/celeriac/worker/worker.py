"""The worker process: start-up and shutdown order, written out in one place.

``Worker.run`` is the whole life of a worker, top to bottom:

    1. import the app's task modules (autodiscovery, imports/include); the signals
       celeryd_init before, import_modules and worker_init after (celeriac/signals.py);
       then make the app's bootsteps (app.steps: worker/steps.py)
    2. connect to the broker and the result backend (waiting for a server not up yet,
       as Celery's broker_connection_retry_on_startup: worker/connect.py; URL masked);
       warn when an embedded store the user placed can be read by other users
    3. start the pool (prefork forks its children here, after the tasks are imported)
    4. start the lease keeper (on brokers with leases, not RabbitMQ) and the acker;
       then the control plane (celeriac.control.service): the mailbox, the revoked ids
       loaded from the broker before the first fetch, events with -E
    5. celeryd_after_setup; print the banner
    6. install signal handlers: first SIGTERM/SIGINT = warm, second = cold shutdown;
       start the app's bootsteps (worker steps, then consumer steps; one that fails
       stops the worker, exit status 1); with -B start the embedded beat thread here,
       stop it first on shutdown
    7. worker_ready; consume until asked to stop (with consumer children, the default
       prefork pool, the children start consuming here: worker/pools/consumer_children.py)
    8. shut down: stop fetching, return reserved messages, stop the bootsteps, let
       running tasks finish (up to worker_shutdown_timeout), flush acks, stop the pool,
       stop the control plane, the consumer steps' shutdown, close connections

Where a message goes from here: consumer.py (fetch) -> executor.py (run, ack).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import __version__, loops, signals
from celeriac.brokers.base import mask_url
from celeriac.brokers.sqlite.files import store_warnings
from celeriac.control.service import WorkerControl, start_control
from celeriac.errors import BrokerConnectionError, ConfigurationError
from celeriac.queues import queue_names
from celeriac.worker.acks import Acker, LeaseKeeper
from celeriac.worker.autoscale import ScaledPool, autoscaler_for
from celeriac.worker.banner import banner
from celeriac.worker.connect import connect_on_startup, retry_settings
from celeriac.worker.consumer import Consumer
from celeriac.worker.consumer_view import ConsumerView
from celeriac.worker.executor import Executor
from celeriac.worker.pools import create_pool, resolve_pool_name
from celeriac.worker.steps import EX_FAILURE, Bootsteps
from celeriac.worker.timer import Timer

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.worker")


def expand_hostname(template: str | None) -> str:
    """``-n`` like Celery: %h full hostname, %n name part, %d domain part."""
    host = socket.gethostname()
    name, _, domain = host.partition(".")
    template = template or "celeriac@%h"
    return template.replace("%h", host).replace("%n", name).replace("%d", domain)


def _sqlite_paths(*urls: str | None) -> list[str]:
    """The files of the embedded stores among these URLs."""
    from celeriac.brokers.sqlite.broker import sqlite_path

    return [sqlite_path(u) for u in urls if u and u.startswith("sqlite://")]


def _exporter(app: Celery, queues: list[str], port: int, address: str) -> Any:
    """--metrics-port's exporter (celeriac.observe.metrics), or a clear error."""
    try:
        from celeriac.observe.metrics import WorkerExporter
    except ImportError as exc:
        raise ConfigurationError(f"--metrics-port needs prometheus-client: pip install "
                                 f"'celeriac[metrics]' ({exc})") from None
    return WorkerExporter(app, queues, port, address,
                          app.conf.seconds("worker_metrics_interval") or 5.0)


class Worker:
    """One worker process consuming from the app's broker. See the module docstring."""

    def __init__(
        self,
        app: Celery,
        *,
        concurrency: int | None = None,
        pool: str | None = None,
        queues: Sequence[str] | None = None,
        hostname: str | None = None,
        prefetch_multiplier: int | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        send_events: bool = False,
        shutdown_timeout_s: float | None = None,
        print_banner: bool = True,
        metrics_port: int | None = None,
        metrics_address: str = "127.0.0.1",
        beat: bool = False,
        autoscale: tuple[int, int] | None = None,
    ) -> None:
        conf = app.conf
        self.app = app
        self.pool_requested = pool or conf.worker_pool  # what -P said, for the banner
        pool_name, self.pool_notice = resolve_pool_name(self.pool_requested)
        self.pool_name = pool_name
        self.concurrency = concurrency or conf.worker_concurrency or os.cpu_count() or 1
        if pool_name == "solo":
            self.concurrency = 1
        # as Celery: every queue task_queues declares, unless -Q names some
        self.queues = list(queues or queue_names(conf.task_queues)
                           or [conf.task_default_queue])
        self.hostname = expand_hostname(hostname)
        self.prefetch_multiplier = prefetch_multiplier or conf.worker_prefetch_multiplier
        self.max_tasks_per_child = max_tasks_per_child or conf.worker_max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child or conf.worker_max_memory_per_child
        self.send_events = send_events or conf.worker_send_task_events
        self.shutdown_timeout_s = (shutdown_timeout_s if shutdown_timeout_s is not None
                                   else conf.seconds("worker_shutdown_timeout") or 0.0)
        self.print_banner = print_banner
        #: --metrics-port: Prometheus metrics (celeriac.observe.metrics) when set
        self.metrics_port = metrics_port
        self.metrics_address = metrics_address
        self.exporter: Any = None
        #: the options it was made with (Celery's ``celeryd_init`` passes them on)
        self.options = {"concurrency": concurrency, "pool": pool, "queues": queues,
                        "hostname": hostname, "prefetch_multiplier": prefetch_multiplier}
        self.beat = beat
        #: (max, min) pool size, or None: a fixed pool of ``concurrency`` (autoscale.py)
        self.autoscale = autoscale if pool_name != "solo" else None
        if autoscale and pool_name == "solo":
            logger.warning("--autoscale has no effect on the solo pool (one task at a time)")
        #: prefork children that consume from the broker themselves
        #: (worker/pools/consumer_children.py)
        self.consumer_children = pool_name == "prefork" and bool(
            conf.worker_consumer_children) and not str(app.broker_url or "").startswith(
            "memory")  # an in-process broker: the parent must hold it
        if self.consumer_children and (metrics_port is not None or self.autoscale):
            # the exporter counts outcomes in this process, and --autoscale resizes a
            # pool that this process feeds: both need the classic prefork pool
            logger.info("%s: the parent hands the children their tasks "
                        "(worker_consumer_children does not apply)",
                        "--autoscale" if self.autoscale else "--metrics-port")
            self.consumer_children = False
        self.consumer: Consumer | None = None
        self.control: WorkerControl | None = None
        self.pool: Any = None
        #: Celery's worker.timer, for bootsteps (worker/timer.py)
        self.timer = Timer()
        #: Celery's Consumer as the app's code sees it (control commands, bootsteps)
        self.consumer_view = ConsumerView(self)
        self.steps = Bootsteps([])
        #: send worker events (heartbeats; task events with -E); see celeriac.events
        self.events_enabled = self.send_events
        self._stop = asyncio.Event()
        self._cold = asyncio.Event()
        self._signals = 0
        self.exit_code = 0

    # -- running ------------------------------------------------------------------------
    def start(self) -> int:
        """Run the worker until it is shut down; returns the process exit code."""
        loops.run(self.run())
        return self.exit_code

    async def run(self) -> None:
        """The start-up order (see the module docstring), then the shutdown order."""
        app = self.app
        self._stop, self._cold = asyncio.Event(), asyncio.Event()
        self.timer.bind(asyncio.get_running_loop())
        signals.send(signals.celeryd_init, self.hostname, instance=self, conf=app.conf,
                     options=self.options)
        app.finalize()                                                    # 1
        signals.send(signals.worker_init, self)
        self.steps = Bootsteps.build(app, self, self.consumer_view, self.options)
        broker = await self._connect(app.clients.broker, app.broker_url)  # 2
        backend = await self._connect(app.clients.backend, app.result_backend_url or "")
        for warning in store_warnings(_sqlite_paths(app.broker_url, app.result_backend_url)):
            logger.warning("%s", warning)
        if self.pool_notice:
            logger.warning("%s", self.pool_notice)
        self.pool = pool = self._create_pool()
        await pool.start()                                                # 3
        leases = LeaseKeeper(app._new_broker, broker.lease_s, broker.leased)  # 4
        leases.start()
        acker = Acker(broker)
        executor = Executor(app, broker, backend, pool, acker, self.hostname)
        if self.metrics_port is not None:
            self.exporter = _exporter(app, self.queues, self.metrics_port,
                                      self.metrics_address)
            await self.exporter.start(executor.on_outcome)
        self.consumer = consumer = Consumer(
            broker, executor, leases, self.queues, pool.capacity,
            pool.capacity * max(1, self.prefetch_multiplier))
        scaler = autoscaler_for(pool, consumer, self.prefetch_multiplier)
        self.control = await start_control(self, broker, pool, executor, consumer)
        signals.send(signals.celeryd_after_setup, self.hostname, instance=self,
                     conf=app.conf)
        if self.print_banner:                                             # 5
            out = getattr(sys.stdout, "original", sys.stdout)  # not redirected to the log
            print(banner(app, self.hostname, __version__, pool.describe(), self.queues,
                         app.result_backend_url, self.send_events), file=out, flush=True)
        logger.info("Connected to %s", mask_url(app.broker_url))  # after it, as Celery
        self._install_signal_handlers()                                   # 6
        consuming = beat = None
        if await self.steps.start():
            beat = self._start_beat()
            logger.info("%s ready.", self.hostname)
            self.on_consumer_ready(consumer)
            signals.send(signals.worker_ready, consumer)
            if getattr(pool, "children_consume", False):
                pool.consume()  # consumer children: each fetches for itself
            else:
                consuming = asyncio.create_task(consumer.run())           # 7
            await self._stop.wait()
        else:
            self.exit_code = EX_FAILURE
        if beat is not None:  # stop sending before the connections close
            beat[0].stop()
            await asyncio.to_thread(beat[1].join, 10.0)
        if scaler is not None:
            await scaler.stop()
        await self._shutdown(consuming, consumer, acker, pool, leases)    # 8

    def on_consumer_ready(self, consumer: Consumer) -> None:
        """Called when the worker is set up and about to consume (Celery's hook of the
        same name; celeriac.contrib.testing.worker waits on it)."""

    def _start_beat(self) -> Any:
        """``-B``: the app's scheduler in a thread of this process (celeriac.beat)."""
        if not self.beat:
            return None
        from celeriac.beat import Scheduler, run_threaded

        scheduler = Scheduler(self.app)
        signals.send(signals.beat_embedded_init, scheduler)
        return scheduler, run_threaded(scheduler)

    def _create_pool(self) -> Any:
        if self.consumer_children:
            from celeriac.worker.pools.consumer_children import ConsumerChildren

            return ConsumerChildren(self.concurrency, self)
        def make(size: int) -> Any:
            return create_pool(self.pool_name, size, self.max_tasks_per_child,
                               self.max_memory_per_child, requested=self.pool_requested)

        if self.autoscale:
            max_size, min_size = self.autoscale
            # prefork and threads resize themselves; others get the gate alone
            resizes = self.pool_name in ("prefork", "threads")
            return ScaledPool(make(max(1, min_size) if resizes else max_size),
                              max_size, min_size)
        return make(self.concurrency)

    async def _connect(self, connect: Any, url: str) -> Any:
        """Connect, waiting for a server that is not up yet (worker/connect.py)."""
        async def attempt() -> Any:
            try:
                return await connect()
            except BrokerConnectionError:
                raise
            except Exception as exc:
                raise BrokerConnectionError(f"cannot connect to {mask_url(url)}: {exc}") from exc

        retry, max_retries = retry_settings(self.app.conf)
        return await connect_on_startup(attempt, url, retry=retry, max_retries=max_retries)

    async def _shutdown(self, consuming: asyncio.Task[None] | None, consumer: Consumer,
                        acker: Acker, pool: Any, leases: LeaseKeeper) -> None:
        consumer.stop_fetching()
        if consuming is not None:
            await consuming
        cold = self._cold.is_set()
        await self.steps.stop(cold)
        if not cold:
            finished = await consumer.drain(self.shutdown_timeout_s, self._cold)
            cold = self._cold.is_set()
            if not finished and not cold:
                logger.warning("tasks still running after %ss; cold shutdown",
                               self.shutdown_timeout_s)
                cold = True
        if cold:
            await consumer.abandon()
            pool.terminate()
        await acker.flush()
        if not cold:
            await pool.stop()
        leases.stop()
        if self.control is not None:
            await self.control.stop()
        if self.exporter is not None:
            await self.exporter.stop()
        await self.steps.shutdown()
        self.timer.clear()
        signals.send(signals.worker_shutdown, self)
        await self.app.clients.close()
        logger.info("%s stopped.", self.hostname)

    # -- signals ------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests running a worker in a thread)

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if signum == signal.SIGQUIT:
            self._signals = 2
        how = "Warm" if self._signals == 1 else "Cold"
        signals.send(signals.worker_shutting_down, self.hostname,
                     sig=signal.Signals(signum).name, how=how, exitcode=self.exit_code)
        if self._signals == 1:
            logger.warning("worker: Warm shutdown (MainProcess)")
            self.stop()
        else:
            logger.warning("worker: Cold shutdown (MainProcess)")
            self._cold.set()
            self._stop.set()

    def stop(self) -> None:
        """Begin a warm shutdown (safe to call from the worker's loop)."""
        self._stop.set()
