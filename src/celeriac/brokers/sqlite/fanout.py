"""Broadcast on SQLite: three small tables in the broker's file (no Celery to match).

- ``broadcasts``: one row per broadcast (exchange, routing key, envelope); a subscriber
  remembers the highest id when it subscribes and polls for newer rows of its exchange
  (``polling_interval``), filtering topic bindings itself. Rows older than
  ``BROADCAST_KEEP_S`` are deleted by the next broadcast.
- ``mailbox``: direct messages by (exchange, routing key); the mailbox's reader takes
  its rows with one ``DELETE ... RETURNING``. Its binding lives in ``mailbox_bindings``
  so a message for a key nobody reads is dropped, as on the other brokers.
- ``revoked``: task id -> when it is forgotten.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from celeriac.brokers.base import Exchange, Subscription, topic_match
from celeriac.protocol import Message, from_envelope, to_envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS broadcasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    sent_at REAL NOT NULL,
    envelope BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS broadcasts_by_exchange ON broadcasts (exchange, id);
CREATE TABLE IF NOT EXISTS mailbox_bindings (
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    PRIMARY KEY (exchange, routing_key)
);
CREATE TABLE IF NOT EXISTS mailbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    envelope BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked (
    task_id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""
#: how long a broadcast row stays for slow pollers
BROADCAST_KEEP_S = 60.0

DB = Callable[[], sqlite3.Connection]


class SQLiteFanout:
    """Broadcast, mailboxes and revoked ids on the broker's connection and lock."""

    def __init__(self, db: DB, lock: threading.Lock, polling_interval_s: float) -> None:
        self._db, self._lock = db, lock
        self.polling_interval_s = polling_interval_s
        self._ready = False

    def run(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            db = self._db()
            if not self._ready:
                db.executescript(SCHEMA)
                self._ready = True
            return db.execute(sql, args).fetchall()

    async def broadcast(self, exchange: Exchange, message: Message) -> None:
        now = time.time()
        routed = Message(message.headers, message.body, message.properties,
                         message.content_type, message.content_encoding, exchange.name,
                         message.routing_key)
        self.run("DELETE FROM broadcasts WHERE sent_at < ?", (now - BROADCAST_KEEP_S,))
        self.run("INSERT INTO broadcasts (exchange, routing_key, sent_at, envelope) "
                 "VALUES (?, ?, ?, ?)",
                 (exchange.name, message.routing_key, now, to_envelope(routed)))

    async def subscribe(self, exchange: Exchange, queue: str, binding: str) -> Subscription:
        """Poll broadcasts newer than now (``queue`` unused: every row is shared)."""
        [(last,)] = self.run("SELECT COALESCE(MAX(id), 0) FROM broadcasts")
        pattern = None if exchange.kind == "fanout" else binding
        return _Poller(self, exchange.name, pattern, int(last))

    async def send_direct(self, exchange: str, routing_key: str, message: Message) -> None:
        routed = Message(message.headers, message.body, message.properties,
                         message.content_type, message.content_encoding, exchange,
                         routing_key)
        self.run("INSERT INTO mailbox (exchange, routing_key, envelope) SELECT ?, ?, ? "
                 "WHERE EXISTS (SELECT 1 FROM mailbox_bindings WHERE exchange = ? "
                 "AND routing_key = ?)",
                 (exchange, routing_key, to_envelope(routed), exchange, routing_key))

    async def open_mailbox(self, exchange: str, routing_key: str, queue: str
                           ) -> Subscription:
        """Bind (exchange, routing key) and read it (``queue`` unused: the pair is the key)."""
        self.run("INSERT OR IGNORE INTO mailbox_bindings VALUES (?, ?)", (exchange, routing_key))
        return _Mailbox(self, exchange, routing_key)

    async def store_revoked(self, ids: Sequence[str], ttl_s: float) -> None:
        until = time.time() + ttl_s
        for task_id in ids:
            self.run("INSERT INTO revoked VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE "
                     "SET expires_at = MAX(expires_at, excluded.expires_at)", (task_id, until))

    async def load_revoked(self) -> dict[str, float]:
        self.run("DELETE FROM revoked WHERE expires_at <= ?", (time.time(),))
        return {str(k): float(v) for k, v in self.run("SELECT task_id, expires_at FROM revoked")}


class _Poller(Subscription):
    def __init__(self, fanout: SQLiteFanout, exchange: str, pattern: str | None,
                 last: int) -> None:
        self.fanout, self.exchange, self.pattern, self.last = fanout, exchange, pattern, last
        self._closed = False

    def _poll(self) -> list[Message]:
        rows = self.fanout.run("SELECT id, routing_key, envelope FROM broadcasts "
                               "WHERE exchange = ? AND id > ? ORDER BY id",
                               (self.exchange, self.last))
        got = []
        for row_id, routing_key, envelope in rows:
            self.last = max(self.last, int(row_id))
            if self.pattern is None or topic_match(self.pattern, routing_key):
                got.append(from_envelope(envelope))
        return got

    async def get(self, timeout_s: float) -> list[Message]:
        return await _poll_until(self._poll, timeout_s, self.fanout.polling_interval_s,
                                 lambda: self._closed)

    async def close(self) -> None:
        self._closed = True


class _Mailbox(Subscription):
    def __init__(self, fanout: SQLiteFanout, exchange: str, routing_key: str) -> None:
        self.fanout, self.exchange, self.routing_key = fanout, exchange, routing_key
        self._closed = False

    def _take(self) -> list[Message]:
        rows = self.fanout.run("DELETE FROM mailbox WHERE exchange = ? AND routing_key = ? "
                               "RETURNING id, envelope", (self.exchange, self.routing_key))
        return [from_envelope(envelope) for _, envelope in sorted(rows)]

    async def get(self, timeout_s: float) -> list[Message]:
        return await _poll_until(self._take, timeout_s, self.fanout.polling_interval_s,
                                 lambda: self._closed)

    async def close(self) -> None:
        self._closed = True
        self.fanout.run("DELETE FROM mailbox_bindings WHERE exchange = ? AND routing_key = ?",
                        (self.exchange, self.routing_key))
        self._take()


async def _poll_until(poll: Callable[[], list[Message]], timeout_s: float,
                      interval_s: float, closed: Callable[[], bool]) -> list[Message]:
    deadline = time.monotonic() + timeout_s
    while not closed():
        got = poll()
        if got:
            return got
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(left, max(interval_s, 0.05)))
    return []
