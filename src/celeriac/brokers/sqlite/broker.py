"""Embedded broker on one SQLite file: durable, no server, several workers on one machine.

URLs (SQLAlchemy's convention): ``sqlite:////abs/path.db``, ``sqlite:///relative.db``,
and ``sqlite://`` alone for the app's default file (see ``celeriac.config.default_sqlite_path``).

How it keeps the contract, with one ``messages`` table in WAL mode:
- every message has ``available_at``: publish sets it to now, ``delay`` to the eta.
- ``fetch`` is one ``UPDATE ... RETURNING`` that claims the oldest available rows by
  pushing ``available_at`` to now + lease and counting the delivery. A claim is a
  lease: if the worker dies its rows become available again when the lease ends.
- a delivery's tag is ``(id, delivery_count)``, so an ack or extend from a worker whose
  lease already ran out (and whose row was taken again) changes nothing.
- ``ack`` deletes; ``requeue`` sets ``available_at`` to 0 (front of the line);
  ``dead_letter`` moves the row to ``dead_letters`` with the reason, in one transaction.
- priorities 0-9, higher first, FIFO within a priority.
Calls are short local transactions and run inline on the event loop; waiting for work
polls with a backoff capped at ``polling_interval`` (transport option, default 0.05 s).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

from celeriac.brokers.base import DeadLetter, Delivery, FanoutBroker
from celeriac.brokers.sqlite import files as sqlite_files
from celeriac.brokers.sqlite.fanout import SQLiteFanout
from celeriac.brokers.sqlite.transaction import Immediate
from celeriac.errors import BrokerConnectionError, ConfigurationError, DecodeError
from celeriac.protocol import DueBatch, Message, from_envelope, scheduled, to_envelope

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    available_at REAL NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    envelope BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_queue
    ON messages (queue, priority DESC, available_at, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL,
    envelope BLOB NOT NULL
);
"""


def sqlite_path(url: str) -> str:
    """``sqlite:////abs.db`` -> ``/abs.db``; ``sqlite:///rel.db`` -> ``rel.db``."""
    if not url.startswith("sqlite://"):
        raise ConfigurationError(f"not a sqlite URL: {url!r}")
    path = url[len("sqlite://"):]
    if not path:
        raise ConfigurationError(
            "sqlite:// needs a path here; the app fills in its default file before this"
        )
    path = path[1:] if path.startswith("/") else path
    return path.split("?", 1)[0]


