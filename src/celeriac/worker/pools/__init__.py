"""Pools by name: solo, threads, asyncio, prefork (Celery's -P names map onto them)."""

from __future__ import annotations

import importlib.util
import logging

from celeriac.errors import ConfigurationError
from celeriac.worker.pools.base import Pool

logger = logging.getLogger("celeriac.worker")

POOL_NAMES = ("prefork", "solo", "threads", "asyncio")
#: Celery's green pools: served by OS threads, one per ``-c`` slot (README, "Worker pools")
GREEN_POOLS = ("eventlet", "gevent")
#: Celery pool names that celeriac serves with one of its own, and why
ALIASES = {
    **{green: ("threads", "") for green in GREEN_POOLS},
    "thread": ("threads", "-P thread is -P threads"),
    "processes": ("prefork", "-P processes is -P prefork"),
    "custom": ("prefork", "-P custom is not supported: using prefork"),
}


def green_notice(name: str) -> str:
    """Why ``-P eventlet``/``-P gevent`` runs OS threads, and whether the library is there.

    Greenlets need the process monkey-patched, and celeriac's worker is an asyncio event
    loop with threads of its own (the lease keeper's and the I/O bridge's loops): patched,
    those threads become greenlets of the main thread, where asyncio allows one running
    loop (they fail), and uvloop's wait never hands the hub a turn (tasks hang)."""
    installed = importlib.util.find_spec(name) is not None
    return (f"-P {name} runs the threads pool: one OS thread per -c slot, started as "
            f"needed, so -c 1000 runs 1,000 blocking tasks at once; {name} is "
            f"{'installed but ' if installed else ''}not used (celeriac's worker is an "
            f"asyncio event loop that monkey-patching breaks)")


def resolve_pool_name(name: str) -> tuple[str, str | None]:
    """(pool name, notice to log or None); raises ConfigurationError for unknown names."""
    name = name.lower()
    if name in POOL_NAMES:
        return name, None
    if name in GREEN_POOLS:
        return "threads", green_notice(name)
    if name in ALIASES:
        return ALIASES[name]
    raise ConfigurationError(
        f"unknown pool {name!r}: use one of {', '.join(POOL_NAMES)} (or eventlet/gevent)"
    )


def create_pool(name: str, concurrency: int, max_tasks_per_child: int | None = None,
                max_memory_per_child_kib: int | None = None,
                requested: str | None = None) -> Pool:
    """The pool ``name`` (already resolved); ``requested`` is the ``-P`` the user gave,
    named in the banner when it differs (``1000 (threads, for -P eventlet: ...)``)."""
    pool = _create(name, concurrency, max_tasks_per_child, max_memory_per_child_kib)
    if requested and requested.lower() in GREEN_POOLS:
        pool.note = f"for -P {requested.lower()}: OS threads, not greenlets"
    return pool


def _create(name: str, concurrency: int, max_tasks_per_child: int | None,
            max_memory_per_child_kib: int | None) -> Pool:
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


__all__ = ["ALIASES", "GREEN_POOLS", "POOL_NAMES", "Pool", "create_pool",
           "resolve_pool_name"]
