"""Redis connections for the broker and the result backend: URLs, clients, lanes, retries.

URL forms and options are described in ``celeriac.brokers.redis``. ``RedisConnection``
owns one URL's client and its lanes (a connection of our own per kind of work, so a
blocking BLPOP never waits behind an ack), retries lost connections with backoff up to
``retry_timeout``, and logs a loss once and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis import Redis as SyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry
from redis.sentinel import Sentinel as SyncSentinel

from celeriac import publish_retry
from celeriac.brokers.base import mask_url
from celeriac.errors import BrokerConnectionError, ConfigurationError

_hiredis_pack: Any
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis without the hiredis extra
    _hiredis_pack = None

log = logging.getLogger("celeriac.brokers.redis")
T = TypeVar("T")

#: lost-connection errors worth retrying (BusyLoadingError is a ConnectionError)
RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)

#: the broker's default ``socket_timeout``: longer than any blocking read it makes
DEFAULT_SOCKET_TIMEOUT_S = 10.0


def _client_kwargs(options: dict[str, Any], protocol: int = 2,
                   blocking: bool = False) -> dict[str, Any]:
    """Keyword arguments for a client of either kind. Each gets its own kind of ``Retry``:
    redis-py 8.2 warns (UserWarning) when an asyncio client is handed the blocking one."""
    retry_cls = SyncRetry if blocking else AsyncRetry
    kwargs: dict[str, Any] = {
        # the broker's connect_timeout is broker_connection_timeout (Celery.broker_options)
        "socket_connect_timeout": float(options.get("socket_connect_timeout",
                                                    options.get("connect_timeout", 5.0))),
        "socket_timeout": options.get("socket_timeout"),
        "socket_keepalive": bool(options.get("socket_keepalive", True)),
        # celeriac retries itself (with backoff, logging the loss once)
        "retry": retry_cls(NoBackoff(), 0),
        "max_connections": int(options.get("max_connections", 64)),
        "client_name": options.get("client_name"),
        # RESP2 as kombu: the same reply shapes on every redis-py version (RESP3 only
        # for blocking result waits: celeriac.backends.redis.wait)
        "protocol": protocol,
    }
    return kwargs


def _ssl_kwargs(query: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    ssl = {k: v for k, v in query.items() if k.startswith("ssl_")}
    ssl.update(options.get("ssl") or {})
    reqs = ssl.get("ssl_cert_reqs")
    if isinstance(reqs, str) and reqs.upper().startswith("CERT_"):
        ssl["ssl_cert_reqs"] = reqs[5:].lower()  # Celery's CERT_REQUIRED -> required
    return ssl


def redis_client(url: str, options: dict[str, Any] | None = None) -> aioredis.Redis:
    """A redis.asyncio client for any URL form in the module docstring (not connected)."""
    options = dict(options or {})
    client: aioredis.Redis
    if url.split("://", 1)[0].lower() == "sentinel":
        client = _sentinel_client(url, options, _client_kwargs(options))
    else:
        client = _direct_client(url, options, aioredis.Redis)
    return client


def blocking_redis_client(url: str, options: dict[str, Any] | None = None,
                          protocol: int = 2) -> Any:
    """A blocking ``redis.Redis`` for the same URL and options (not connected), for
    sync callers' publishes (celeriac.brokers.redis.blocking) and result waits."""
    options = dict(options or {})
    if url.split("://", 1)[0].lower() == "sentinel":
        return _sentinel_client(url, options,
                                _client_kwargs(options, protocol, blocking=True), SyncSentinel)
    return _direct_client(url, options, SyncRedis, protocol, blocking=True)


