"""Publishing to Redis from a sync caller's own thread, with a reply window.

Why: a sync ``.delay()`` that hands its publish to the bridge loop pays two thread
wake-ups, and one that waits for Redis's reply pays a round trip (about 80 us on this
kind of machine, where a bare LPUSH loop tops out near 12,000/s). ``BlockingPublisher``
keeps one blocking connection of its own (no event loop, no thread hop) and lets up to
``window`` replies be outstanding: ``publish`` returns once the command is written, and
the replies are read as they arrive on later calls. Each publish is one EVALSHA of
publish.lua (atomic: the messages and their wake tokens), so one reply settles it.

The rule that holds, as on RabbitMQ: a publish that Redis did not take raises, never
passes silently. Each ``publish`` first reads, without blocking, the replies that have
arrived; an error reply (out of memory, a key of the wrong type, ...) for an earlier
message raises ``UnconfirmedPublish`` (naming the task ids) from the next ``publish``
(which then sends nothing), from ``flush``, or at interpreter exit, where ``flush`` runs
and a failure is logged at ERROR and re-raised. A connection lost before the replies
came reconnects (backoff, up to ``retry_timeout``) and re-sends every unanswered
publish (at-least-once: one whose reply was lost may be stored twice); if it cannot
reconnect in time the call raises ``BrokerConnectionError`` naming them. A script cache
flushed under us (NOSCRIPT) is handled the same way: reconnect, load, re-send.
``window=0`` makes every call wait for its own reply.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from celeriac import publish_retry
from celeriac.brokers.base import mask_url
from celeriac.brokers.publish_window import flush_at_exit, refused
from celeriac.errors import BrokerConnectionError

log = logging.getLogger("celeriac.brokers.redis")

#: unanswered publishes allowed before ``publish`` waits for replies
DEFAULT_WINDOW = 5000

_pack: Any
try:
    from hiredis import pack_command as _pack
except ImportError:  # redis without the hiredis extra
    _pack = None


class BlockingPublisher:
    """Thread-safe pipelined publishing on a blocking connection; see the module docstring."""

    def __init__(self, client: Any, script_source: str, url: str, retry_timeout_s: float,
                 window: int = DEFAULT_WINDOW, retryable: tuple[type[BaseException], ...] = ()
                 ) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._source = script_source
        self._sha = hashlib.sha1(script_source.encode()).hexdigest()
        self._url = url
        self.retry_timeout_s = retry_timeout_s
        self.window = max(0, window)
        self._retryable: tuple[type[BaseException], ...] = (*retryable, NoScriptError)
        self._conn: Any = None
        self._lock = threading.RLock()
        #: written publishes without a reply yet, oldest first: (command, task ids)
        self._pending: deque[tuple[list[bytes], list[str]]] = deque()
        self._failed: list[tuple[list[str], str]] = []
        self._lost_logged = False
        self._pid = os.getpid()
        atexit.register(self._at_exit)

    # -- public ---------------------------------------------------------------------------
    def publish(self, keys: Sequence[str], args: Sequence[Any], task_ids: list[str]) -> None:
        """Write one run of publish.lua; raise what earlier ones failed with; wait only
        when the window is full."""
        command = self._packed(("EVALSHA", self._sha, len(keys), *keys, *args))
        with self._lock:
            self._raise_failed()
            deadline = publish_retry.deadline(self.retry_timeout_s)  # the send's policy
            written = False
            while True:
                unsent = [] if written else task_ids
                conn = self._ready(deadline, unsent)  # a reconnect re-sends the unanswered
                try:
                    if not written:
                        self._read(conn, block=False)  # replies that came meanwhile
                        self._raise_failed()
                        self._pending.append((command, task_ids))  # before the write: a
                        written = True  # failed write is re-sent after the reconnect
                        conn.send_packed_command(command, check_health=False)
                    while len(self._pending) > self.window:
                        self._read(conn, block=True)
                    break
                except self._retryable as exc:
                    self._drop(exc, deadline, [] if written else task_ids)
            self._raise_failed(sent=True)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until Redis answered every publish written; raise what it refused."""
        with self._lock:
            deadline = time.monotonic() + (self.retry_timeout_s if timeout_s is None
                                           else timeout_s)
            while self._pending:
                conn = self._ready(deadline, [])
                try:
                    self._read(conn, block=True)
                except self._retryable as exc:
                    self._drop(exc, deadline, [])
            self._raise_failed()

    @property
    def unconfirmed(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        with self._lock:
            self._disconnect()
            self._client.close()

    # -- internals ------------------------------------------------------------------------
    @staticmethod
    def _packed(command: tuple[Any, ...]) -> list[bytes]:
        """RESP for one command, as redis-py's ``send_packed_command`` takes it."""
        if _pack is not None:
            try:
                return [_pack(command)]
            except TypeError:  # an argument type hiredis does not pack
                pass
        return [_resp(command)]

    def _ready(self, deadline: float, unsent: list[str]) -> Any:
        """The open connection; (re)connects, loads the script and re-sends every
        unanswered publish if needed."""
        if self._conn is not None:
            return self._conn
        pause = 0.05
        while True:
            try:
                conn = self._pool.get_connection()
                try:
                    conn.send_command("SCRIPT", "LOAD", self._source, check_health=False)
                    conn.read_response()
                    for command, _ in self._pending:
                        conn.send_packed_command(command, check_health=False)
                except BaseException:
                    conn.disconnect()
                    self._pool.release(conn)
                    raise
                break
            except self._retryable as exc:
                self._note_loss(exc)
                if time.monotonic() + pause > deadline:
                    self._give_up(exc, unsent)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        if self._lost_logged:
            log.warning("reconnected to Redis at %s", mask_url(self._url))
            self._lost_logged = False
        self._conn = conn
        return conn

    def _read(self, conn: Any, block: bool) -> None:
        """Settle the oldest publish (block), or every one already answered (not block)."""
        pending = self._pending
        while pending and (block or conn.can_read(timeout=0)):
            try:
                conn.read_response()
            except NoScriptError:
                raise  # the script cache was flushed: reconnect, load, re-send
            except ResponseError as exc:  # a reply was read: the line stays in step
                self._failed.append((pending.popleft()[1], str(exc)))
            else:
                pending.popleft()
            if block:
                return

    def _drop(self, exc: BaseException, deadline: float, unsent: list[str]) -> None:
        """Forget a broken connection; the next _ready reconnects (or gives up)."""
        self._disconnect()
        self._note_loss(exc)
        if time.monotonic() > deadline:
            self._give_up(exc, unsent)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()
            self._pool.release(conn)

    def _note_loss(self, exc: BaseException) -> None:
        if not self._lost_logged and not isinstance(exc, NoScriptError):
            log.warning("lost the connection to Redis at %s (%s); reconnecting",
                        mask_url(self._url), exc)
            self._lost_logged = True

    def _give_up(self, exc: BaseException, unsent: list[str]) -> None:
        lost = [task_id for _, ids in self._pending for task_id in ids]
        self._pending.clear()
        text = f"Redis at {mask_url(self._url)} unreachable: {exc} (gave up reconnecting)"
        if unsent:
            text += f"; this call sent nothing (task ids {', '.join(unsent[:10])})"
        if lost:
            text += (f"; {len(lost)} earlier message(s) unanswered, may be lost "
                     f"(task ids {', '.join(lost[:10])})")
        raise BrokerConnectionError(text) from exc

    def _raise_failed(self, sent: bool = False) -> None:
        if self._failed:
            failed, self._failed = self._failed, []
            raise refused("Redis", failed, sent)

    def _at_exit(self) -> None:
        flush_at_exit(self.flush, bool(self._pending or self._failed), self._pid, "Redis")


def _resp(command: tuple[Any, ...]) -> bytes:
    """RESP without hiredis: bytes as they are, str as UTF-8, numbers by repr."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else (
            arg.encode() if isinstance(arg, str) else repr(arg).encode())
        parts += [b"$%d\r\n" % len(data), data, b"\r\n"]
    return b"".join(parts)
