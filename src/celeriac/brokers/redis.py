"""Redis broker on kombu's exact key layout: celeriac and Celery 5 share one Redis.

URLs (as kombu): ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS;
``ssl_*`` query parameters or the ``ssl`` option), ``redis+socket:///path.sock`` (db via
``?virtual_host=N``), ``sentinel://[:password@]host:26379[/db];sentinel://host2:26379``
(``master_name`` option required). Redis >= 6.2. Redis Cluster is not supported.

Keys (each behind the ``global_keyprefix`` option, like kombu):
- ``<queue>``, ``<queue>\\x06\\x163|6|9``: ready lists, producers LPUSH kombu envelopes,
  consumers take from the right; bucket 0 (priorities 0-2) first, so a LOWER priority
  number is served first, as Celery does on Redis.
- ``unacked`` / ``unacked_index`` / ``unacked_mutex``: kombu's ack emulation, written
  exactly as kombu writes them, so either side can recover the other's messages.
- ``_celeriac.leases`` (zset tag -> lease deadline): only celeriac's deliveries.
- ``_celeriac.delayed`` (zset, score = due time): future messages; ``_celeriac.dead`` +
  ``_celeriac.dead.index``: dead letters; ``_celeriac.wake.<queue>``: wake-up tokens.

Guarantees:
- ``publish`` is one MULTI/EXEC round trip; it returns once Redis has the messages (as
  durable as Redis's own persistence settings make them).
- ``fetch`` runs one Lua script that promotes due delayed messages and moves up to
  ``max_count`` messages into ``unacked``/``unacked_index``/leases: no crash window.
  An idle consumer blocks in BLPOP on the wake lists, which celeriac producers (and
  promotions, restores) push to, so a celeriac publish wakes it at once. Messages that
  Celery clients push carry no token: they are seen within ``polling_interval``
  (default 0.1 s), the longest an idle consumer blocks before looking again.
- Leases: a celeriac delivery holds a lease of ``lease_timeout`` seconds (default: the
  ``visibility_timeout`` option, else 60 s); ``extend`` renews it (and refreshes the
  ``unacked_index`` time so a Celery sweeper leaves it alone however long it runs).
- Sweep: every celeriac consumer sweeps while it fetches or extends, at most every
  ``sweep_interval`` (default lease/4, capped at 5 s). It restores celeriac deliveries
  whose lease ran out (a dead worker's messages are back within lease + sweep_interval,
  65 s by default) and, holding kombu's ``unacked_mutex`` like a Celery worker,
  Celery's deliveries older than ``visibility_timeout`` (default 3600 s). Restored
  messages are RPUSHed (served next) with ``redelivered`` set in headers and
  delivery_info, and a fresh delivery_tag so a late ack of the old delivery is a no-op.
- ``delay`` keeps messages in Redis until due (promoted by any consumer's fetch); a
  30-day delay is neither held in memory nor delivered early.
- Connection loss: operations retry with exponential backoff (up to ``retry_timeout``,
  default 30 s, for publish/ack; until the fetch timeout for fetch); the loss is logged
  once and the recovery once. A publish that returned is never lost; one retried after
  a lost reply may be stored twice.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from celeriac.brokers.base import Broker, DeadLetter, Delivery, mask_url
from celeriac.errors import BrokerConnectionError, ConfigurationError, DecodeError
from celeriac.protocol import Message, from_envelope, to_envelope

log = logging.getLogger(__name__)
T = TypeVar("T")

SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
#: lost-connection errors worth retrying (BusyLoadingError is a ConnectionError)
RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_WAKE_CAP = 64
_SCAN_LIMIT = 100


def priority_step(priority: Any) -> int:
    """kombu's bucket for a priority: 0-2 -> 0, 3-5 -> 3, 6-8 -> 6, 9 -> 9."""
    try:
        value = max(0, min(9, int(priority or 0)))
    except (TypeError, ValueError):
        value = 0
    return PRIORITY_STEPS[bisect.bisect(PRIORITY_STEPS, value) - 1]


def bucket_key(queue: str, step: int) -> str:
    return f"{queue}{SEP}{step}" if step else queue


# -- connections --------------------------------------------------------------------


