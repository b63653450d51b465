"""Testing helpers (a pytest plugin too: celeriac's ``pytest11`` entry point,
celeriac.contrib.pytest_autoload, names it in ``pytest_plugins``).

Three ways to test code that sends tasks:
- eager: ``app.conf.task_always_eager = True`` and ``task_eager_propagates = True``:
  ``.delay()`` runs the task inline and re-raises its errors.
- ``drain(app)``: the app sends to an in-memory broker as usual; ``drain`` runs every
  queued task (retries and countdowns included, without waiting) through the real worker
  pipeline, in this thread, and re-raises the first task error (Dramatiq's ``join``).
- a real worker: ``worker_thread(app)`` runs a Worker in a thread for integration tests
  (``celeriac.contrib.testing.worker.start_worker`` is Celery's equivalent).

The fixtures (Celery's, renamed: ``celeriac_app``, ``celeriac_worker``, ...) are in
celeriac.contrib.pytest, the one plugin. This module only names it in
``pytest_plugins``: pytest then registers it under its module name, so a conftest that
also asks for it by name (as Celery's docs say to) finds it loaded, not loaded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from celeriac import states
from celeriac.app import Celery
from celeriac.backends.base import rebuild_exception
from celeriac.brokers.memory import MemoryBroker
from celeriac.worker.acks import Acker
from celeriac.worker.executor import Executor
from celeriac.worker.pools.solo import SoloPool

pytest_plugins = ["celeriac.contrib.pytest"]


class TaskFailed(AssertionError):
    """Raised by ``drain`` when a task failed and the failure has no exception to re-raise."""


def memory_app(name: str = "tests", **settings: Any) -> Celery:
    """An app on a private in-memory broker and result store."""
    store = uuid.uuid4().hex
    return Celery(name, broker=f"memory://{store}", backend=f"memory://{store}",
                  set_as_current=False, **settings)


def drain(app: Celery, queues: list[str] | None = None, *, raise_errors: bool = True,
          max_rounds: int = 10_000) -> int:
    """Run queued tasks (and delayed ones, at once) until none are left; returns how many
    ran. Needs a ``memory://`` broker. Re-raises the first task failure."""
    return asyncio.run(_drain(app, queues or [app.conf.task_default_queue], raise_errors,
                              max_rounds))


async def _drain(app: Celery, queues: list[str], raise_errors: bool, max_rounds: int) -> int:
    broker = await app.clients.broker()
    if not isinstance(broker, MemoryBroker):
        raise TypeError("drain() runs tasks from a memory:// broker; this app uses "
                        f"{app.broker_url}")
    backend = await app.clients.backend()
    failures: list[str] = []
    acker = Acker(broker)
    executor = Executor(app, broker, backend, SoloPool(), acker, "drain@testing")
    executor.honour_eta = False
    ran = 0
    try:
        for _ in range(max_rounds):
            broker.release_delayed()
            deliveries = await broker.fetch(queues, 100, 0)
            if not deliveries:
                break
            for delivery in deliveries:
                await executor.process(delivery)
                ran += 1
                task_id = delivery.message.task_id
                meta = await backend.get(task_id)
                if meta and meta.get("status") == states.FAILURE:
                    failures.append(task_id)
                    if raise_errors:
                        await acker.flush()
                        raise rebuild_exception(meta.get("result"))
            await acker.flush()
    finally:
        await app.clients.close()
    return ran


@contextlib.contextmanager
def worker_thread(app: Celery, pool: str = "threads", concurrency: int = 4,
                  **options: Any) -> Iterator[Any]:
    """Run a real Worker for ``app`` in a background thread while the block runs (from
    the moment it consumes); ``options`` are celeriac Worker arguments."""
    from celeriac.contrib.testing.worker import TestWorkController, run_in_thread

    worker = TestWorkController(app, pool=pool, concurrency=concurrency, print_banner=False,
                                **options)
    with run_in_thread(worker, shutdown_timeout=25.0) as running:
        yield running
