"""Result backend in a SQLite file (``sqlite:///path``), by default the broker's own file.
Celery's SQLAlchemy form ``db+sqlite:///path`` names the same thing.

One ``results`` table keyed by task id, WAL mode, safe for several processes. A stored
SUCCESS is never replaced (the UPSERT's WHERE clause). Expired rows are ignored on read
and deleted in passing on write. ``wait`` polls (backoff to 50 ms).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

from celeriac.backends.base import Meta, ResultBackend, decode_meta, encode_meta
from celeriac.backends.polling import poll_until_ready
from celeriac.brokers.sqlite.broker import connect_sqlite, sqlite_path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    meta BLOB NOT NULL,
    expires_at REAL
);
"""

_UPSERT = (
    "INSERT INTO results (task_id, status, meta, expires_at) VALUES (?,?,?,?) "
    "ON CONFLICT(task_id) DO UPDATE SET status=excluded.status, meta=excluded.meta, "
    "expires_at=excluded.expires_at WHERE results.status != 'SUCCESS'"
)


class SQLiteBackend(ResultBackend):
    """See the module docstring."""

    schemes = ("sqlite", "db+sqlite")

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.path = sqlite_path(url.removeprefix("db+"))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._writes = 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_sqlite(self.path, _SCHEMA)
        return self._conn

    async def connect(self) -> None:
        with self._lock:
            self._db()

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        now = time.time()
        expires_at = None if expires_s is None else now + expires_s
        with self._lock:
            db = self._db()
            db.execute(_UPSERT, (task_id, meta.get("status"), encode_meta(meta, self.codec),
                                 expires_at))
            self._writes += 1
            if self._writes % 1000 == 0:
                db.execute("DELETE FROM results WHERE expires_at <= ?", (now,))

    async def get(self, task_id: str) -> Meta | None:
        with self._lock:
            row = self._db().execute(
                "SELECT meta FROM results WHERE task_id = ? AND "
                "(expires_at IS NULL OR expires_at > ?)", (task_id, time.time())).fetchone()
        return None if row is None else decode_meta(row[0], self.codec)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        if not task_ids:
            return {}
        marks = ",".join("?" * len(task_ids))
        with self._lock:
            rows = self._db().execute(
                f"SELECT task_id, meta FROM results WHERE task_id IN ({marks}) AND "
                "(expires_at IS NULL OR expires_at > ?)", (*task_ids, time.time())).fetchall()
        return {task_id: decode_meta(raw, self.codec) for task_id, raw in rows}

    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        return await poll_until_ready(self.get, task_id, timeout_s)

    async def forget(self, task_id: str) -> None:
        with self._lock:
            self._db().execute("DELETE FROM results WHERE task_id = ?", (task_id,))
