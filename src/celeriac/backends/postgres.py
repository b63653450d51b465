"""Result backend in PostgreSQL, by Celery's SQLAlchemy URLs: ``db+postgresql://...``.

URLs: ``db+postgresql://user:password@host:5432/dbname`` (also ``db+postgres://`` and
``db+postgresql+psycopg://`` / ``+psycopg2``: the driver named there is ignored; celeriac
talks to PostgreSQL through psycopg 3, ``pip install "celeriac[postgres]"``).

Results live in celeriac's own table ``celeriac_results`` (task id, status, Celery's meta
as JSON, expiry), created on first connect; Celery's ``celery_taskmeta`` table is not
used (its rows hold pickles). A stored SUCCESS is never replaced (the upsert's WHERE).
``wait`` polls nothing: storing a READY state sends ``NOTIFY celeriac_results, '<task
id>'`` in the same statement, and each backend keeps one LISTEN connection whose
notifications wake the waiters of that id, who then read the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from celeriac import states
from celeriac.backends.base import Meta, ResultBackend, decode_meta, encode_meta
from celeriac.brokers.base import mask_url
from celeriac.errors import BrokerConnectionError

logger = logging.getLogger("celeriac.backends.postgres")

CHANNEL = "celeriac_results"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS celeriac_results (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    meta BYTEA NOT NULL,
    expires_at DOUBLE PRECISION
)
"""

# one statement: the upsert, and the notification only when a READY state was stored
_STORE = """
WITH stored AS (
    INSERT INTO celeriac_results (task_id, status, meta, expires_at) VALUES (%s, %s, %s, %s)
    ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, meta = excluded.meta,
        expires_at = excluded.expires_at
    WHERE celeriac_results.status <> 'SUCCESS'
    RETURNING task_id
)
SELECT pg_notify('celeriac_results', task_id) FROM stored WHERE %s
"""

_LIVE = "(expires_at IS NULL OR expires_at > %s)"


def conninfo(url: str) -> str:
    """``db+postgresql+psycopg://u:p@h/db`` -> ``postgresql://u:p@h/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("db+postgres"):
        raise ValueError(f"not a db+postgresql URL: {mask_url(url)!r}")
    return f"postgresql://{rest}"


class PostgresBackend(ResultBackend):
    """See the module docstring."""

    schemes = ("db+postgresql", "db+postgres", "db+postgresql+psycopg",
               "db+postgresql+psycopg2")

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self._conninfo = conninfo(url)
        self._connect_timeout_s = float(self.options.get("connect_timeout", 4.0))
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._writes = 0
        self._lock = asyncio.Lock()

    async def _open(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout_s)))
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc)
            raise BrokerConnectionError(
                f"cannot connect to the result backend {mask_url(self.url)}: {reason}"
            ) from None

    async def _db(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            async with self._lock:
                if self._conn is None or self._conn.closed:
                    conn = await self._open()
                    await conn.execute(_SCHEMA)
                    self._conn = conn
        return self._conn

    async def connect(self) -> None:
        await self._db()

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        now = time.time()
        expires_at = None if expires_s is None else now + expires_s
        status = meta.get("status")
        db = await self._db()
        await db.execute(_STORE, (task_id, status, encode_meta(meta, self.codec), expires_at,
                                  status in states.READY_STATES))
        self._writes += 1
        if self._writes % 1000 == 0:
            await db.execute("DELETE FROM celeriac_results WHERE expires_at <= %s", (now,))

    async def get(self, task_id: str) -> Meta | None:
        db = await self._db()
        cur = await db.execute(f"SELECT meta FROM celeriac_results WHERE task_id = %s "
                               f"AND {_LIVE}", (task_id, time.time()))
        row = await cur.fetchone()
        return None if row is None else decode_meta(bytes(row[0]), self.codec)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        if not task_ids:
            return {}
        db = await self._db()
        cur = await db.execute(f"SELECT task_id, meta FROM celeriac_results WHERE "
                               f"task_id = ANY(%s) AND {_LIVE}", (list(task_ids), time.time()))
        return {task_id: decode_meta(bytes(raw), self.codec)
                for task_id, raw in await cur.fetchall()}

    async def forget(self, task_id: str) -> None:
        db = await self._db()
        await db.execute("DELETE FROM celeriac_results WHERE task_id = %s", (task_id,))

    # -- waiting: LISTEN/NOTIFY ---------------------------------------------------------
    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        await self._ensure_listener()
        while True:
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(task_id, set()).add(woken)
            try:
                meta = await self.get(task_id)  # after LISTEN: a store now cannot be missed
                if meta is not None and meta.get("status") in states.READY_STATES:
                    return meta
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(woken, remaining)
                except TimeoutError:
                    return None
            finally:
                waiting = self._waiters.get(task_id)
                if waiting is not None:
                    waiting.discard(woken)
                    if not waiting:
                        del self._waiters[task_id]

    async def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listening.clear()
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        waiting = asyncio.ensure_future(self._listening.wait())
        done, _ = await asyncio.wait({waiting, self._listener},
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiting not in done:
            waiting.cancel()
            self._listener.result()  # raises why listening failed

    async def _listen(self) -> None:
        """One connection LISTENing; each notification wakes that task id's waiters.
        A lost connection wakes every waiter (they read again) and listens anew."""
        while True:
            conn = await self._open()
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                self._listening.set()
                self._wake_all()  # anything stored while we were not listening
                async for note in conn.notifies():
                    for woken in self._waiters.get(note.payload, ()):
                        if not woken.done():
                            woken.set_result(None)
            except psycopg.OperationalError as exc:
                logger.warning("result listener lost its connection (%s); reconnecting", exc)
                self._listening.clear()
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    def _wake_all(self) -> None:
        for waiting in self._waiters.values():
            for woken in waiting:
                if not woken.done():
                    woken.set_result(None)
