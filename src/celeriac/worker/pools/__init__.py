"""Pools by name: solo, threads, asyncio, prefork (Celery's -P names map onto them)."""

from __future__ import annotations

import logging

from celeriac.errors import ConfigurationError
from celeriac.worker.pools.base import Pool

logger = logging.getLogger("celeriac.worker")

POOL_NAMES = ("prefork", "solo", "threads", "asyncio")
#: Celery pool names that celeriac serves with one of its own, and why
ALIASES = {
    "eventlet": ("asyncio", "celeriac has no monkey-patching: -P eventlet runs the asyncio "
                            "pool (async def tasks on the loop, sync tasks in threads)"),
    "gevent": ("asyncio", "celeriac has no monkey-patching: -P gevent runs the asyncio pool "
                          "(async def tasks on the loop, sync tasks in threads)"),
    "thread": ("threads", "-P thread is -P threads"),
    "processes": ("prefork", "-P processes is -P prefork"),
    "custom": ("prefork", "-P custom is not supported: using prefork"),
}


def resolve_pool_name(name: str) -> tuple[str, str | None]:
    """(pool name, notice to log or None); raises ConfigurationError for unknown names."""
    name = name.lower()
    if name in POOL_NAMES:
        return name, None
    if name in ALIASES:
        return ALIASES[name]
    raise ConfigurationError(
        f"unknown pool {name!r}: use one of {', '.join(POOL_NAMES)} (or eventlet/gevent)"
    )


def create_pool(name: str, concurrency: int, max_tasks_per_child: int | None = None,
                max_memory_per_child_kib: int | None = None) -> Pool:
    if name == "solo":
        from celeriac.worker.pools.solo import SoloPool

        return SoloPool()
    if name == "threads":
        from celeriac.worker.pools.threads import ThreadPool

        return ThreadPool(concurrency)
    if name == "asyncio":
        from celeriac.worker.pools.asyncio_pool import AsyncioPool

        return AsyncioPool(concurrency)
    if name == "prefork":
        from celeriac.worker.pools.prefork import PreforkPool

        return PreforkPool(concurrency, max_tasks_per_child, max_memory_per_child_kib)
    raise ConfigurationError(f"unknown pool {name!r}")


__all__ = ["ALIASES", "POOL_NAMES", "Pool", "create_pool", "resolve_pool_name"]
