"""Redis result backend, byte-compatible with Celery's: both read each other's results.

URLs: the same forms as the Redis broker (``redis://``, ``rediss://``,
``redis+socket://``, ``sentinel://``; see ``celeriac.brokers.redis``). Options
(``result_backend_transport_options``): ``global_keyprefix``, socket and TLS options.

Layout and guarantees, as Celery's Redis backend:
- a result lives at ``celery-task-meta-<id>``: ``SETEX`` with the expiry, then
  ``PUBLISH`` of the same bytes on a channel named like the key;
- a stored SUCCESS is never overwritten: the check and the write are one Lua script;
- ``wait`` subscribes to the key's channel, and once Redis confirms the subscription
  GETs the key, so a result stored before the wait is seen and one stored after is
  pushed: no polling. One pub/sub connection per backend serves every waiter; after a
  reconnect each waiter GETs again (messages published meanwhile are not replayed);
- ``get_many`` is one MGET.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from celeriac import states
from celeriac.backends.base import Meta, ResultBackend, decode_meta, encode_meta
from celeriac.backends.redis.batch import ScriptBatcher
from celeriac.backends.redis.wait import BlockingResultWaiter
from celeriac.brokers.base import mask_url
from celeriac.brokers.redis.connection import RedisConnection, blocking_redis_client
from celeriac.errors import BackendStoreError

log = logging.getLogger(__name__)

KEY_PREFIX = "celery-task-meta-"
#: the largest result stored: Redis's default proto-max-bulk-len, Celery's limit too.
#: Refused here (BackendStoreError) rather than by the server, which drops the connection
MAX_VALUE_BYTES = 512 * 1024 * 1024

# Keep a stored SUCCESS. Celery and celeriac both write "status" first, so the anchored
# match settles it without parsing; anything else is decoded.
_STORE = """
local current = redis.call('GET', KEYS[1])
if current then
  local status = string.match(current, '^{%s*"status"%s*:%s*"([^"]*)"')
  if not status then
    local ok, doc = pcall(cjson.decode, current)
    if ok and type(doc) == 'table' then status = doc.status end
  end
  if status == 'SUCCESS' then return 0 end
end
if ARGV[2] == 'ex' then
  redis.call('SETEX', KEYS[1], ARGV[3], ARGV[1])
elseif ARGV[2] == 'px' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


