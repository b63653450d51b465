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
- ``publish`` is one run of publish.lua (messages and wake tokens, atomically); the
  async one returns once Redis has the messages (as durable as Redis's own persistence
  settings make them). A sync ``.delay()`` returns once the command is written, with up
  to ``confirm_window`` replies outstanding (see redis_blocking.py): a publish Redis
  refused raises from the next call, ``flush_blocking`` or at exit, never silently.
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

import bisect
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache, partial
from importlib import resources
from typing import Any, ClassVar

import orjson
from redis.exceptions import NoScriptError, RedisError

from celeriac.brokers.base import DeadLetter, Delivery, FanoutBroker
from celeriac.brokers.redis.blocking import DEFAULT_WINDOW, BlockingPublisher
from celeriac.brokers.redis.connection import (
    DEFAULT_SOCKET_TIMEOUT_S,
    RETRYABLE,
    RedisConnection,
    blocking_redis_client,
    redis_client,
)
from celeriac.brokers.redis.fanout import RedisFanout
from celeriac.errors import BrokerConnectionError, DecodeError
from celeriac.protocol import (
    CallBatch,
    DueBatch,
    Message,
    from_envelope,
    task_ids,
    to_envelope,
)

_hiredis_pack: Any
log = logging.getLogger(__name__)

SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
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


@cache
def script(name: str) -> str:
    """A packaged Lua script's source (src/celeriac/brokers/redis/lua/<name>.lua)."""
    return resources.files("celeriac.brokers.redis").joinpath(f"lua/{name}.lua").read_text("utf-8")


