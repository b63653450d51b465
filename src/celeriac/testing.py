"""Testing helpers, and the pytest plugin that ships them (fixtures load automatically).

Three ways to test code that sends tasks:
- eager: ``app.conf.task_always_eager = True`` and ``task_eager_propagates = True``:
  ``.delay()`` runs the task inline and re-raises its errors.
- ``drain(app)``: the app sends to an in-memory broker as usual; ``drain`` runs every
  queued task (retries and countdowns included, without waiting) through the real worker
  pipeline, in this thread, and re-raises the first task error (Dramatiq's ``join``).
- a real worker: ``worker_thread(app)`` runs a Worker in a thread for integration tests.

Fixtures: ``celeriac_app`` (an app on a fresh ``memory://`` broker and result store) and
``celeriac_worker`` (a threads-pool worker running on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import states
from celeriac.app import Celery
from celeriac.backends.base import rebuild_exception
from celeriac.brokers.memory import MemoryBroker
from celeriac.worker.acks import Acker
from celeriac.worker.executor import Executor
from celeriac.worker.pools.solo import SoloPool


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
    """Run a real Worker for ``app`` in a background thread while the block runs."""
    worker = app.Worker(pool=pool, concurrency=concurrency, print_banner=False, **options)
    ready = threading.Event()
    loop_box: dict[str, asyncio.AbstractEventLoop] = {}

    def serve() -> None:
        async def main() -> None:
            loop_box["loop"] = asyncio.get_running_loop()
            ready.set()
            await worker.run()

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="celeriac-test-worker", daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.05)
    try:
        yield worker
    finally:
        loop = loop_box.get("loop")
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(worker.stop)
        thread.join(30)


@pytest.fixture
def celeriac_app() -> Celery:
    """A Celery app on a private in-memory broker and result store."""
    return memory_app()


@pytest.fixture
def celeriac_worker(celeriac_app: Celery) -> Iterator[Any]:
    """A threads-pool worker running ``celeriac_app`` until the test ends."""
    with worker_thread(celeriac_app) as worker:
        yield worker
