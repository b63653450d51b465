"""asyncio: thousands of ``async def`` tasks at once on the worker's loop.

Concurrency (``-c``) is how many tasks may be in progress together, coroutine or not:
``async def`` tasks share the worker's loop, sync tasks run in OS threads, up to ``-c``
of them, started as needed (a blocking function cannot stall the loop). The same as
the threads pool, under the name that says what the app is written for.
"""

from __future__ import annotations

from celeriac.worker.pools.threads import ThreadPool


class AsyncioPool(ThreadPool):
    name = "asyncio"
