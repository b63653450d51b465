"""Embedded workers for tests (Celery's ``celery.contrib.testing.worker``).

``start_worker(app)`` runs a real worker (celeriac.worker.Worker) in a thread of the
test process, waits until it consumes, checks it with a round trip of the
``celery.ping`` task, and stops it when the block ends (raising if it has not stopped
within ``shutdown_timeout``). ``run_in_thread`` is the part that runs and stops the
thread; celeriac.testing.worker_thread uses it too.

Celery's WorkController arguments are read where celeriac has them (``queues``,
``exclude_queues``, ``hostname``, ``prefetch_multiplier``, ``send_events``,
``without_heartbeat``, ...); the others are ignored, as Celery's worker ignores
arguments it does not know.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from celeriac import loops
from celeriac.app import Celery
from celeriac.contrib.testing.app import logging_enabled
from celeriac.queues import select_queues
from celeriac.result import allow_join_result
from celeriac.utils.dispatch import Signal
from celeriac.utils.log import mlevel
from celeriac.worker.consumer import Consumer
from celeriac.worker.worker import Worker

#: the level an embedded worker logs at unless told (Celery's WORKER_LOGLEVEL)
WORKER_LOGLEVEL = os.environ.get("WORKER_LOGLEVEL", "error")

test_worker_starting = Signal("test_worker_starting")
test_worker_started = Signal("test_worker_started")
test_worker_stopped = Signal("test_worker_stopped")

#: Celery WorkController arguments with the same meaning on celeriac's Worker
_WORKER_ARGUMENTS = ("hostname", "prefetch_multiplier", "max_tasks_per_child",
                     "max_memory_per_child", "send_events", "autoscale", "beat")


class TestWorkController(Worker):
    """A Worker that tells the thread that started it when it is consuming."""

    __test__ = False  # not a test class, when imported into a test module

    def __init__(self, app: Celery, **options: Any) -> None:
        super().__init__(app, **options)
        self._on_started = threading.Event()

    def on_consumer_ready(self, consumer: Consumer) -> None:
        self._on_started.set()
        test_worker_started.send(sender=self.app, worker=self, consumer=consumer)

    def ensure_started(self, timeout: float | None = None) -> bool:
        """Wait until the worker consumes (call from another thread); False on timeout."""
        return self._on_started.wait(timeout)

    def reload(self, modules: Sequence[str] | None = None, reload: bool = False,
               reloader: Any = None) -> None:
        """Celery's docs call this after adding a task to the app under test. Nothing
        to do for those: the worker looks each message's task up in the app's registry
        (threads and solo pools; prefork children see only tasks their fork saw).
        ``modules`` are imported."""
        import importlib

        for module in modules or ():
            importlib.import_module(module)


@contextlib.contextmanager
def run_in_thread(worker: TestWorkController, shutdown_timeout: float = 10.0,
                  start_timeout: float = 30.0) -> Iterator[TestWorkController]:
    """Run ``worker`` in a daemon thread while the block runs; raise what stopped it
    early. At the end: a warm shutdown, waited for ``shutdown_timeout`` seconds."""
    loop_box: list[asyncio.AbstractEventLoop] = []
    errors: list[BaseException] = []
    ended = threading.Event()

    def serve() -> None:
        async def main() -> None:
            loop_box.append(asyncio.get_running_loop())
            await worker.run()

        try:
            loops.run(main())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)
        finally:
            ended.set()
            worker._on_started.set()  # nobody waits for a start that will not come

    thread = threading.Thread(target=serve, name=f"celeriac-test-worker {worker.hostname}",
                              daemon=True)
    thread.start()
    if not worker.ensure_started(start_timeout):
        _stop(worker, loop_box, thread, shutdown_timeout)
        raise RuntimeError(f"the test worker did not start within {start_timeout}s")
    if ended.is_set():
        raise RuntimeError("the test worker stopped while starting") from (
            errors[0] if errors else None)
    try:
        yield worker
    finally:
        _stop(worker, loop_box, thread, shutdown_timeout)
    if errors:
        raise RuntimeError("the test worker failed") from errors[0]


def _stop(worker: TestWorkController, loop_box: list[asyncio.AbstractEventLoop],
          thread: threading.Thread, timeout: float) -> None:
    loop = loop_box[0] if loop_box else None
    if loop is not None and not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(worker.stop)
    thread.join(timeout + 5.0)  # its running tasks get ``timeout``; then a cold stop
    if thread.is_alive():
        raise RuntimeError("Worker thread failed to exit within the allocated timeout. "
                           "Consider raising `shutdown_timeout` if your tasks take longer "
                           "to execute.")


@contextlib.contextmanager
def start_worker(app: Celery, concurrency: int = 1, pool: str = "solo",
                 loglevel: str | int = WORKER_LOGLEVEL, logfile: str | None = None,
                 perform_ping_check: bool = True, ping_task_timeout: float = 10.0,
                 shutdown_timeout: float = 10.0, **kwargs: Any
                 ) -> Iterator[TestWorkController]:
    """Run a worker for ``app`` in a thread while the block runs (Celery's
    ``start_worker``); with ``perform_ping_check``, first wait for ``celery.ping``'s
    answer through it (sent to the first queue it consumes, so a worker given
    ``queues`` passes the check too)."""
    test_worker_starting.send(sender=app)
    worker = None
    try:
        with _start_worker_thread(app, concurrency=concurrency, pool=pool,
                                  loglevel=loglevel, logfile=logfile,
                                  perform_ping_check=perform_ping_check,
                                  shutdown_timeout=shutdown_timeout, **kwargs) as worker:
            if perform_ping_check:  # to a queue it consumes (Celery's: the default)
                ping = app.tasks["celery.ping"].apply_async(queue=worker.queues[0])
                with allow_join_result():
                    answer = ping.get(timeout=ping_task_timeout)
                if answer != "pong":
                    raise RuntimeError(f"celery.ping answered {answer!r}")
            yield worker
    finally:
        test_worker_stopped.send(sender=app, worker=worker)


@contextlib.contextmanager
def _start_worker_thread(app: Celery, concurrency: int = 1, pool: str = "solo",
                         loglevel: str | int = WORKER_LOGLEVEL, logfile: str | None = None,
                         WorkController: type[TestWorkController] = TestWorkController,
                         perform_ping_check: bool = True, shutdown_timeout: float = 10.0,
                         **kwargs: Any) -> Iterator[TestWorkController]:
    if perform_ping_check:
        from celeriac.contrib.testing import tasks  # noqa: F401  # registers celery.ping
    setup_app_for_worker(app, loglevel, logfile)
    app.run_sync(_reach_broker(app))  # fail here, not after the worker's retries
    if kwargs.pop("without_heartbeat", True):
        app.conf.worker_heartbeat_interval = 0
    queues = select_queues(app.conf, _comma(kwargs.pop("queues", None)),
                           _comma(kwargs.pop("exclude_queues", None)))
    options = {key: kwargs[key] for key in _WORKER_ARGUMENTS if key in kwargs}
    options.setdefault("hostname", f"gen{os.getpid()}@%h")  # Celery's anon_nodename
    worker = WorkController(app, concurrency=concurrency, pool=pool, queues=queues,
                            shutdown_timeout_s=shutdown_timeout, print_banner=False,
                            **options)
    with run_in_thread(worker, shutdown_timeout) as running:
        yield running


async def _reach_broker(app: Celery) -> None:
    await app.clients.broker()


def _comma(value: str | Sequence[str] | None) -> str | None:
    """Celery takes queues as a list or a comma-separated string; -Q's parser the latter."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def setup_app_for_worker(app: Celery, loglevel: str | int | None,
                         logfile: str | None) -> None:
    """Ready ``app`` for an embedded worker: tasks imported, made the current app (so
    shared tasks send through it), and logging set up as the worker command would,
    unless it is a TestApp made without ``enable_logging``."""
    app.finalize()
    app.set_current()
    app.set_default()
    if not logging_enabled(app):
        return
    from celeriac.worker.banner import setup_logging

    level = mlevel(loglevel) or logging.WARNING
    conf = app.conf
    root = logging.getLogger()
    if conf.worker_hijack_root_logger or not root.handlers:
        setup_logging(logging.getLevelName(level), conf.worker_log_format,
                      conf.worker_task_log_format, logfile=logfile)
    path = os.path.abspath(logfile) if logfile else None
    if path and not any(getattr(h, "baseFilename", None) == path for h in root.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(conf.worker_log_format))
        root.addHandler(handler)
    root.setLevel(level)
