"""The beat store for the app's broker URL (see store.py for the contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from celeriac.beat.store import BeatStore
from celeriac.brokers.base import mask_url
from celeriac.errors import ConfigurationError

if TYPE_CHECKING:
    from celeriac.app import Celery


def create_store(app: Celery) -> BeatStore:
    url = app.broker_url
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        from celeriac.beat.store_memory import MemoryStore

        return MemoryStore(url)
    if scheme == "sqlite":
        from celeriac.beat.store_sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("redis", "rediss", "redis+socket", "sentinel"):
        from celeriac.beat.store_redis import RedisStore

        return RedisStore(url, app.broker_options())
    if scheme in ("amqp", "amqps", "pyamqp"):
        from celeriac.beat.store_amqp import AmqpStore

        lease_s = float(app.conf.seconds("beat_leader_timeout") or 5.0)
        return AmqpStore(url, app.broker_options(), lease_s)
    raise ConfigurationError(f"beat has no state store for {mask_url(url)}")