class RedisBroker(FanoutBroker):
    """See the module docstring."""

    schemes = ("redis", "rediss", "redis+socket", "sentinel")
    supports_priority = True
    shared_delay_store = False
    supports_broadcast = True  # kombu's fan-out over PUB/SUB: redis_fanout.py
    #: as Celery on Redis: priority 0 is served before 9
    priority_order: ClassVar[str] = "lower-first"

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        opts = self.options
        # a half-open link (peer gone without a FIN) must fail a read, not hang it forever
        opts.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT_S)
        self.lease_s = float(opts.get("lease_timeout", opts.get("visibility_timeout", 60.0)))
        #: Celery's own visibility timeout, for deliveries made by Celery workers
        self.visibility_timeout = float(opts.get("visibility_timeout", 3600.0))
        self.prefix = str(opts.get("global_keyprefix", ""))
        self.polling_interval = max(0.01, float(opts.get("polling_interval", 0.1)))
        #: fetch rounds end while a long task runs (pause_pushes)
        self._paused = False
        self.sweep_interval = float(opts.get("sweep_interval", min(5.0, self.lease_s / 4)))
        self.mutex_expire_s = float(opts.get("unacked_mutex_expire", 300))
        self._socket_timeout = float(opts.get("socket_timeout") or 0.0)
        k = self._k
        self.unacked, self.unacked_index = k("unacked"), k("unacked_index")
        self.unacked_mutex, self.leases = k("unacked_mutex"), k("_celeriac.leases")
        self.delayed, self.dead = k("_celeriac.delayed"), k("_celeriac.dead")
        self.dead_index = k("_celeriac.dead.index")
        self.redis = RedisConnection(url, self.options, "Redis broker")
        #: sync publishes whose reply may be outstanding (0: each waits for its own)
        self._window = int(opts.get("confirm_window", DEFAULT_WINDOW))
        self._blocking: BlockingPublisher | None = None
        self._next_sweep = 0.0
        self._rotation = 0
        self.fanout = RedisFanout(self.redis, opts, self.prefix)

    def _k(self, name: str) -> str:
        return self.prefix + name

    def _wake_key(self, queue: str) -> str:
        return self._k(f"_celeriac.wake.{queue}")

    # -- lifecycle --------------------------------------------------------------------
    async def connect(self) -> None:
        await self.redis.connect()

    async def close(self) -> None:
        await self.redis.close()
        self.close_blocking()

    def close_blocking(self) -> None:
        blocking, self._blocking = self._blocking, None
        if blocking is not None:
            try:
                blocking.flush()
            finally:
                blocking.close()

    async def _run(self, *commands: Sequence[Any], deadline: float | None = None) -> list[Any]:
        return await self.redis.run(*commands, deadline=deadline)

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any],
                    deadline: float | None = None) -> Any:
        return await self.redis.eval(script(name), keys, args, deadline)

    # -- producing --------------------------------------------------------------------
    # Every publish is one run of publish.lua: the messages and their queues' wake tokens,
    # atomically, one command and one reply (so the sync publisher can pipeline it).
    async def publish(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._eval("publish", *self._publish_call(messages))

    async def delay(self, messages: Sequence[tuple[Message, float]]) -> None:
        if messages:
            await self._eval("publish", *self._delay_call(messages))

    def publish_blocking(self, messages: Sequence[Message]) -> None:
        """``publish`` from a sync caller's thread, without the event loop: written at
        once, Redis's reply read by a later call within ``confirm_window`` (see
        redis_blocking.py; a refused publish always raises)."""
        if messages:
            self._publisher().publish(*self._publish_call(messages), task_ids(messages))

    def delay_blocking(self, messages: Sequence[tuple[Message, float]]) -> None:
        """``delay`` from a sync caller's thread, like ``publish_blocking``."""
        if messages:
            ids = (messages.batch.task_ids if isinstance(messages, DueBatch)
                   else [m.task_id for m, _ in messages])
            self._publisher().publish(*self._delay_call(messages), ids)

    def flush_blocking(self, timeout_s: float | None = None) -> None:
        """Wait for Redis's reply to every sync publish; raise what it refused."""
        if self._blocking is not None:
            self._blocking.flush(timeout_s)

    def _publisher(self) -> BlockingPublisher:
        if self._blocking is None:
            self._blocking = BlockingPublisher(
                blocking_redis_client(self.url, self.options), script("publish"), self.url,
                self.redis.retry_timeout, self._window, RETRYABLE)
        return self._blocking

    def _publish_call(self, messages: Sequence[Message]) -> tuple[list[str], list[Any]]:
        """publish.lua's keys and args: each envelope LPUSHed onto its bucket's list."""
        targets: dict[str, list[Any]] = {}
        if isinstance(messages, CallBatch):  # one bucket, envelopes spliced (bulk sends)
            m = messages.template
            targets[self._k(bucket_key(m.routing_key, priority_step(m.priority)))] = \
                messages.envelopes()
            return self._script_call("list", targets, {m.routing_key: len(messages)})
        for m in messages:
            key = self._k(bucket_key(m.routing_key, priority_step(m.priority)))
            targets.setdefault(key, []).append(to_envelope(m))
        return self._script_call("list", targets, Counter(m.routing_key for m in messages))

    def _delay_call(self, messages: Sequence[tuple[Message, float]]
                    ) -> tuple[list[str], list[Any]]:
        """publish.lua's keys and args: due time and envelope (with its bucket and queue
        after a newline, for fetch.lua's promotion) ZADDed into the delayed zset. The
        wake tokens make waiting consumers re-read the earliest due time."""
        scored: list[Any] = []
        if isinstance(messages, DueBatch):  # a bulk send: its envelopes come spliced
            m, due_s = messages.batch.template, repr(float(messages.due))
            where = f"\n{priority_step(m.priority)}{m.routing_key}".encode()
            for envelope in messages.batch.envelopes():
                scored += [due_s, envelope + where]
            return self._script_call("zset", {self.delayed: scored},
                                     {m.routing_key: len(messages)})
        for m, due in messages:
            scored += [repr(float(due)),
                       to_envelope(m) + f"\n{priority_step(m.priority)}{m.routing_key}".encode()]
        return self._script_call("zset", {self.delayed: scored},
                                 Counter(m.routing_key for m, _ in messages))

    def _script_call(self, mode: str, targets: dict[str, list[Any]],
                     counts: Mapping[str, int]) -> tuple[list[str], list[Any]]:
        """``counts``: messages per queue (one wake token each, at most _WAKE_CAP)."""
        keys = [*targets, *[self._wake_key(q) for q in counts]]
        args: list[Any] = [mode, len(targets), _WAKE_CAP,
                           *[len(items) for items in targets.values()],
                           *[min(c, _WAKE_CAP) for c in counts.values()]]
        for items in targets.values():
            args += items
        return keys, args

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
        block: float | None = None  # the first look does not wait
        while True:
            if self._paused:  # a long task runs in this consumer (pause_pushes)
                return []
            await self._maybe_sweep()
            try:
                taken, next_due = await self.redis.retry(
                    partial(self._take, order, max_count, block), deadline)
                if taken:
                    return taken
                block = min(deadline - time.monotonic(), self.polling_interval)
                if block <= 0:
                    return []
                if self._socket_timeout:
                    block = min(block, self._socket_timeout * 0.8)  # BLPOP answers in time
                until_due = None if next_due is None else next_due - time.time()
                if until_due is not None and until_due <= block:
                    # sleep until the due time (a publish still wakes us), then look
                    if until_due > 0:
                        await self.redis.retry(partial(self.redis.lane("wait").execute,
                                                       self._blpop(order, until_due)), deadline)
                    block = None
            except NoScriptError:  # Redis restarted: the next look reloads the script
                block = None
            except BrokerConnectionError:
                return []

    @property
    def fetch_settle_s(self) -> float:
        return self.polling_interval + 0.05  # a BLPOP round in flight ends by then

    async def pause_pushes(self) -> None:
        self._paused = True

    def resume_pushes(self) -> None:
        self._paused = False

    def _blpop(self, queues: Sequence[str], timeout: float) -> tuple[Any, ...]:
        return ("BLPOP", *[self._wake_key(q) for q in queues], f"{max(timeout, 0.001):.3f}")

    async def _take(
        self, queues: Sequence[str], max_count: int, block: float | None
    ) -> tuple[list[Delivery], float | None]:
        """Run fetch.lua now, or (block) pipelined behind a BLPOP on the wake lists.

        Redis runs the script the moment the BLPOP returns, so a wake-up costs no extra
        round trip; its ``now`` is the send time, at most ``block`` early.
        """
        keys = [self.unacked, self.unacked_index, self.leases, self.delayed]
        for queue in queues:
            keys += [self._k(bucket_key(queue, s)) for s in PRIORITY_STEPS]
            keys.append(self._wake_key(queue))
        now = time.time()
        args = [repr(now), repr(now + self.lease_s), max_count, uuid.uuid4().hex,
                self.prefix, _SCAN_LIMIT, _WAKE_CAP, *queues]
        sha = self.redis.sha(script("fetch"))
        if block is None or sha is None:
            # the fetch lane, not main: a fetch never waits behind an ack in flight
            reply = await self.redis.eval_once(script("fetch"), keys, args, "wait")
        else:
            _, reply = await self.redis.lane("wait").execute(
                self._blpop(queues, block), ("EVALSHA", sha, len(keys), *keys, *args))
        next_due = float(reply[0]) if reply[0] else None
        deliveries = []
        for i in range(1, len(reply), 3):
            queue = queues[int(reply[i]) - 1]
            deliveries.append(_delivery(queue, _raw(reply[i + 1]).decode(), reply[i + 2]))
        return deliveries, next_due

    async def park(self, parked: Sequence[tuple[Delivery, float]]) -> None:
        """One run of park.lua: out of unacked and into the delayed zset, atomically,
        back to the queue each came from when due."""
        if not parked:
            return
        counts = Counter(d.queue for d, _ in parked)
        keys = [self.unacked, self.unacked_index, self.leases, self.delayed,
                *[self._wake_key(q) for q in counts]]
        args: list[Any] = [_WAKE_CAP, len(parked), *[min(c, _WAKE_CAP) for c in counts.values()]]
        for d, due in parked:
            where = f"\n{priority_step(d.message.priority)}{d.queue}".encode()
            args += [d.tag, repr(float(due)), to_envelope(d.message) + where]
        await self._eval("park", keys, args)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            tags = [d.tag for d in deliveries]
            await self._run(("ZREM", self.unacked_index, *tags), ("HDEL", self.unacked, *tags),
                            ("ZREM", self.leases, *tags))

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        now = time.time()
        leases = [x for d in deliveries for x in (repr(now + self.lease_s), d.tag)]
        seen = [x for d in deliveries for x in (repr(now), d.tag)]
        # refreshing unacked_index keeps Celery's sweep off a live celeriac delivery
        await self._run(("ZADD", self.leases, "XX", *leases),
                        ("ZADD", self.unacked_index, "XX", *seen))
        await self._maybe_sweep()

    async def requeue(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        tags = [d.tag for d in deliveries]
        [records] = await self._run(("HMGET", self.unacked, *tags))
        groups: list[Any] = []
        for d, record in zip(deliveries, records, strict=True):
            restored = None if record is None else _restored(record)  # None: not ours now
            if restored is not None:
                groups += [d.tag, "owned", d.queue, restored[1], "1", restored[2]]
        if groups:
            await self._restore(groups)

    async def _restore(self, groups: list[Any], token: str = "", now: float = 0.0,
                       deadline: float | None = None) -> int:
        keys = [self.unacked, self.unacked_index, self.leases, self.unacked_mutex]
        ceiling = now - self.visibility_timeout
        args = [repr(now), repr(ceiling), self.prefix, _WAKE_CAP, token, *groups]
        return int(await self._eval("restore", keys, args, deadline))

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        now = time.time()
        head = orjson.dumps({"queue": delivery.queue, "reason": reason, "failed_at": now})
        head = head[:-1] + b',"entry":'
        letter_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        keys = [self.unacked, self.unacked_index, self.leases, self.dead, self.dead_index]
        args = [delivery.tag, letter_id, head, repr(now)]
        await self._eval("dead_letter", keys, args)

    # -- sweeping ---------------------------------------------------------------------
    async def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        try:
            if await self.sweep(deadline=now + 1.0) >= _SCAN_LIMIT:
                self._next_sweep = now  # more to do: sweep again on the next call
        except (RedisError, BrokerConnectionError, OSError) as exc:
            log.debug("sweep skipped: %s", exc)

    async def sweep(self, deadline: float | None = None) -> int:
        """Restore lapsed celeriac leases and Celery's stale deliveries; returns how many."""
        now = time.time()
        token = uuid.uuid4().hex
        keys = [self.unacked, self.unacked_index, self.leases, self.unacked_mutex]
        args = [repr(now), repr(now - self.visibility_timeout), _SCAN_LIMIT, token,
                int(self.mutex_expire_s * 1000)]
        lapsed, stale, locked = await self._eval("sweep", keys, args, deadline)
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
                    queue = await self._route(found[i + 1], deadline)
                groups += [found[i], mode, queue, step, "1", payload]
        count = await self._restore(groups, token if locked else "", now, deadline)
        if count:
            log.info("restored %d unacknowledged message(s) to their queues", count)
        return count

    async def _route(self, record: bytes, deadline: float | None) -> str:
        """Queue for a named exchange, through kombu's binding table (direct match)."""
        _, exchange, routing_key = _load_record(record)
        binding = self._k(f"_kombu.binding.{exchange}")
        [members] = await self._run(("SMEMBERS", binding), deadline=deadline)
        for member in sorted(_raw(m) for m in members):
            fields = member.decode("utf-8", "replace").split(SEP)
            if len(fields) == 3 and fields[0] == routing_key:
                return fields[2]
        return str(routing_key)

    # -- administration ---------------------------------------------------------------
    async def purge(self, queues: Sequence[str]) -> int:
        keys = [self._k(bucket_key(q, step)) for q in queues for step in PRIORITY_STEPS]
        wakes = [self._wake_key(q) for q in queues]
        replies = await self._run(
            ("MULTI",), *[("LLEN", k) for k in keys], ("DEL", *keys, *wakes), ("EXEC",))
        return sum(replies[-1][:-1])

    async def queue_size(self, queue: str) -> int:
        keys = [self._k(bucket_key(queue, step)) for step in PRIORITY_STEPS]
        return sum(await self._run(*[("LLEN", k) for k in keys]))

    async def _dead_ids(self, stop: int) -> list[str]:
        [ids] = await self._run(("ZRANGE", self.dead_index, 0, stop))
        return [_raw(i).decode() for i in ids]

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        ids = await self._dead_ids(limit - 1) if limit > 0 else []
        if not ids:
            return []
        [values] = await self._run(("HMGET", self.dead, *ids))
        return [_dead_letter(letter_id, _raw(value))
                for letter_id, value in zip(ids, values, strict=True) if value is not None]

    async def requeue_dead(self, ids: Sequence[str] | None = None) -> int:
        if ids is None:
            ids = await self._dead_ids(-1)
        moved = 0
        for start in range(0, len(ids), 500):
            moved += await self._requeue_dead_chunk(list(ids[start:start + 500]))
        return moved

    async def _requeue_dead_chunk(self, ids: list[str]) -> int:
        [values] = await self._run(("HMGET", self.dead, *ids))
        groups: list[Any] = []
        for letter_id, value in zip(ids, values, strict=True):
            if value is None:
                continue
            letter = _load_letter(_raw(value))
            envelope = letter["entry"][0]
            payload = (json.dumps(envelope).encode() if isinstance(envelope, dict)
                       else str(envelope).encode("utf-8", "surrogateescape"))
            step = priority_step(_props(envelope).get("priority"))
            groups += [letter_id, "owned", letter["queue"], step, "0", payload]
        if not groups:
            return 0
        keys = [self.dead, self.dead_index, self.dead_index, self.unacked_mutex]
        args = ["0", "0", self.prefix, _WAKE_CAP, "", *groups]
        return int(await self._eval("restore", keys, args))

    async def purge_dead(self) -> int:
        replies = await self._run(
            ("MULTI",), ("HLEN", self.dead), ("DEL", self.dead, self.dead_index), ("EXEC",))
        return int(replies[-1][0])


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
        envelope, exchange, routing_key = _load_record(record)
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


def _load_record(record: bytes) -> list[Any]:
    """An unacked record -> [envelope, exchange, routing_key].

    fetch.lua writes most records as ``'[' envelope ',"ex","rk"]'`` without decoding the
    envelope, so a record around an envelope that is not JSON is not JSON either. Its
    exchange and key never hold a quote (fetch.lua checks), so the tail splits off from
    the right and the envelope comes back as its text, kept verbatim for a dead letter.
    """
    text = record.decode("utf-8", "surrogateescape")
    try:
        loaded = json.loads(text)
    except ValueError:
        if not (text.startswith("[") and text.endswith('"]')):
            raise
        envelope, exchange, comma, routing_key = text[1:-2].rsplit('"', 3)
        if comma != "," or not envelope.endswith(","):
            raise
        return [envelope[:-1], exchange, routing_key]
    if not isinstance(loaded, list) or len(loaded) != 3:
        raise ValueError(f"an unacked record is [envelope, exchange, key], got {text[:80]!r}")
    return loaded


def _load_letter(value: bytes) -> dict[str, Any]:
    """A dead letter: dead_letter.lua's JSON head, then ``"entry":`` and the unacked
    record (which may not be JSON: see _load_record), then ``}``."""
    text = value.decode("utf-8", "surrogateescape")
    try:
        letter: dict[str, Any] = json.loads(text)
    except ValueError:
        head, _, record = text.partition(',"entry":')  # the head's strings escape '"'
        letter = json.loads(head + "}")
        letter["entry"] = _load_record(record[:-1].encode("utf-8", "surrogateescape"))
    return letter


def _dead_letter(letter_id: str, value: bytes) -> DeadLetter:
    letter = _load_letter(value)
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


__all__ = ["RedisBroker", "RedisConnection", "bucket_key", "priority_step",
           "redis_client", "script"]