@dataclass(eq=False)
class _Waiter:
    """One wait() call: woken with a pushed payload, or told to GET again."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    payloads: list[bytes] = field(default_factory=list)
    recheck: bool = False


class _Listener:
    """One pub/sub connection shared by every waiter of a backend.

    A reader task owns the reads; subscribe/unsubscribe only write. After any error the
    reader reconnects with backoff and resubscribes every live channel; each 'subscribe'
    confirmation (first or renewed) tells that channel's waiters to GET again.
    """

    def __init__(self, client: aioredis.Redis, url: str) -> None:
        pool: Any = client.connection_pool
        self._conn: Any = pool.make_connection()
        self._url = url
        self._waiters: dict[bytes, set[_Waiter]] = {}
        self._confirmed: set[bytes] = set()
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    async def _send(self, *args: Any) -> None:
        async with self._send_lock:
            await self._conn.send_packed_command(self._conn.pack_command(*args),
                                                 check_health=False)

    async def add(self, channel: bytes) -> _Waiter:
        waiter = _Waiter()
        waiters = self._waiters.setdefault(channel, set())
        waiters.add(waiter)
        if channel in self._confirmed:
            waiter.recheck = True
            waiter.event.set()
        elif len(waiters) == 1:
            await self._send("SUBSCRIBE", channel)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_forever())
        return waiter

    async def remove(self, channel: bytes, waiter: _Waiter) -> None:
        waiters = self._waiters.get(channel)
        if waiters is None:
            return
        waiters.discard(waiter)
        if not waiters:
            del self._waiters[channel]
            self._confirmed.discard(channel)
            # if the connection is gone, the reconnect resubscribes only live channels
            with contextlib.suppress(RedisError, OSError):
                await self._send("UNSUBSCRIBE", channel)

    async def _read_forever(self) -> None:
        pause, lost = 0.05, False
        while True:
            try:
                if lost or not self._conn.is_connected:
                    self._confirmed.clear()
                    if self._waiters:
                        await self._send("SUBSCRIBE", *self._waiters)
                    if lost:
                        lost, pause = False, 0.05
                        log.warning("result listener reconnected to %s", mask_url(self._url))
                reply = await self._conn.read_response(push_request=True)
            except Exception as exc:  # the reader must outlive any error
                if not lost:
                    log.warning("result listener lost Redis at %s (%s); reconnecting",
                                mask_url(self._url), exc)
                lost = True
                with contextlib.suppress(Exception):
                    await self._conn.disconnect()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            if isinstance(reply, list) and len(reply) == 3:
                self._dispatch(reply[0], reply[1], reply[2])

    def _dispatch(self, kind: bytes, channel: bytes, data: Any) -> None:
        waiters = self._waiters.get(channel)
        if not waiters:
            return
        if kind == b"subscribe":
            # first subscription or a resubscription after reconnect: GET to catch up
            self._confirmed.add(channel)
            for waiter in waiters:
                waiter.recheck = True
                waiter.event.set()
        elif kind == b"message":
            for waiter in waiters:
                waiter.payloads.append(data)
                waiter.event.set()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._conn.disconnect()


class RedisBackend(ResultBackend):
    """See the module docstring."""

    schemes = ("redis", "rediss", "redis+socket", "sentinel")

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.prefix = str(self.options.get("global_keyprefix", ""))
        self.redis = RedisConnection(url, self.options, "Redis result backend")
        #: stores (and chord joins) of many tasks in one round trip (redis_batch.py)
        self.scripts = ScriptBatcher(self.redis)
        self._listener: _Listener | None = None
        self._blocking: BlockingResultWaiter | None = None
        self._blocking_lock = threading.Lock()
        self.max_value_bytes = MAX_VALUE_BYTES

    def key(self, task_id: str) -> str:
        return f"{self.prefix}{KEY_PREFIX}{task_id}"

    async def connect(self) -> None:
        await self.redis.connect()

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        await self.redis.close()

    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        await self.scripts.eval(_STORE, [self.key(task_id)], self.store_args(meta, expires_s))

    def store_args(self, meta: Meta, expires_s: float | None) -> list[Any]:
        """``_STORE``'s ARGV (the encoded meta, expiry mode, ttl); EncodeError or
        BackendStoreError before anything is sent. The chord join's script that stores
        a header task's result with its part takes the same (celeriac.chords.redis)."""
        if expires_s is None:
            mode, ttl = "", 0
        elif float(expires_s).is_integer():
            mode, ttl = "ex", max(1, int(expires_s))  # SETEX, exactly as Celery
        else:
            mode, ttl = "px", max(1, round(expires_s * 1000))
        raw = encode_meta(meta, self.codec)
        if len(raw) > self.max_value_bytes:
            raise BackendStoreError(f"value too large for Redis backend: {len(raw):,} bytes "
                                    f"(the limit is {self.max_value_bytes:,})")
        return [raw, mode, ttl]

    async def get(self, task_id: str) -> Meta | None:
        [raw] = await self.redis.run(("GET", self.key(task_id)))
        return None if raw is None else decode_meta(raw, self.codec)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        if not task_ids:
            return {}
        [values] = await self.redis.run(("MGET", *[self.key(t) for t in task_ids]))
        return {t: decode_meta(v, self.codec) for t, v in zip(task_ids, values, strict=True)
                if v is not None}

    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if self._listener is None:
            self._listener = _Listener(self.redis.client, self.url)
        listener = self._listener
        channel = self.key(task_id).encode()
        waiter = await listener.add(channel)
        try:
            while True:
                waiter.event.clear()
                pushed, waiter.payloads = waiter.payloads, []
                for raw in pushed:
                    meta = decode_meta(raw, self.codec)
                    if meta.get("status") in states.READY_STATES:
                        return meta
                if waiter.recheck:
                    waiter.recheck = False
                    found = await self.get(task_id)
                    if found is not None and found.get("status") in states.READY_STATES:
                        return found
                if waiter.payloads or waiter.recheck:
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(waiter.event.wait(), remaining)
                except TimeoutError:
                    return None
        finally:
            await listener.remove(channel, waiter)

    def wait_blocking(self, task_id: str, timeout_s: float | None) -> Meta | None:
        """``wait`` for sync callers, in their own thread (celeriac.backends.redis.wait)."""
        waiter = self._blocking
        if waiter is None:
            with self._blocking_lock:
                waiter = self._blocking
                if waiter is None:
                    client = blocking_redis_client(self.url, self.options, protocol=3)
                    waiter = self._blocking = BlockingResultWaiter(client, self.url,
                                                                       self.codec)
        return waiter.wait(self.key(task_id), timeout_s)

    def close_blocking(self) -> None:
        if self._blocking is not None:
            self._blocking.close()

    async def forget(self, task_id: str) -> None:
        await self.redis.run(("DEL", self.key(task_id)))


__all__ = ["KEY_PREFIX", "RedisBackend"]
