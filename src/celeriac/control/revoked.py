"""Revoke that sticks: revoked task ids kept in the broker, refused by every worker.

Celery keeps revoked ids in each worker's memory (lost on restart without
``--statedb``, unknown to workers started later except through mingle). Here a revoke
is written to the broker's revoked store (``Broker.store_revoked``: a Redis sorted
set, a durable RabbitMQ queue, an SQLite table) for ``worker_revoked_ttl`` seconds
(default: ``result_expires``, 1 day; at least a minute). A worker loads the store
before it fetches its first message, hears new revokes on the control broadcast,
and reloads the store every ``RELOAD_S`` in case it missed one (a reconnect).

``ids`` is a plain dict (id -> unix time it is forgotten) the executor checks with
one ``in`` per task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from celeriac.brokers.base import BroadcastNotSupported, Broker
from celeriac.utils.aio import cancel_and_wait

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.control")
#: seconds between reloads of the broker's store
RELOAD_S = 30.0
#: the shortest time a revoke is kept
MIN_TTL_S = 60.0
DEFAULT_TTL_S = 86400.0


def revoked_ttl_s(app: Celery) -> float:
    """``worker_revoked_ttl``, else ``result_expires``, else a day; at least a minute."""
    ttl = app.conf.seconds("worker_revoked_ttl") or app.conf.seconds("result_expires")
    return max(MIN_TTL_S, float(ttl or DEFAULT_TTL_S))


class RevokedStore:
    """This worker's view of the revoked ids, kept in step with the broker's store."""

    def __init__(self, broker: Broker, ttl_s: float) -> None:
        self.broker = broker
        self.ttl_s = ttl_s
        self.ids: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.persistent = broker.supports_broadcast

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.ids

    async def load(self) -> None:
        """Merge the broker's store into ``ids`` and forget expired ones."""
        if not self.persistent:
            return
        try:
            stored = await self.broker.load_revoked()
        except BroadcastNotSupported:
            self.persistent = False
            return
        self.ids.update(stored)
        now = time.time()
        for task_id in [i for i, until in self.ids.items() if until <= now]:
            del self.ids[task_id]

    async def add(self, task_ids: Iterable[str], persist: bool = True) -> list[str]:
        """Refuse these ids from now on here, and in the broker's store when persist."""
        ids = [str(i) for i in task_ids]
        until = time.time() + self.ttl_s
        for task_id in ids:
            self.ids[task_id] = until
        if persist and self.persistent and ids:
            try:
                await self.broker.store_revoked(ids, self.ttl_s)
            except Exception as exc:  # kept in memory at least
                logger.error("could not store revoked ids in the broker: %s", exc)
        return ids

    def start(self) -> None:
        if self.persistent and self._task is None:
            self._task = asyncio.create_task(self._reload_loop(), name="revoked-reload")

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_S)
            try:
                await self.load()
            except Exception as exc:
                logger.warning("reloading revoked ids failed: %s", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