def _client_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": float(options.get("socket_connect_timeout", 5.0)),
        "socket_timeout": options.get("socket_timeout"),
        "socket_keepalive": bool(options.get("socket_keepalive", True)),
        # celeriac retries itself (with backoff, logging the loss once)
        "retry": Retry(NoBackoff(), 0),
        "max_connections": int(options.get("max_connections", 64)),
        "client_name": options.get("client_name"),
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
    scheme = url.split("://", 1)[0].lower()
    kwargs = _client_kwargs(options)
    if scheme == "sentinel":
        return _sentinel_client(url, options, kwargs)
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
        client: aioredis.Redis = aioredis.Redis(
            db=int(db), username=username, password=password, **kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {mask_url(url)!r}: {exc}") from exc
    return client


def _sentinel_client(
    url: str, options: dict[str, Any], kwargs: dict[str, Any]
) -> aioredis.Redis:
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
    sentinel_cls: Any = Sentinel  # untyped in redis-py
    sentinel = sentinel_cls(hosts, sentinel_kwargs=options.get("sentinel_kwargs"),
                        min_other_sentinels=int(options.get("min_other_sentinels", 0)),
                        socket_connect_timeout=kwargs["socket_connect_timeout"])
    client: aioredis.Redis = sentinel.master_for(
        master, db=db, password=password, username=username, **kwargs)
    return client


async def check_connection(client: aioredis.Redis, url: str, what: str) -> None:
    """PING once; any failure becomes BrokerConnectionError naming the masked URL."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise BrokerConnectionError(
            f"cannot connect to {what} at {mask_url(url)}: {exc}") from exc


def _load_script(name: str) -> str:
    return resources.files("celeriac.brokers").joinpath(f"lua/{name}.lua").read_text("utf-8")


class RedisBroker(Broker):
    """See the module docstring."""

    schemes = ("redis", "rediss", "redis+socket", "sentinel")
    supports_priority = True
    native_delay = True
    #: as Celery on Redis: priority 0 is served before 9
    priority_order: ClassVar[str] = "lower-first"

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        opts = self.options
        self.lease_s = float(opts.get("lease_timeout", opts.get("visibility_timeout", 60.0)))
        #: Celery's own visibility timeout, for deliveries made by Celery workers
        self.visibility_timeout = float(opts.get("visibility_timeout", 3600.0))
        self.prefix = str(opts.get("global_keyprefix", ""))
        self.polling_interval = max(0.01, float(opts.get("polling_interval", 0.1)))
        self.sweep_interval = float(opts.get("sweep_interval", min(5.0, self.lease_s / 4)))
        self.retry_timeout = float(opts.get("retry_timeout", 30.0))
        self._socket_timeout = float(opts.get("socket_timeout") or 0.0)
        self.mutex_expire_s = float(opts.get("unacked_mutex_expire", 300))
        k = self._k
        self.unacked, self.unacked_index = k("unacked"), k("unacked_index")
        self.unacked_mutex, self.leases = k("unacked_mutex"), k("_celeriac.leases")
        self.delayed, self.dead = k("_celeriac.delayed"), k("_celeriac.dead")
        self.dead_index = k("_celeriac.dead.index")
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, tuple[str, str]] = {}
        self._lost = False
        self._next_sweep = 0.0
        self._rotation = 0

    def _k(self, name: str) -> str:
        return self.prefix + name

    def _wake_key(self, queue: str) -> str:
        return self._k(f"_celeriac.wake.{queue}")

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = redis_client(self.url, self.options)
        return self._client

    # -- lifecycle --------------------------------------------------------------------
    async def connect(self) -> None:
        await check_connection(self.client, self.url, "Redis broker")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- plumbing ---------------------------------------------------------------------
    async def _retry(self, op: Callable[[], Awaitable[T]], deadline: float | None = None) -> T:
        """Run op, riding out a lost connection with backoff until the deadline."""
        if deadline is None:
            deadline = time.monotonic() + self.retry_timeout
        pause = 0.05
        while True:
            try:
                result = await op()
            except RETRYABLE as exc:
                if not self._lost:
                    self._lost = True
                    log.warning("lost the connection to Redis at %s (%s); reconnecting "
                                "with backoff", mask_url(self.url), exc)
                if time.monotonic() + pause > deadline:
                    raise BrokerConnectionError(
                        f"Redis at {mask_url(self.url)} unreachable: {exc}") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            if self._lost:
                self._lost = False
                log.warning("reconnected to Redis at %s", mask_url(self.url))
            return result

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA a packaged script, loading it on first use or after a Redis restart."""
        if name not in self._scripts:
            source = _load_script(name)
            self._scripts[name] = (source, "")
        source, sha = self._scripts[name]
        client = self.client
        if sha:
            try:
                return await client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                pass
        sha = await client.script_load(source)
        self._scripts[name] = (source, sha)
        return await client.evalsha(sha, len(keys), *keys, *args)

    # -- producing --------------------------------------------------------------------
    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        by_key: dict[str, list[bytes]] = {}
        per_queue: dict[str, int] = {}
        for m in messages:
            key = bucket_key(m.routing_key, priority_step(m.priority))
            by_key.setdefault(self._k(key), []).append(to_envelope(m))
            per_queue[m.routing_key] = per_queue.get(m.routing_key, 0) + 1

        async def run() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                for key, envelopes in by_key.items():
                    pipe.lpush(key, *envelopes)
                self._queue_wakes(pipe, per_queue)
                await pipe.execute()

        await self._retry(run)

    def _queue_wakes(self, pipe: Any, per_queue: dict[str, int]) -> None:
        for queue, count in per_queue.items():
            wake = self._wake_key(queue)
            pipe.lpush(wake, *[b"1"] * min(count, _WAKE_CAP))
            pipe.ltrim(wake, 0, _WAKE_CAP - 1)

    async def delay(self, messages: Sequence[tuple[Message, float]]) -> None:
        if not messages:
            return
        members: dict[bytes, float] = {}
        per_queue: dict[str, int] = {}
        for m, due in messages:
            step = priority_step(m.priority)
            member = to_envelope(m) + f"\n{step}{m.routing_key}".encode()
            members[member] = float(due)
            per_queue[m.routing_key] = per_queue.get(m.routing_key, 0) + 1

        async def run() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zadd(self.delayed, members)
                self._queue_wakes(pipe, per_queue)  # waiting consumers re-read the due time
                await pipe.execute()

        await self._retry(run)

    # -- consuming --------------------------------------------------------------------
    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout_s: float
    ) -> list[Delivery]:
        if not queues or max_count <= 0:
            return []
        deadline = time.monotonic() + max(0.0, timeout_s)
        # rotate the queue order per call (kombu's round robin) so no queue starves
        self._rotation = (self._rotation + 1) % len(queues)
        order = list(queues[self._rotation:]) + list(queues[: self._rotation])
        wakes = [self._wake_key(q) for q in order]
        while True:
            await self._maybe_sweep()
            try:
                taken, next_due = await self._retry(
                    lambda: self._take(order, max_count), deadline)
            except BrokerConnectionError:
                return []
            if taken:
                return taken
            now = time.monotonic()
            if now >= deadline:
                return []
            wait = min(deadline - now, self.polling_interval)
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - time.time()))
            if self._socket_timeout:
                wait = min(wait, self._socket_timeout * 0.8)  # BLPOP must answer in time
            try:
                await self._retry(self._blocker(wakes, max(wait, 0.001)), deadline)
            except BrokerConnectionError:
                return []

    def _blocker(self, keys: list[str], timeout: float) -> Callable[[], Awaitable[Any]]:
        """BLPOP on wake lists: returns at the first token or after timeout."""
        return lambda: self.client.blpop(keys, timeout)

    async def _take(
        self, queues: Sequence[str], max_count: int
    ) -> tuple[list[Delivery], float | None]:
        keys = [self.unacked, self.unacked_index, self.leases, self.delayed]
        for queue in queues:
            keys += [self._k(bucket_key(queue, s)) for s in PRIORITY_STEPS]
            keys.append(self._wake_key(queue))
        now = time.time()
        args = [repr(now), repr(now + self.lease_s), max_count, uuid.uuid4().hex,
                self.prefix, _SCAN_LIMIT, _WAKE_CAP, *queues]
        reply = await self._eval("fetch", keys, args)
        next_due = float(reply[0]) if reply[0] else None
        deliveries = []
        for i in range(1, len(reply), 3):
            queue = queues[int(reply[i]) - 1]
            deliveries.append(_delivery(queue, reply[i + 1].decode(), reply[i + 2]))
        return deliveries, next_due

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        tags = [d.tag for d in deliveries]

        async def run() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zrem(self.unacked_index, *tags)
                pipe.hdel(self.unacked, *tags)
                pipe.zrem(self.leases, *tags)
                await pipe.execute()

        await self._retry(run)

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        now = time.time()
        leases = {d.tag: now + self.lease_s for d in deliveries}
        seen = {d.tag: now for d in deliveries}

        async def run() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zadd(self.leases, leases, xx=True)
                # keeps Celery's sweep (visibility_timeout) off a live celeriac delivery
                pipe.zadd(self.unacked_index, seen, xx=True)
                await pipe.execute()

        await self._retry(run)
        await self._maybe_sweep()

    async def requeue(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        tags = [d.tag for d in deliveries]
        records = await self._retry(lambda: self.client.hmget(self.unacked, tags))
        groups: list[Any] = []
        for d, record in zip(deliveries, records, strict=True):
            if record is None:
                continue  # no longer ours: acked, or restored by a sweep
            restored = _restored(_raw(record))
            if restored is not None:
                _, step, payload = restored
                groups += [d.tag, "owned", d.queue, step, "1", payload]
        if groups:
            await self._restore(groups)

    async def _restore(self, groups: list[Any], token: str = "", now: float = 0.0) -> int:
        keys = [self.unacked, self.unacked_index, self.leases, self.unacked_mutex]
        ceiling = now - self.visibility_timeout
        args = [repr(now), repr(ceiling), self.prefix, _WAKE_CAP, token, *groups]
        return int(await self._retry(lambda: self._eval("restore", keys, args)))

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        now = time.time()
        head = orjson.dumps({"queue": delivery.queue, "reason": reason, "failed_at": now})
        head = head[:-1] + b',"entry":'
        letter_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        keys = [self.unacked, self.unacked_index, self.leases, self.dead, self.dead_index]
        args = [delivery.tag, letter_id, head, repr(now)]
        await self._retry(lambda: self._eval("dead_letter", keys, args))

    # -- sweeping ---------------------------------------------------------------------
    async def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        try:
            if await self.sweep() >= _SCAN_LIMIT:
                self._next_sweep = now  # more to do: sweep again on the next call
        except (RedisError, BrokerConnectionError, OSError) as exc:
            log.debug("sweep skipped: %s", exc)

    async def sweep(self) -> int:
        """Restore lapsed celeriac leases and Celery's stale deliveries; returns how many."""
        now = time.time()
        token = uuid.uuid4().hex
        keys = [self.unacked, self.unacked_index, self.leases, self.unacked_mutex]
        args = [repr(now), repr(now - self.visibility_timeout), _SCAN_LIMIT, token,
                int(self.mutex_expire_s * 1000)]
        lapsed, stale, locked = await self._eval("sweep", keys, args)
        if not lapsed and not stale and not locked:
            return 0
        groups: list[Any] = []
        for mode, found in (("lease", lapsed), ("stale", stale)):
            for i in range(0, len(found), 2):
                restored = _restored(found[i + 1])
                if restored is None:
                    continue
                queue, step, payload = restored
                if queue is None:
                    queue = await self._route(found[i + 1])
                groups += [found[i], mode, queue, step, "1", payload]
        restored_count = await self._restore(groups, token if locked else "", now)
        if restored_count:
            log.info("restored %d unacknowledged message(s) to their queues", restored_count)
        return restored_count

    async def _route(self, record: bytes) -> str:
        """Queue for a named exchange, through kombu's binding table (direct match)."""
        _, exchange, routing_key = json.loads(record.decode("utf-8", "surrogateescape"))
        members = await self.client.smembers(self._k(f"_kombu.binding.{exchange}"))
        for member in sorted(_raw(m) for m in members):
            fields = member.decode("utf-8", "replace").split(SEP)
            if len(fields) == 3 and fields[0] == routing_key:
                return fields[2]
        return str(routing_key)

    # -- administration ---------------------------------------------------------------
    async def purge(self, queues: Sequence[str]) -> int:
        keys = [self._k(bucket_key(q, step)) for q in queues for step in PRIORITY_STEPS]

        async def run() -> int:
            async with self.client.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.llen(key)
                pipe.delete(*keys, *[self._wake_key(q) for q in queues])
                replies = await pipe.execute()
            return sum(replies[:-1])

        return await self._retry(run)

    async def queue_size(self, queue: str) -> int:
        async def run() -> int:
            async with self.client.pipeline(transaction=False) as pipe:
                for step in PRIORITY_STEPS:
                    pipe.llen(self._k(bucket_key(queue, step)))
                return sum(await pipe.execute())

        return await self._retry(run)

    async def _dead_ids(self, stop: int) -> list[str]:
        ids = await self._retry(lambda: self.client.zrange(self.dead_index, 0, stop))
        return [_raw(i).decode() for i in ids]

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        ids = await self._dead_ids(limit - 1) if limit > 0 else []
        if not ids:
            return []
        values = await self._retry(lambda: self.client.hmget(self.dead, ids))
        letters = []
        for letter_id, value in zip(ids, values, strict=True):
            if value is not None:
                letters.append(_dead_letter(letter_id, _raw(value)))
        return letters

    async def requeue_dead(self, ids: Sequence[str] | None = None) -> int:
        if ids is None:
            ids = await self._dead_ids(-1)
        moved = 0
        for start in range(0, len(ids), 500):
            moved += await self._requeue_dead_chunk(list(ids[start:start + 500]))
        return moved

    async def _requeue_dead_chunk(self, ids: list[str]) -> int:
        values = await self._retry(lambda: self.client.hmget(self.dead, ids))
        groups: list[Any] = []
        for letter_id, value in zip(ids, values, strict=True):
            if value is None:
                continue
            letter = json.loads(_raw(value).decode("utf-8", "surrogateescape"))
            envelope = letter["entry"][0]
            payload = (json.dumps(envelope).encode() if isinstance(envelope, dict)
                       else str(envelope).encode("utf-8", "surrogateescape"))
            step = priority_step(_props(envelope).get("priority"))
            groups += [letter_id, "owned", letter["queue"], step, "0", payload]
        if not groups:
            return 0
        keys = [self.dead, self.dead_index, self.dead_index, self.unacked_mutex]
        args = ["0", "0", self.prefix, _WAKE_CAP, "", *groups]
        return int(await self._retry(lambda: self._eval("restore", keys, args)))

    async def purge_dead(self) -> int:
        async def run() -> int:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hlen(self.dead)
                pipe.delete(self.dead, self.dead_index)
                count, _ = await pipe.execute()
            return int(count)

        return await self._retry(run)


# -- envelopes and records ------------------------------------------------------------


def _raw(value: Any) -> bytes:
    """redis-py types replies as bytes | str; without decode_responses they are bytes."""
    return value if isinstance(value, bytes) else str(value).encode()


def _props(envelope: Any) -> dict[str, Any]:
    props = envelope.get("properties") if isinstance(envelope, dict) else None
    return props if isinstance(props, dict) else {}


def _delivery(queue: str, tag: str, raw: bytes) -> Delivery:
    try:
        message = from_envelope(raw)
    except DecodeError as exc:
        # An envelope we cannot parse still gets a tag so the worker can dead-letter it.
        return Delivery(Message(headers={}, body=raw, routing_key=queue), queue, tag,
                        False, str(exc))
    return Delivery(message, queue, tag, bool(message.headers.get("redelivered")))


def _restored(record: bytes) -> tuple[str | None, int, bytes] | None:
    """An unacked record -> (queue or None for a named exchange, bucket, new envelope).

    Sets ``redelivered`` in headers and delivery_info as kombu does and gives the
    message a fresh delivery_tag. Uses the stdlib json so Celery's envelopes keep
    every value exactly (floats, big ints) and kombu's formatting.
    """
    try:
        envelope, exchange, routing_key = json.loads(record.decode("utf-8", "surrogateescape"))
    except (ValueError, TypeError):
        log.error("dropping an unreadable unacked record: %r", record[:200])
        return None
    queue = str(routing_key) if not exchange else None
    if not isinstance(envelope, dict):  # an odd envelope kept verbatim for a dead letter
        return queue, 0, str(envelope).encode("utf-8", "surrogateescape")
    headers = envelope.get("headers")
    if isinstance(headers, dict):
        headers["redelivered"] = True
    props = _props(envelope)
    info = props.get("delivery_info")
    if isinstance(info, dict):
        info["redelivered"] = True
    if props:
        props["delivery_tag"] = str(uuid.uuid4())
    return queue, priority_step(props.get("priority")), json.dumps(envelope).encode()


def _dead_letter(letter_id: str, value: bytes) -> DeadLetter:
    letter = json.loads(value.decode("utf-8", "surrogateescape"))
    envelope = letter["entry"][0]
    queue = str(letter.get("queue") or "")
    try:
        if not isinstance(envelope, dict):
            raise DecodeError("not an envelope")
        message = from_envelope(json.dumps(envelope))
    except DecodeError:
        raw = str(envelope).encode("utf-8", "surrogateescape")
        message = Message(headers={}, body=raw, routing_key=queue)
    return DeadLetter(letter_id, queue, str(letter.get("reason", "")),
                      float(letter.get("failed_at", 0.0)), message)


__all__ = ["RedisBroker", "bucket_key", "check_connection", "priority_step", "redis_client"]
