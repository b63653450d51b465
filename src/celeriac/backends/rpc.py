"""``rpc://`` result backend: results travel back to the caller as messages, as in Celery.

Needs a RabbitMQ broker (``amqp://``): the backend opens its own connection to it.

Worker side: ``store`` publishes the result meta (Celery's JSON, the same dict every
backend stores) to the default exchange with routing key = the task message's
``reply_to`` and ``correlation_id`` = the task id; delivery mode 1 unless the
``persistent`` option is true (Celery's ``result_persistent``); not mandatory, so a
caller that is gone costs nothing (Celery drops it the same way). The worker tells
the backend where to send through ``celeriac.backends.base.result_route``.

Caller side: one reply queue per process (a uuid, new after a fork), declared the way
Celery declares its ``thread_oid`` queue (durable, auto-delete, ``x-expires`` =
result_expires), so Celery workers reply to celeriac callers and the other way round.
The app puts it in ``reply_to`` of every task it sends, and the broker declares it
before the first send. Replies are consumed into one table per process that every
event loop's backend shares: ``get``/``wait`` read it. The consumer takes the reader's
fast path (a ``celeriac.reply.*`` tag); a sync ``get()`` waits in its own thread on an
Event the reply sets (``wait_blocking``: the bridge loop only starts the consumer).

As in Celery: a result is only visible to the process that sent the task, it lives in
that process's memory once received, and groups and chords are not supported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec

from celeriac import states
from celeriac.backends.base import Meta, ResultBackend, decode_meta, encode_meta, result_route
from celeriac.bridge import BRIDGE
from celeriac.brokers.amqp.headers import HeaderDecoder
from celeriac.brokers.amqp.link import parse_url
from celeriac.brokers.amqp.reader import FAST_TAG_PREFIX, Delivered
from celeriac.brokers.amqp.session import Session
from celeriac.brokers.amqp.wire import ConsumerChannel, Outgoing, open_channel
from celeriac.errors import ConfigurationError
from celeriac.protocol import Message

DEFAULT_EXPIRES_S = 86400.0

#: [(name, expires_s)] of this process's reply queue, once a task was sent with rpc://
_process_queue: list[tuple[str, float]] = []


def reply_queue(expires_s: float | None = None) -> str:
    """This process's reply queue name (a fresh one in a forked child). The first call
    fixes its ``x-expires`` (the app's result_expires)."""
    if not _process_queue:
        _process_queue.append((str(uuid.uuid4()), float(expires_s or DEFAULT_EXPIRES_S)))
    return _process_queue[0][0]


def reply_queue_declaration() -> tuple[str, dict[str, Any]] | None:
    """(name, arguments) of this process's reply queue, or None if it has none yet."""
    if not _process_queue:
        return None
    name, expires_s = _process_queue[0]
    return name, reply_queue_arguments(expires_s)


def reply_queue_arguments(expires_s: float | None) -> dict[str, Any]:
    """Celery's declaration of its reply queue: kombu Queue(expires=result_expires)."""
    return {"x-expires": int((expires_s or DEFAULT_EXPIRES_S) * 1000)}


#: who waits for a reply: a coroutine's future on its loop, or a sync caller's Event
_Wake = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | threading.Event


@dataclass
class _Table:
    """Replies received by any loop of this process, and who waits for which."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    metas: dict[str, Meta] = field(default_factory=dict)
    waiters: dict[str, list[_Wake]] = field(default_factory=dict)

    def put(self, task_id: str, meta: Meta) -> None:
        with self.lock:
            old = self.metas.get(task_id)
            if old is not None and old.get("status") == states.SUCCESS:
                return  # a stored SUCCESS is never overwritten
            self.metas[task_id] = meta
            if meta.get("status") not in states.READY_STATES:
                return
            waiting = self.waiters.pop(task_id, ())
        here = _running_loop()
        for wake in waiting:
            if isinstance(wake, threading.Event):
                wake.set()
                continue
            loop, fut = wake
            if loop is here:  # the usual case: the consumer runs on the waiter's loop
                _resolve(fut)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut)

    def ready_or_wait(self, task_id: str, wake: _Wake) -> Meta | None:
        """The READY meta if there is one; else ``wake`` is registered for it."""
        with self.lock:
            meta = self.metas.get(task_id)
            if meta is not None and meta.get("status") in states.READY_STATES:
                return meta
            self.waiters.setdefault(task_id, []).append(wake)
            return None

    def stop_waiting(self, task_id: str, wake: _Wake) -> Meta | None:
        """Unregister ``wake``; what the table holds for the task now."""
        with self.lock:
            waiting = self.waiters.get(task_id)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(wake)
                if not waiting:
                    del self.waiters[task_id]
            return self.metas.get(task_id)


_TABLE = _Table()


def _forget_after_fork() -> None:
    global _TABLE
    _process_queue.clear()
    _TABLE = _Table()


os.register_at_fork(after_in_child=_forget_after_fork)


class RPCBackend(ResultBackend):
    """See the module docstring."""

    schemes = ("rpc",)
    pickles = False  # results stay JSON (the reply reader decodes JSON)

    def __init__(self, url: str = "rpc://", options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        broker_url = str(self.options.get("broker_url") or "")
        if not broker_url.startswith(("amqp", "pyamqp")):
            raise ConfigurationError("rpc:// results need a RabbitMQ broker (amqp://); "
                                     f"the broker here is {broker_url.split('://')[0]!r}")
        self.session = Session(parse_url(broker_url, self.options.get("broker_options")))
        self.persistent = bool(self.options.get("persistent", False))
        self._consumer: AbstractChannel | None = None
        self._consumer_generation = -1
        self._decode_header = HeaderDecoder()
        self._connected = False

    async def connect(self) -> None:
        await self.session.connect()
        self._connected = True

    async def _connect_and_consume(self) -> None:
        if not self._connected:
            await self.connect()
        await self._consume()

    async def close(self) -> None:
        channel, self._consumer = self._consumer, None
        if channel is not None and not channel.is_closed:
            await channel.close()
        await self.session.close()

    # -- worker side ----------------------------------------------------------------------
    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        route = result_route.get()
        if route is None:  # not in a worker: the caller is this process
            await self._consume()
            route = (reply_queue(), task_id)
        reply_to, correlation_id = route
        if not reply_to:
            return
        properties = {"correlation_id": correlation_id or task_id,
                      "delivery_mode": 2 if self.persistent else 1, "priority": 0}
        message = Message(headers={}, body=encode_meta(meta), properties=properties,
                          exchange="", routing_key=str(reply_to))
        await self.session.publish([Outgoing("", str(reply_to), message, mandatory=False)])

    # -- caller side ----------------------------------------------------------------------
    def _consuming(self) -> bool:
        channel = self._consumer
        return channel is not None and not channel.is_closed and \
            self._consumer_generation == self.session.generation

    async def _consume(self) -> None:
        """Consume this process's reply queue on this loop (again after a reconnect).
        On a ``ConsumerChannel`` with a ``celeriac.`` tag, so replies take the reader's
        fast path (amqp_reader): no Task and no pamqp objects per reply."""
        publisher = await self.session.ready()
        if self._consuming():
            return
        reply_queue()
        declaration = reply_queue_declaration()
        assert declaration is not None
        await declare_reply_queue(publisher, *declaration)
        conn = self.session.conn
        assert conn is not None
        channel = await open_channel(conn, ConsumerChannel, confirms=False)
        channel.on_delivered = self._on_delivered
        channel.on_delivery = _on_delivery
        tag = f"{FAST_TAG_PREFIX}reply.{uuid.uuid4().hex[:12]}"
        await channel.basic_consume(reply_queue(), _on_reply, no_ack=True, consumer_tag=tag)
        self._consumer, self._consumer_generation = channel, self.session.generation

    def _on_delivered(self, run: list[Delivered]) -> None:
        for delivered in run:
            try:
                properties = self._decode_header(delivered.header)[3]
            except Exception:  # unreadable properties: the body still names the task
                properties = {}
            _take_reply(delivered.body, properties.get("correlation_id"))

    async def _drain(self) -> None:
        """Take what waits in the reply queue now. On the consumer's own channel, so
        every reply RabbitMQ pushed before the get-empty has been handled first."""
        await self._consume()
        channel = self._consumer
        assert channel is not None
        while True:
            got = await channel.basic_get(reply_queue(), no_ack=True)
            if not isinstance(got.delivery, spec.Basic.GetOk):
                break
            await _on_reply(got)
        await asyncio.sleep(0)  # pushed replies scheduled before the get-empty run now

    async def get(self, task_id: str) -> Meta | None:
        await self._drain()
        with _TABLE.lock:
            return _TABLE.metas.get(task_id)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        await self._drain()
        with _TABLE.lock:
            return {t: _TABLE.metas[t] for t in task_ids if t in _TABLE.metas}

    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        # No drain (a basic.get round trip) here, unlike get(): with the consumer live,
        # a reply already received is in the table and a later one wakes the waiter.
        await self._consume()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        wake = (loop, fut)
        meta = _TABLE.ready_or_wait(task_id, wake)
        if meta is not None:
            return meta
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            pass
        return _ready(_TABLE.stop_waiting(task_id, wake))

    def wait_blocking(self, task_id: str, timeout_s: float | None) -> Meta | None:
        """``wait`` for sync callers, in their own thread: the reply consumer runs on
        the bridge loop and sets the caller's Event, no coroutine in between."""
        if not self._consuming():
            BRIDGE.run(self._connect_and_consume())
        wake = threading.Event()
        meta = _TABLE.ready_or_wait(task_id, wake)
        if meta is not None:
            return meta
        wake.wait(timeout_s)
        return _ready(_TABLE.stop_waiting(task_id, wake))

    def close_blocking(self) -> None:
        if BRIDGE.started and self.session.conn is not None:
            BRIDGE.run(self.close())

    async def forget(self, task_id: str) -> None:
        with _TABLE.lock:
            _TABLE.metas.pop(task_id, None)


async def declare_reply_queue(channel: AbstractChannel, name: str,
                              arguments: dict[str, Any]) -> None:
    """Declare a reply queue exactly as Celery does (durable, auto-delete, x-expires)."""
    await channel.queue_declare(name, durable=True, auto_delete=True, arguments=arguments)


async def _on_reply(message: DeliveredMessage) -> None:
    """A reply through aiormq's stock path (basic.get in ``_drain``)."""
    _take_reply(message.body, message.header.properties.correlation_id)


def _on_delivery(frame: Any, props: spec.Basic.Properties, body: bytes) -> None:
    """A pushed reply on a connection with aiormq's stock reader (pamqp objects)."""
    _take_reply(body, props.correlation_id)


def _take_reply(body: bytes, correlation_id: str | None) -> None:
    try:
        meta = decode_meta(body)
    except Exception:  # not a result: nothing waits for it
        return
    task_id = str(correlation_id or meta.get("task_id") or "")
    if task_id:
        _TABLE.put(task_id, meta)


def _ready(meta: Meta | None) -> Meta | None:
    return meta if meta is not None and meta.get("status") in states.READY_STATES else None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


__all__ = ["RPCBackend", "declare_reply_queue", "reply_queue", "reply_queue_arguments",
           "reply_queue_declaration"]
