"""In-process broker: the reference implementation of the contract, and the test broker.

URL: ``memory://`` (one store per process, shared by every app using that URL) or
``memory://name`` for an isolated store. Nothing survives the process. Thread-safe:
producers in any thread and a worker's event loop in another share one store.
Priorities 0-9, higher first; delayed messages are promoted on each fetch.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac.brokers.base import (
    Broker,
    DeadLetter,
    Delivery,
    Exchange,
    Subscription,
    topic_match,
)
from celeriac.protocol import Message


@dataclass
class _Store:
    """The state behind one memory:// URL."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    #: queue -> heap of (-priority, seq, message)
    ready: dict[str, list[tuple[int, int, Message]]] = field(default_factory=dict)
    #: heap of (due unix time, seq, message)
    delayed: list[tuple[float, int, Message]] = field(default_factory=list)
    #: tag -> (delivery, lease deadline)
    in_flight: dict[str, tuple[Delivery, float]] = field(default_factory=dict)
    dead: dict[str, DeadLetter] = field(default_factory=dict)
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list
    )
    #: exchange -> its subscribers
    subscribers: dict[str, list[_Inbox]] = field(default_factory=dict)
    #: (exchange, routing key) -> the mailbox bound there
    mailboxes: dict[tuple[str, str], _Inbox] = field(default_factory=dict)
    #: revoked task id -> unix time it is forgotten
    revoked: dict[str, float] = field(default_factory=dict)


class _Inbox(Subscription):
    """One subscriber's messages: a deque filled from any thread, read on one loop."""

    def __init__(self, store: _Store, binding: str, on_close: Any) -> None:
        self.store, self.binding, self._on_close = store, binding, on_close
        self.items: list[Message] = []
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    def put(self, message: Message) -> None:
        """Called with the store's lock held."""
        self.items.append(message)
        if self._waiter is not None:
            loop, fut = self._waiter
            self._waiter = None
            if not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(_resolve, fut)
                except RuntimeError:
                    pass

    async def get(self, timeout_s: float) -> list[Message]:
        loop = asyncio.get_running_loop()
        with self.store.lock:
            if not self.items and timeout_s > 0:
                fut: asyncio.Future[None] = loop.create_future()
                self._waiter = (loop, fut)
            else:
                got, self.items = self.items, []
                return got
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            pass
        with self.store.lock:
            self._waiter = None
            got, self.items = self.items, []
            return got

    async def close(self) -> None:
        with self.store.lock:
            self._on_close()


_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


def _store_for(url: str) -> _Store:
    with _STORES_LOCK:
        return _STORES.setdefault(url, _Store())


