"""The chord join of the SQLite result backend: a part, the completion check and the
claim in one ``BEGIN IMMEDIATE`` transaction, so workers in several processes sharing
the file count each part once and claim the body once. A claim expires
(``claim_until``), so a worker that died holding it is taken over (see chords/base.py);
``chord_sends`` remembers the claim token each body task id was first sent under.

Every row carries ``expires_at`` (``result_chord_expires``, else ``result_expires``, as
Redis's keys carry a TTL); every ``SWEEP_EVERY`` parts stored, one transaction deletes
the rows of every table that have expired, so the file does not grow with each chord."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from celeriac.brokers.sqlite.transaction import Immediate
from celeriac.chords.base import HELD, NO_SIZE, ChordJoin, Claim, Held, NoSize, member
from celeriac.serialization import json_dumps, json_loads

if TYPE_CHECKING:
    import sqlite3

    from celeriac.backends.sqlite import SQLiteBackend

T = TypeVar("T")

#: parts stored between two sweeps of expired rows
SWEEP_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chord_joins (
    group_id TEXT PRIMARY KEY, size INTEGER, claim TEXT, done INTEGER NOT NULL DEFAULT 0,
    expires_at REAL, claim_until REAL);
CREATE TABLE IF NOT EXISTS chord_sends (
    group_id TEXT NOT NULL, task_id TEXT NOT NULL, token TEXT NOT NULL, expires_at REAL,
    PRIMARY KEY (group_id, task_id));
CREATE TABLE IF NOT EXISTS chord_parts (
    group_id TEXT NOT NULL, member TEXT NOT NULL, score REAL NOT NULL, part BLOB NOT NULL,
    PRIMARY KEY (group_id, member));
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY, meta BLOB NOT NULL, expires_at REAL);
"""


