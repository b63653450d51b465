"""Waiting for a Redis result from a sync caller's own thread.

Why: a sync ``get()`` that hands its wait to the bridge loop pays a thread wake-up to
start, the loop's SUBSCRIBE, confirmation and GET, and on the way back the loop's
wake-up of the waiting coroutine and a second thread wake-up: measured, about 0.15 ms
of a 0.6 ms ``delay().get()`` round trip. ``BlockingResultWaiter`` waits in the caller's
thread on a blocking connection of its own, speaking RESP3 (Redis 6 and later), where a
subscribed connection may still run commands: ``SUBSCRIBE`` and ``GET`` go out in one
write and Redis runs them back to back, so a result stored before the subscription is
in the GET's reply and one stored after is pushed. One round trip, no thread hop.

Connections: one per waiting thread at a time, kept for reuse (up to ``KEEP_IDLE``).
After a wait the connection's ``UNSUBSCRIBE`` is written but its confirmation not read:
the next wait on it skips pushes for other channels. A wait interrupted by an exception
closes its connection, so no half-read reply ever reaches the next one.

Failures: the first connection failing raises ``BrokerConnectionError`` (URL masked),
as the async backend's ``connect`` does; a connection lost later is re-opened with
backoff and the wait starts over (SUBSCRIBE + GET again), until its timeout. A server
that does not speak RESP3 raises ``BlockingWaitUnsupported`` once: the app then waits
through the bridge loop, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from redis.exceptions import ResponseError

from celeriac import states
from celeriac.backends.base import BlockingWaitUnsupported, Meta, decode_meta
from celeriac.backends.codec import JSON_CODEC, ResultCodec
from celeriac.brokers.base import mask_url
from celeriac.brokers.redis.connection import RETRYABLE
from celeriac.errors import BrokerConnectionError

log = logging.getLogger("celeriac.backends.redis")

#: connections kept open between waits
KEEP_IDLE = 8

_MESSAGE = b"message"


class BlockingResultWaiter:
    """Thread-safe blocking waits for results; see the module docstring."""

    def __init__(self, client: Any, url: str, codec: ResultCodec = JSON_CODEC) -> None:
        self._codec = codec
        self._pool = client.connection_pool  # a RESP3 client's pool: makes connections
        self._url = url
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._reached = False  # a connection has been opened once
        self._lost_logged = False

    def wait(self, key: str, timeout_s: float | None) -> Meta | None:
        """The READY meta stored or published under ``key``; None after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        channel = key.encode()
        pause = 0.05
        while True:
            try:
                conn = self._take()
                try:
                    meta = self._wait_on(conn, channel, deadline)
                except BaseException:
                    conn.disconnect()  # a reply may be half read: never reuse this one
                    raise
            except RETRYABLE as exc:
                self._note_loss(exc)
                if deadline is not None and time.monotonic() + pause > deadline:
                    return None
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            self._give_back(conn)
            return meta

    def _wait_on(self, conn: Any, channel: bytes, deadline: float | None) -> Meta | None:
        """One attempt on one connection: the READY meta, or None at the deadline."""
        conn.send_packed_command(conn.pack_commands([("SUBSCRIBE", channel),
                                                     ("GET", channel)]),
                                 check_health=False)
        replied = False  # the GET's reply read (it precedes any push for our channel)
        found: Meta | None = None
        while found is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and (remaining <= 0 or not conn.can_read(remaining)):
                if not replied:
                    conn.disconnect()  # the GET's reply is still to come: drop the line
                    return None
                break
            reply = conn.read_response(push_request=True)
            if isinstance(reply, list):  # a push: confirmations, messages
                if len(reply) == 3 and reply[0] == _MESSAGE and reply[1] == channel:
                    found = _ready(reply[2], self._codec)
            elif not replied:
                replied = True
                if self._lost_logged:
                    log.warning("result waits reconnected to Redis at %s",
                                mask_url(self._url))
                    self._lost_logged = False
                if reply is not None:
                    found = _ready(reply, self._codec)
        conn.send_packed_command(conn.pack_command("UNSUBSCRIBE", channel),
                                 check_health=False)
        return found

    def _take(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = self._pool.make_connection()
        try:
            conn.connect()
        except ResponseError as exc:  # HELLO 3 refused: an old server
            conn.disconnect()
            raise BlockingWaitUnsupported(str(exc)) from exc
        except RETRYABLE as exc:
            conn.disconnect()
            if not self._reached:
                raise BrokerConnectionError(
                    f"cannot reach the Redis result backend at {mask_url(self._url)}: "
                    f"{exc}") from exc
            raise
        self._reached = True
        return conn

    def _give_back(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < KEEP_IDLE:
                self._idle.append(conn)
                return
        conn.disconnect()

    def _note_loss(self, exc: BaseException) -> None:
        if not self._lost_logged:
            log.warning("result waits lost Redis at %s (%s); reconnecting",
                        mask_url(self._url), exc)
            self._lost_logged = True

    def close(self) -> None:
        """Close the idle connections (a later wait opens new ones)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()


def _ready(raw: bytes, codec: ResultCodec) -> Meta | None:
    meta = decode_meta(raw, codec)
    return meta if meta.get("status") in states.READY_STATES else None