def _direct_client(url: str, options: dict[str, Any], client_cls: Any,
                   protocol: int = 2, blocking: bool = False) -> Any:
    scheme = url.split("://", 1)[0].lower()
    kwargs = _client_kwargs(options, protocol, blocking)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    if scheme == "redis+socket":
        db = query.get("virtual_host") or query.get("db") or "0"
        kwargs.update(unix_socket_path=parts.path)
    elif scheme in ("redis", "rediss"):
        db = (parts.path or "/").strip("/") or query.get("virtual_host") or "0"
        kwargs.update(host=parts.hostname or "127.0.0.1", port=parts.port or 6379)
        if scheme == "rediss":
            kwargs.update(ssl=True, **_ssl_kwargs(query, options))
    else:
        raise ConfigurationError(f"not a Redis URL: {mask_url(url)!r}")
    try:
        return client_cls(db=int(db), username=username, password=password, **kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {mask_url(url)!r}: {exc}") from exc


def _sentinel_client(
    url: str, options: dict[str, Any], kwargs: dict[str, Any], sentinel_cls: Any = Sentinel
) -> Any:
    master = options.get("master_name")
    if not master:
        raise ConfigurationError(
            f"{mask_url(url)}: sentinel:// needs the 'master_name' transport option")
    hosts, password, username, db = [], None, None, 0
    for part in url.split(";"):
        parts = urlsplit(part.strip())
        hosts.append((parts.hostname or "127.0.0.1", parts.port or 26379))
        password = password or (unquote(parts.password) if parts.password else None)
        username = username or (unquote(parts.username) if parts.username else None)
        if parts.path.strip("/"):
            db = int(parts.path.strip("/"))
    sentinel = sentinel_cls(hosts, sentinel_kwargs=options.get("sentinel_kwargs"),
                        min_other_sentinels=int(options.get("min_other_sentinels", 0)),
                        socket_connect_timeout=kwargs["socket_connect_timeout"])
    return sentinel.master_for(master, db=db, password=password, username=username, **kwargs)


class Lane:
    """One redis-py connection of our own, used by one caller at a time.

    Commands are packed and pipelined straight onto the connection and the replies read
    in order: this skips the pool and retry layers of the client, about halving the
    time of a round trip. A lost connection raises ConnectionError and reconnects on
    the next call; a cancelled call drops the connection so replies never misalign.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def execute(self, *commands: Sequence[Any]) -> list[Any]:
        """Send the commands in one write; their replies, raising the first error."""
        replies = await self.execute_each(*commands)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def execute_each(self, *commands: Sequence[Any]) -> list[Any]:
        """Send the commands in one write; their replies, an error reply in its place."""
        async with self._lock:
            if self._conn is None:
                pool: Any = self._client.connection_pool
                self._conn = pool.make_connection()
            conn = self._conn
            await conn.send_packed_command(_pack(conn, commands), check_health=False)
            replies = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # the reply was read: the line stays in step
                    replies.append(exc)
        return replies

    async def reset(self) -> None:
        """Drop the connection (a call in flight fails); the next call reconnects."""
        if self._conn is not None:
            await self._conn.disconnect(nowait=True)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.disconnect()


def _pack(conn: Any, commands: Sequence[Sequence[Any]]) -> bytes | list[bytes]:
    """RESP for the commands: hiredis's C packer (an ack of 64 tags is 192 arguments,
    which redis-py's asyncio packer encodes one by one in Python), else redis-py's."""
    if _hiredis_pack is not None:
        try:
            return b"".join([_hiredis_pack(tuple(command)) for command in commands])
        except TypeError:  # an argument type hiredis does not pack
            pass
    packed: list[bytes] = conn.pack_commands(commands)
    return packed


class RedisConnection:
    """A URL's client, its lanes and the retry policy, shared by broker and backend.

    Lanes: ``main`` for commands, others for blocking reads. A lost connection is
    retried with exponential backoff until the caller's deadline (default: the
    ``retry_timeout`` option, 30 s); the loss is logged once, the recovery once.
    """

    def __init__(self, url: str, options: dict[str, Any], what: str) -> None:
        self.url, self.options, self.what = url, options, what
        self.retry_timeout = float(options.get("retry_timeout", 30.0))
        self._client: aioredis.Redis | None = None
        self._lanes: dict[str, Lane] = {}
        self._shas: dict[str, str] = {}
        self._lost = False

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = redis_client(self.url, self.options)
        return self._client

    def lane(self, name: str = "main") -> Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = Lane(self.client)
        return lane

    async def connect(self) -> None:
        """PING once; any failure is BrokerConnectionError naming the masked URL."""
        try:
            await self.lane().execute(("PING",))
        except (RedisError, OSError) as exc:
            await self.close()
            raise BrokerConnectionError(
                f"cannot connect to {self.what} at {mask_url(self.url)}: {exc}") from exc

    async def close(self) -> None:
        lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            await lane.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def retry(self, op: Callable[[], Awaitable[T]], deadline: float | None = None) -> T:
        """Run op, riding out a lost connection with backoff until the deadline."""
        if deadline is None:  # a send's retry policy, else retry_timeout
            deadline = publish_retry.deadline(self.retry_timeout)
        pause = 0.05
        while True:
            try:
                result = await op()
            except RETRYABLE as exc:
                if self._note_loss(exc):
                    for lane in self._lanes.values():  # the others are stale too
                        await lane.reset()
                self._check_deadline(exc, pause, deadline)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            if self._lost:
                self._note_recovery()
            return result

    def _note_loss(self, exc: BaseException) -> bool:
        """Log a lost connection once; True the first time."""
        if self._lost:
            return False
        self._lost = True
        log.warning("lost the connection to Redis at %s (%s); reconnecting with backoff",
                    mask_url(self.url), exc)
        return True

    def _note_recovery(self) -> None:
        self._lost = False
        log.warning("reconnected to Redis at %s", mask_url(self.url))

    def _check_deadline(self, exc: BaseException, pause: float, deadline: float) -> None:
        """BrokerConnectionError when another pause would pass the deadline."""
        if time.monotonic() + pause > deadline:
            raise BrokerConnectionError(
                f"Redis at {mask_url(self.url)} unreachable: {exc}") from exc

    async def run(self, *commands: Sequence[Any], deadline: float | None = None) -> list[Any]:
        """The commands in one round trip on the main lane, retried through a lost link."""
        return await self.retry(partial(self.lane().execute, *commands), deadline)

    def sha(self, source: str) -> str | None:
        return self._shas.get(source)

    async def eval(self, source: str, keys: Sequence[Any], args: Sequence[Any],
                   deadline: float | None = None) -> Any:
        """EVALSHA, loading the script on first use or after a Redis restart."""
        return await self.retry(partial(self.eval_once, source, keys, args), deadline)

    async def eval_once(self, source: str, keys: Sequence[Any], args: Sequence[Any],
                        lane_name: str = "main") -> Any:
        """``eval`` without the retry, on the named lane."""
        lane = self.lane(lane_name)
        sha = self._shas.get(source)
        if sha:
            try:
                return (await lane.execute(("EVALSHA", sha, len(keys), *keys, *args)))[0]
            except NoScriptError:
                pass
        [loaded] = await lane.execute(("SCRIPT", "LOAD", source))
        self._shas[source] = sha = (
            loaded.decode() if isinstance(loaded, bytes) else str(loaded))
        return (await lane.execute(("EVALSHA", sha, len(keys), *keys, *args)))[0]


__all__ = ["DEFAULT_SOCKET_TIMEOUT_S", "RETRYABLE", "Lane", "RedisConnection",
           "blocking_redis_client", "redis_client"]