class SQLiteChordJoin(ChordJoin):
    """See the module docstring."""

    def __init__(self, backend: SQLiteBackend, chord_expires_s: float | None,
                 result_expires_s: float | None, claim_expires_s: int) -> None:
        super().__init__(chord_expires_s, result_expires_s, claim_expires_s)
        self.backend = backend
        self._ready = False
        self._parts = 0

    def _db(self) -> sqlite3.Connection:
        db = self.backend._db()
        if not self._ready:
            db.executescript(_SCHEMA)
            self._ready = True
        return db

    def _expiry(self) -> float | None:
        return time.time() + self.chord_expires_s if self.chord_expires_s else None

    async def set_size(self, group_id: str, size: int) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            if self._group_exists(db, group_id):
                return False
            db.execute(
                "INSERT INTO chord_joins (group_id, size, expires_at) VALUES (?,?,?) "
                "ON CONFLICT(group_id) DO UPDATE SET size=excluded.size, claim=NULL, "
                "claim_until=NULL, done=0, expires_at=excluded.expires_at",
                (group_id, size, self._expiry()))
            return True

        return self._transaction(run)

    async def size_known(self, group_id: str) -> bool:
        with self.backend._lock:
            row = self._db().execute("SELECT size, done FROM chord_joins WHERE group_id = ?",
                                     (group_id,)).fetchone()
        return row is not None and (row[0] is not None or bool(row[1]))

    async def group_exists(self, group_id: str) -> bool:
        with self.backend._lock:
            return self._group_exists(self._db(), group_id)

    @staticmethod
    def _group_exists(db: sqlite3.Connection, group_id: str) -> bool:
        return db.execute("SELECT 1 FROM groups WHERE group_id = ? AND (expires_at IS NULL "
                          "OR expires_at > ?)", (group_id, time.time())).fetchone() is not None

    async def add_to_chord(self, group_id: str) -> None:
        with self.backend._lock:
            self._db().execute("UPDATE chord_joins SET size = size + 1 WHERE group_id = ?",
                               (group_id,))

    async def add_part(self, group_id: str, task_id: str, group_index: int | None,
                       state: str, result: Any) -> Claim | Held | NoSize | None:
        score = float("inf") if group_index is None else float(group_index)
        part = json_dumps([1, task_id, state, result])
        out = self._transaction(lambda db: self._add_part(
            db, group_id, member(task_id, group_index), score, part))
        self._parts += 1
        if self._parts % SWEEP_EVERY == 0:
            self.sweep()
        return out

    def sweep(self, now: float | None = None) -> int:
        """Delete the expired rows of every chord table (a join's parts go with it);
        returns how many rows went."""
        at = time.time() if now is None else now

        def run(db: sqlite3.Connection) -> int:
            gone = db.execute(
                "DELETE FROM chord_parts WHERE group_id IN (SELECT group_id FROM "
                "chord_joins WHERE expires_at <= ?)", (at,)).rowcount
            for table in ("chord_joins", "chord_sends", "groups"):
                gone += db.execute(f"DELETE FROM {table} WHERE expires_at <= ?",
                                   (at,)).rowcount
            return gone

        return self._transaction(run)

    async def reclaim(self, group_id: str) -> Claim | Held | None:
        return self._transaction(lambda db: self._try_claim(db, group_id))

    async def accept(self, group_id: str, task_id: str, token: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            db.execute("INSERT OR IGNORE INTO chord_sends (group_id, task_id, token, "
                       "expires_at) VALUES (?,?,?,?)",
                       (group_id, task_id, token, self._expiry()))
            [first] = db.execute("SELECT token FROM chord_sends WHERE group_id = ? AND "
                                 "task_id = ?", (group_id, task_id)).fetchone()
            return bool(first == token)

        return self._transaction(run)

    async def confirm(self, group_id: str, claim: Claim, publish_s: float) -> bool:
        until = time.time() + max(self.claim_expires_s, publish_s + 1)
        with self.backend._lock:
            cursor = self._db().execute(
                "UPDATE chord_joins SET claim_until = ? WHERE group_id = ? AND claim = ? "
                "AND done = 0", (until, group_id, claim.token))
            return cursor.rowcount == 1

    def _transaction(self, step: Callable[[sqlite3.Connection], T]) -> T:
        with self.backend._lock, Immediate(self._db()) as db:
            return step(db)

    def _add_part(self, db: sqlite3.Connection, group_id: str, key: str, score: float,
                  part: bytes) -> Claim | Held | NoSize | None:
        row = db.execute("SELECT done, size FROM chord_joins WHERE group_id = ?",
                         (group_id,)).fetchone()
        if row is not None and row[0]:
            return None
        db.execute("INSERT OR IGNORE INTO chord_parts (group_id, member, score, part) "
                   "VALUES (?,?,?,?)", (group_id, key, score, part))
        if row is None or row[1] is None:
            return NO_SIZE
        return self._try_claim(db, group_id)

    def _try_claim(self, db: sqlite3.Connection, group_id: str) -> Claim | Held | None:
        """Claim the body if the header is complete and the claim free (or expired)."""
        row = db.execute("SELECT size, claim, done, claim_until FROM chord_joins "
                         "WHERE group_id = ?", (group_id,)).fetchone()
        if row is None or row[0] is None or row[2]:
            return None
        [ready] = db.execute("SELECT COUNT(*) FROM chord_parts WHERE group_id = ?",
                             (group_id,)).fetchone()
        if ready != row[0]:
            return None
        now = time.time()
        if row[1] is not None and (row[3] or 0) > now:
            return HELD
        token = uuid.uuid4().hex
        db.execute("UPDATE chord_joins SET claim = ?, claim_until = ? WHERE group_id = ?",
                   (token, now + self.claim_expires_s, group_id))
        rows = db.execute("SELECT part FROM chord_parts WHERE group_id = ? ORDER BY score",
                          (group_id,)).fetchall()
        parts = []
        for (raw,) in rows:
            _, tid, state, result = json_loads(raw)
            parts.append((str(tid), str(state), result))
        return Claim(token, parts)

    async def done(self, group_id: str, claim: Claim) -> None:
        with self.backend._lock, Immediate(self._db()) as db:
            cursor = db.execute("UPDATE chord_joins SET done = 1, size = NULL "
                                "WHERE group_id = ? AND claim = ?", (group_id, claim.token))
            if cursor.rowcount:  # not a holder whose claim was taken over
                db.execute("DELETE FROM chord_parts WHERE group_id = ?", (group_id,))

    async def failed(self, group_id: str, claim: Claim) -> None:
        await self.done(group_id, claim)

    async def save_group(self, group_id: str, encoded: bytes) -> None:
        expires = self.group_expires_s or self.chord_expires_s
        with self.backend._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO groups (group_id, meta, expires_at) VALUES (?,?,?)",
                (group_id, encoded, time.time() + expires if expires else None))

    async def restore_group(self, group_id: str) -> bytes | None:
        with self.backend._lock:
            row = self._db().execute(
                "SELECT meta FROM groups WHERE group_id = ? AND "
                "(expires_at IS NULL OR expires_at > ?)", (group_id, time.time())).fetchone()
        return None if row is None else bytes(row[0])

    async def delete_group(self, group_id: str) -> None:
        with self.backend._lock:
            self._db().execute("DELETE FROM groups WHERE group_id = ?", (group_id,))