class MemoryBroker(Broker):
    """See the module docstring."""

    schemes = ("memory",)
    supports_priority = True
    supports_broadcast = True
    fetch_cancel_safe = True  # fetch takes under the lock and returns in the same step

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self._s = _store_for(url)

    # -- helpers (call with the lock held) -------------------------------------------
    def _push(self, message: Message, front: bool = False) -> None:
        s = self._s
        order = -next(s.seq) if front else next(s.seq)
        heap = s.ready.setdefault(message.routing_key, [])
        heapq.heappush(heap, (-message.priority, order, message))

    def _promote_due(self, now: float) -> None:
        s = self._s
        while s.delayed and s.delayed[0][0] <= now:
            _, _, message = heapq.heappop(s.delayed)
            self._push(message)
        for tag, (delivery, deadline) in list(s.in_flight.items()):
            if deadline <= now:
                del s.in_flight[tag]
                delivery.message.headers["redelivered"] = True
                self._push(delivery.message, front=True)

    def _wake(self) -> None:
        waiters, self._s.waiters = self._s.waiters, []
        for loop, fut in waiters:
            if not fut.done() and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(_resolve, fut)
                except RuntimeError:  # the loop closed between the check and the call
                    pass

    def _take(self, queues: Sequence[str], max_count: int) -> list[Delivery]:
        s = self._s
        now = time.time()
        self._promote_due(now)
        taken: list[Delivery] = []
        for queue in queues:
            heap = s.ready.get(queue)
            while heap and len(taken) < max_count:
                _, _, message = heapq.heappop(heap)
                tag = uuid.uuid4().hex
                redelivered = bool(message.headers.get("redelivered"))
                delivery = Delivery(message, queue, tag, redelivered)
                s.in_flight[tag] = (delivery, now + self.lease_s)
                taken.append(delivery)
        return taken

    def release_delayed(self) -> int:
        """Make every delayed message ready now (for ``celeriac.testing.drain``)."""
        with self._s.lock:
            count = len(self._s.delayed)
            while self._s.delayed:
                _, _, message = heapq.heappop(self._s.delayed)
                self._push(message)
            self._wake()
            return count

    # -- contract ---------------------------------------------------------------------
    async def publish(self, messages: Sequence[Message]) -> None:
        with self._s.lock:
            for message in messages:
                self._push(message)
            self._wake()

    async def delay(self, messages: Sequence[tuple[Message, float]]) -> None:
        with self._s.lock:
            for message, due in messages:
                heapq.heappush(self._s.delayed, (due, next(self._s.seq), message))
            self._wake()

    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout_s: float
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        loop = asyncio.get_running_loop()
        while True:
            with self._s.lock:
                taken = self._take(queues, max_count)
                if taken:
                    return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                fut: asyncio.Future[None] = loop.create_future()
                self._s.waiters.append((loop, fut))
                next_due = self._next_due()
            wait_s = remaining if next_due is None else min(remaining, max(0.0, next_due))
            try:
                await asyncio.wait_for(fut, wait_s)
            except TimeoutError:
                pass

    def _next_due(self) -> float | None:
        """Seconds until the next delayed message or lease deadline, if any."""
        s = self._s
        times = [s.delayed[0][0]] if s.delayed else []
        times += [deadline for _, deadline in s.in_flight.values()]
        return min(times) - time.time() if times else None

    async def park(self, parked: Sequence[tuple[Delivery, float]]) -> None:
        with self._s.lock:
            for d, due in parked:
                if self._s.in_flight.pop(d.tag, None) is not None:
                    heapq.heappush(self._s.delayed, (due, next(self._s.seq), d.message))
            self._wake()

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._s.lock:
            for d in deliveries:
                self._s.in_flight.pop(d.tag, None)

    async def requeue(self, deliveries: Sequence[Delivery]) -> None:
        with self._s.lock:
            for d in deliveries:
                if self._s.in_flight.pop(d.tag, None) is not None:
                    d.message.headers["redelivered"] = True
                    self._push(d.message, front=True)
            self._wake()

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        deadline = time.time() + self.lease_s
        with self._s.lock:
            for d in deliveries:
                if d.tag in self._s.in_flight:
                    self._s.in_flight[d.tag] = (d, deadline)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._s.lock:
            self._s.in_flight.pop(delivery.tag, None)
            letter = DeadLetter(uuid.uuid4().hex, delivery.queue, reason, time.time(),
                                delivery.message)
            self._s.dead[letter.id] = letter

    async def purge(self, queues: Sequence[str]) -> int:
        with self._s.lock:
            return sum(len(self._s.ready.pop(q, [])) for q in queues)

    async def queue_size(self, queue: str) -> int:
        with self._s.lock:
            self._promote_due(time.time())
            return len(self._s.ready.get(queue, []))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._s.lock:
            return list(self._s.dead.values())[:limit]

    async def requeue_dead(self, ids: Sequence[str] | None = None) -> int:
        with self._s.lock:
            chosen = list(self._s.dead) if ids is None else [i for i in ids if i in self._s.dead]
            for letter_id in chosen:
                letter = self._s.dead.pop(letter_id)
                letter.message.routing_key = letter.queue
                self._push(letter.message)
            self._wake()
            return len(chosen)

    async def purge_dead(self) -> int:
        with self._s.lock:
            count = len(self._s.dead)
            self._s.dead.clear()
            return count

    # -- broadcast ----------------------------------------------------------------------
    async def broadcast(self, exchange: Exchange, message: Message) -> None:
        with self._s.lock:
            for inbox in self._s.subscribers.get(exchange.name, ()):
                if exchange.kind == "fanout" or topic_match(inbox.binding, message.routing_key):
                    inbox.put(_copy(message, exchange.name))

    async def subscribe(self, exchange: Exchange, queue: str, binding: str = "#"
                        ) -> Subscription:
        s = self._s
        with s.lock:
            subscribers = s.subscribers.setdefault(exchange.name, [])
            holder: list[_Inbox] = []
            inbox = _Inbox(s, binding, lambda: _discard(subscribers, holder[0]))
            holder.append(inbox)
            subscribers.append(inbox)
            return inbox

    async def send_direct(self, exchange: str, routing_key: str, message: Message) -> None:
        with self._s.lock:
            inbox = self._s.mailboxes.get((exchange, routing_key))
            if inbox is not None:
                inbox.put(_copy(message, exchange))

    async def open_mailbox(self, exchange: str, routing_key: str, queue: str
                           ) -> Subscription:
        s = self._s
        key = (exchange, routing_key)
        with s.lock:
            inbox = _Inbox(s, routing_key, lambda: s.mailboxes.pop(key, None))
            s.mailboxes[key] = inbox
            return inbox

    async def store_revoked(self, ids: Sequence[str], ttl_s: float) -> None:
        until = time.time() + ttl_s
        with self._s.lock:
            for task_id in ids:
                self._s.revoked[task_id] = max(until, self._s.revoked.get(task_id, 0.0))

    async def load_revoked(self) -> dict[str, float]:
        now = time.time()
        with self._s.lock:
            revoked = self._s.revoked
            for task_id in [i for i, until in revoked.items() if until <= now]:
                del revoked[task_id]
            return dict(revoked)


def _copy(message: Message, exchange: str) -> Message:
    """Each subscriber gets its own Message (receivers may change headers)."""
    return Message(dict(message.headers), message.body, dict(message.properties),
                   message.content_type, message.content_encoding, exchange,
                   message.routing_key)


def _discard(items: list[Any], item: Any) -> None:
    if item in items:
        items.remove(item)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
