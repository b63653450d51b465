"""The beat store in the SQLite broker's file: two tables, every change one
``BEGIN IMMEDIATE`` transaction (SQLite's write lock makes the compare-and-set atomic
across processes)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

from celeriac.beat.store import BeatStore, Claim
from celeriac.brokers.sqlite.broker import connect_sqlite, sqlite_path
from celeriac.brokers.sqlite.transaction import Immediate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS celeriac_beat_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_beat_leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    node TEXT NOT NULL,
    until REAL NOT NULL
);
"""


class SQLiteStore(BeatStore):
    """See the module docstring. The lease is timed by CLOCK_MONOTONIC, which every
    process on a (Linux) host shares: a SQLite file serves one host, and a wall-clock
    jump then neither hands the lease over early nor holds it for the jump's length."""

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_sqlite(self.path, _SCHEMA)
        return self._conn

    def _transaction(self, work: Any) -> Any:
        with self._lock, Immediate(self._db()) as db:
            return work(db)

    def lead(self, node: str, ttl_s: float) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            now = time.monotonic()
            row = db.execute("SELECT node, until FROM celeriac_beat_leader").fetchone()
            # a lease ending further ahead than one lease from now was not taken on this
            # boot's clock (monotonic time restarts at boot): it is stale
            if row is not None and row[0] != node and now < row[1] <= now + ttl_s + 1.0:
                return False
            db.execute("INSERT OR REPLACE INTO celeriac_beat_leader (id, node, until) "
                       "VALUES (1, ?, ?)", (node, now + ttl_s))
            return True

        return bool(self._transaction(work))

    def resign(self, node: str) -> None:
        self._transaction(lambda db: db.execute(
            "DELETE FROM celeriac_beat_leader WHERE node = ?", (node,)))

    def load(self, names: Sequence[str]) -> dict[str, str | None]:
        with self._lock:
            rows = dict(self._db().execute("SELECT name, value FROM celeriac_beat_state"))
        return {n: rows.get(n) for n in names}

    def claim(self, claims: Sequence[Claim]) -> list[bool]:
        def work(db: sqlite3.Connection) -> list[bool]:
            out = []
            for name, expected, new in claims:
                if expected is None:
                    cur = db.execute("INSERT OR IGNORE INTO celeriac_beat_state "
                                     "(name, value) VALUES (?, ?)", (name, new))
                else:
                    cur = db.execute("UPDATE celeriac_beat_state SET value = ? "
                                     "WHERE name = ? AND value = ?", (new, name, expected))
                out.append(cur.rowcount == 1)
            return out

        result: list[bool] = self._transaction(work)
        return result

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