def connect_sqlite(path: str, schema: str = "") -> sqlite3.Connection:
    """Open a WAL-mode connection shared by threads (callers hold their own lock), and
    run ``schema`` (the caller's CREATE ... IF NOT EXISTS script) on it. The default
    store's folder and files are made private first (``sqlite_files``)."""
    if path != ":memory:":
        try:
            sqlite_files.prepare(path)
        except OSError as exc:
            raise BrokerConnectionError(f"cannot prepare {path}: {exc}") from exc
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        _wal_mode(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise BrokerConnectionError(f"cannot open SQLite database {path}: {exc}") from exc
    if schema:
        conn.executescript(schema)
    return conn


def _wal_mode(conn: sqlite3.Connection, limit_s: float = 30.0) -> None:
    """Switch to WAL, retrying while another process holds the new file's lock: two
    workers opening one fresh file at once can get "database is locked" here at once,
    without SQLite's busy handler waiting (seen in CI with two workers started together)."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SQLiteBroker(FanoutBroker):
    """See the module docstring."""

    schemes = ("sqlite",)
    supports_priority = True
    supports_broadcast = True  # tables of its own: sqlite_fanout.py

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.path = sqlite_path(url)
        self.polling_interval_s = float(self.options.get("polling_interval", 0.05))
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.fanout = SQLiteFanout(self._db, self._lock, self.polling_interval_s)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_sqlite(self.path, _SCHEMA)
        return self._conn

    def _write(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        # BEGIN IMMEDIATE inline, here and in _claim, not Immediate: these are the hot
        # path (publish, fetch, ack, extend), where its calls cost ~3,900 instructions a
        # transaction, 3% of a publish/fetch/ack cycle of one message (callgrind)
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return cur.rowcount

    async def connect(self) -> None:
        with self._lock:
            self._db()

    async def close(self) -> None:
        self.close_blocking()

    def close_blocking(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- producing --------------------------------------------------------------------
    async def publish(self, messages: Sequence[Message]) -> None:
        self.publish_blocking(messages)

    async def delay(self, messages: Sequence[tuple[Message, float]]) -> None:
        self.delay_blocking(messages)

    def publish_blocking(self, messages: Sequence[Message]) -> None:
        """``publish`` from a sync caller's thread: a local transaction needs no loop."""
        self.delay_blocking(scheduled(messages, time.time()))

    def delay_blocking(self, messages: Sequence[tuple[Message, float]]) -> None:
        if isinstance(messages, DueBatch):  # a bulk send: its envelopes come spliced
            m, due = messages.batch.template, messages.due
            self._insert([(m.routing_key, m.priority, due, e)
                          for e in messages.batch.envelopes()])
        else:
            self._insert([(m.routing_key, m.priority, due, to_envelope(m))
                          for m, due in messages])

    def _insert(self, rows: list[tuple[str, int, float, bytes]]) -> None:
        self._write(
            "INSERT INTO messages (queue, priority, available_at, envelope) VALUES (?,?,?,?)",
            rows)

    def flush_blocking(self, timeout_s: float | None = None) -> None:
        """Nothing to wait for: each sync publish commits before it returns."""

    # -- consuming --------------------------------------------------------------------
    def _claim(self, queues: Sequence[str], max_count: int) -> list[tuple[Any, ...]]:
        now = time.time()
        marks = ",".join("?" * len(queues))
        sql = (
            "UPDATE messages SET available_at = ?, delivery_count = delivery_count + 1 "
            "WHERE id IN (SELECT id FROM messages WHERE queue IN (" + marks + ") "
            "AND available_at <= ? ORDER BY priority DESC, available_at, id LIMIT ?) "
            "RETURNING id, queue, delivery_count, envelope, priority"
        )
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(sql, (now + self.lease_s, *queues, now, max_count)).fetchall()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        rows.sort(key=lambda r: (-r[4], r[0]))  # RETURNING has no order of its own
        return rows

    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout_s: float
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        pause_s = 0.001
        while True:
            rows = self._claim(queues, max_count)
            if rows:
                return [self._delivery(row) for row in rows]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await asyncio.sleep(min(pause_s, remaining))
            pause_s = min(pause_s * 2, self.polling_interval_s)

    def _delivery(self, row: tuple[Any, ...]) -> Delivery:
        row_id, queue, count, envelope, _ = row
        try:
            message, error = from_envelope(envelope), None
        except DecodeError as exc:
            # A row we cannot parse still needs a tag so the worker can dead-letter it.
            message = Message(headers={}, body=bytes(envelope), routing_key=queue)
            error = str(exc)
        return Delivery(message, queue, (row_id, count), count > 1, error)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self._write("DELETE FROM messages WHERE id = ? AND delivery_count = ?",
                        [d.tag for d in deliveries])

    async def park(self, parked: Sequence[tuple[Delivery, float]]) -> None:
        """The row stays, its ``available_at`` set to the due time: one statement."""
        if parked:
            self._write(
                "UPDATE messages SET available_at = ? WHERE id = ? AND delivery_count = ?",
                [(due, *d.tag) for d, due in parked],
            )

    async def requeue(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self._write(
                "UPDATE messages SET available_at = 0 WHERE id = ? AND delivery_count = ?",
                [d.tag for d in deliveries],
            )

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            until = time.time() + self.lease_s
            self._write(
                "UPDATE messages SET available_at = ? WHERE id = ? AND delivery_count = ?",
                [(until, *d.tag) for d in deliveries],
            )

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        row_id, count = delivery.tag
        with self._lock, Immediate(self._db()) as db:
            db.execute(
                "INSERT INTO dead_letters (queue, reason, failed_at, envelope) "
                "SELECT queue, ?, ?, envelope FROM messages "
                "WHERE id = ? AND delivery_count = ?",
                (reason, time.time(), row_id, count),
            )
            db.execute("DELETE FROM messages WHERE id = ? AND delivery_count = ?",
                       (row_id, count))

    # -- administration ---------------------------------------------------------------
    async def purge(self, queues: Sequence[str]) -> int:
        # Only ready and delayed messages: in-flight rows belong to running tasks.
        now = time.time()
        marks = ",".join("?" * len(queues))
        with self._lock:
            cur = self._db().execute(
                f"DELETE FROM messages WHERE queue IN ({marks}) AND "
                "(available_at <= ? OR delivery_count = 0)", (*queues, now))
            return cur.rowcount

    async def queue_size(self, queue: str) -> int:
        with self._lock:
            row = self._db().execute(
                "SELECT COUNT(*) FROM messages WHERE queue = ? AND available_at <= ?",
                (queue, time.time()),
            ).fetchone()
        return int(row[0])

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            rows = self._db().execute(
                "SELECT id, queue, reason, failed_at, envelope FROM dead_letters "
                "ORDER BY id LIMIT ?", (limit,)).fetchall()
        letters = []
        for row_id, queue, reason, failed_at, envelope in rows:
            try:
                message = from_envelope(envelope)
            except DecodeError:
                message = Message(headers={}, body=bytes(envelope), routing_key=queue)
            letters.append(DeadLetter(str(row_id), queue, reason, failed_at, message))
        return letters

    async def requeue_dead(self, ids: Sequence[str] | None = None) -> int:
        where, params = ("", ()) if ids is None else (
            f" WHERE id IN ({','.join('?' * len(ids))})", tuple(int(i) for i in ids))
        with self._lock, Immediate(self._db()) as db:
            moved = db.execute(
                "INSERT INTO messages (queue, priority, available_at, envelope) "
                "SELECT queue, 0, ?, envelope FROM dead_letters" + where + " ORDER BY id",
                (time.time(), *params)).rowcount
            db.execute("DELETE FROM dead_letters" + where, params)
        return moved

    async def purge_dead(self) -> int:
        with self._lock:
            return self._db().execute("DELETE FROM dead_letters").rowcount
