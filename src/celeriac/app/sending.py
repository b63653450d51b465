"""The send path of an app: options and routing into a Message, then the broker.

``Task.apply_async`` -> ``Celery.send_task`` -> ``_build_message`` (the task's own
options, its route, Celery's defaults; ``protocol.build_task_message``) -> the broker's
``publish`` (or ``delay`` for a future eta): from the caller's thread where the broker
can (``publish_blocking``), else on the bridge loop; ``asend_task`` on the caller's
loop. ``send_many`` sends a batch per round trip. A send keeps trying to reach the
broker for its retry policy's window (publish_retry.py). ``Sending`` is a part of
``Celery`` (app/base.py); it holds no state of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from celeriac import publish_retry, signals
from celeriac.bridge import BlockingProducer
from celeriac.brokers import Broker
from celeriac.clients import Clients
from celeriac.config import Config
from celeriac.context import current_request
from celeriac.errors import BrokerConnectionError, QueueNotFound
from celeriac.protocol import (
    CallBatch,
    Message,
    build_task_message,
    scheduled,
    task_ids,
    utcnow,
)
from celeriac.result import AsyncResult
from celeriac.routing import Router
from celeriac.send_defaults import SendDefaults
from celeriac.serialization import PICKLE, loads
from celeriac.signing import sign

if TYPE_CHECKING:
    from celeriac.app.base import Celery

T = TypeVar("T")

#: an eta closer than this is sent as ready (workers run it at once anyway)
_ETA_SLACK_S = 0.001
#: one call in a bulk send: positional arguments and keyword arguments (or None)
Call = tuple[Sequence[Any], Mapping[str, Any] | None]
#: a task's own options that apply when apply_async does not give them
_TASK_OPTIONS = ("queue", "priority", "expires", "time_limit", "soft_time_limit",
                 "ignore_result", "serializer")


logger = logging.getLogger("celeriac.app")


class Sending:
    """The send path of ``Celery`` (see the module docstring)."""

    conf: Config
    clients: Clients

    def send_defaults(self) -> SendDefaults:
        raise NotImplementedError  # Celery's (app/base.py)

    def _blocking_producer(self) -> BlockingProducer | None:
        raise NotImplementedError  # Celery's (app/base.py)

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        raise NotImplementedError  # Celery's (app/base.py)

    def _app(self) -> Celery:
        return self  # type: ignore[return-value]  # Sending is only ever a Celery

    def _build_message(self, name: str, args: Any, kwargs: Any, task_type: Any,
                       options: dict[str, Any]) -> tuple[Message, float | None]:
        """Apply routing and defaults; return the message and its due time, if delayed."""
        d = self.send_defaults()
        _fill_options(d, name, args, kwargs, task_type, options)
        get = options.get
        queue = get("queue") or d.queue
        if not isinstance(queue, str):
            queue = getattr(queue, "name", str(queue))
        if d.declared_queues is not None and queue not in d.declared_queues:
            raise QueueNotFound(f"Queue {queue!r} missing from task_queues "
                                f"(task_create_missing_queues is off)")
        eta = expires = None
        now = None
        if get("eta") is not None or get("countdown") is not None or get("expires") is not None:
            now = utcnow()
            eta = _when(get("eta"), get("countdown"), now, d.naive_tz)
            expires = _when(get("expires"), None, now, d.naive_tz)
        parent = current_request.get()
        priority = get("priority")
        if priority is None and d.inherit_priority and parent.id is not None:
            priority = parent.delivery_info.get("priority")
        if priority is None:
            priority = d.priority
        reply_to = get("reply_to")
        if not reply_to and d.rpc_results:  # tasks name this process's reply queue
            from celeriac.backends.rpc import reply_queue

            reply_to = reply_queue(d.result_expires)
        message = build_task_message(
            name, args or (), kwargs or {},
            task_id=get("task_id"),
            queue=queue,
            exchange=get("exchange") or d.exchange,
            routing_key=get("routing_key") if get("exchange") else None,
            serializer=get("serializer") or d.serializer,
            eta=eta, expires=expires,
            retries=int(get("retries") or 0),
            time_limit=get("time_limit") or d.time_limit,
            soft_time_limit=get("soft_time_limit") or d.soft_time_limit,
            priority=priority,
            root_id=get("root_id") or parent.root_id,
            parent_id=get("parent_id") or parent.id,
            group_id=get("group_id"),
            group_index=get("group_index"),
            ignore_result=bool(get("ignore_result") or d.ignore_result),
            reply_to=reply_to,
            shadow=get("shadow"),
            headers=get("headers"),
            callbacks=_signatures(get("link")),
            errbacks=_signatures(get("link_error")),
            chain=get("chain"),
            chord=get("chord"),
            compression=get("compression") or d.compression,
        )
        if signals.before_task_publish._receivers:  # before signing: it may add headers
            _signal_publish(signals.before_task_publish, message, declare=[],
                            retry_policy=None)
        if d.security_key:  # workers with the key dead-letter what is not signed
            sign(message, d.security_key)
        due = None
        if eta is not None and now is not None and (eta - now).total_seconds() > _ETA_SLACK_S:
            due = eta.timestamp()
        return message, due

    def send_task(self, name: str, args: Any = None, kwargs: Any = None,
                  **options: Any) -> AsyncResult[Any]:
        """Send a task by name (it need not be registered here); returns its AsyncResult."""
        task_type = options.pop("task_type", None)
        window_s = self._publish_window(options)
        message, due = self._build_message(name, args, kwargs, task_type, options)
        self.publish_many_blocking([message], due, window_s=window_s)
        if signals.after_task_publish._receivers:
            _signal_publish(signals.after_task_publish, message)
        return AsyncResult(message.task_id, app=self._app())

    def send_many(self, name: str, calls: Iterable[Call], *, batch_size: int = 1000,
                  **options: Any) -> list[AsyncResult[Any]]:
        """Send many calls of one task with the same options, ``batch_size`` messages per
        broker round trip: ``app.send_many("add", [((1, 2), None), ((3, 4), {})])``."""
        task_type = options.pop("task_type", None)
        window_s = self._publish_window(options)
        results: list[AsyncResult[Any]] = []
        for batch in _batches(calls, batch_size):
            messages, due = self._build_many(name, batch, task_type, options)
            self.publish_many_blocking(messages, due, window_s=window_s)
            results.extend(AsyncResult(i, app=self._app()) for i in task_ids(messages))
        return results

    async def asend_many(self, name: str, calls: Iterable[Call], *, batch_size: int = 1000,
                         **options: Any) -> list[AsyncResult[Any]]:
        """Awaitable ``send_many`` (publishes on the caller's event loop)."""
        task_type = options.pop("task_type", None)
        window_s = self._publish_window(options)
        results: list[AsyncResult[Any]] = []
        for batch in _batches(calls, batch_size):
            messages, due = self._build_many(name, batch, task_type, options)
            await self.publish_many(messages, due, window_s=window_s)
            results.extend(AsyncResult(i, app=self._app()) for i in task_ids(messages))
        return results

    def _build_many(self, name: str, calls: list[Call], task_type: Any,
                    options: dict[str, Any]) -> tuple[Sequence[Message], float | None]:
        """The messages for a batch: options are resolved once, for the first call, and
        the others differ only in id and arguments (a ``CallBatch``)."""
        if options.get("task_id"):
            raise TypeError("send_many: task_id cannot be shared by many calls")
        per_call = self.conf.task_routes or any(  # compressed: each body on its own
            options.get(k) for k in ("link", "link_error", "chain", "chord", "compression")
        ) or self.send_defaults().compression
        args, kwargs = calls[0]
        first, due = self._build_message(name, args, kwargs, task_type, dict(options))
        if per_call:  # routes may look at the arguments; signatures live in each body
            messages = [first] + [self._build_message(name, a, k, task_type, dict(options))[0]
                                  for a, k in calls[1:]]
            return messages, due
        serializer = "pickle" if first.content_type == PICKLE else "json"
        batch = CallBatch(first, [(a, dict(k) if k else None) for a, k in calls[1:]],
                          serializer)
        key = self.conf.security_key
        if not key:
            return batch, due
        signed = list(batch)  # the first is signed already, by _build_message
        for message in signed[1:]:
            sign(message, key)
        return signed, due

    def publish_blocking(self, message: Message, due: float | None = None) -> None:
        """``publish`` for sync callers: from this thread where the broker can, else on
        the bridge loop. Returns once the broker has the message."""
        self.publish_many_blocking([message], due)

    def publish_many_blocking(self, messages: Sequence[Message], due: float | None, *,
                              window_s: float | None = None) -> None:
        """Publish a batch from a sync caller; returns once the broker has all of it.
        ``window_s``: seconds to keep trying to reach the broker (publish_retry.py);
        None: the app's ``task_publish_retry``/``task_publish_retry_policy``."""
        producer = self._blocking_producer()
        if window_s is None:
            window_s = self.send_defaults().publish_window_s
        if producer is None:  # publish_many sends the task-sent events too
            self.run_sync(self.publish_many(messages, due, window_s=window_s))
            return
        if window_s is None:  # the broker's own window: no ContextVar to set
            self._produce(producer, messages, due)
        else:
            with publish_retry.covering(window_s):
                self._produce(producer, messages, due)
        if self.send_defaults().sent_event:
            self.run_sync(self._sent_events(messages))

    def _produce(self, producer: BlockingProducer, messages: Sequence[Message],
                 due: float | None) -> None:
        if due is None or not self.send_defaults().delay_store:
            producer.publish_blocking(messages)
        else:
            producer.delay_blocking(scheduled(messages, due))

    def _publish_window(self, options: dict[str, Any]) -> float | None:
        """apply_async's ``retry``/``retry_policy`` (taken out of options) over the
        app's settings: how long this send keeps trying to reach the broker."""
        retry, policy = options.pop("retry", None), options.pop("retry_policy", None)
        d = self.send_defaults()
        if retry is None and policy is None:
            return d.publish_window_s
        return publish_retry.window_for(d.publish_retry if retry is None else retry,
                                        policy if policy is not None
                                        else d.publish_retry_policy)

    def wait_for_publishes(self, timeout: float | None = None) -> None:
        """Wait until the broker has answered every sync publish from this process and
        raise what it refused (``UnconfirmedPublish``). Sync ``.delay()`` on Redis and
        RabbitMQ returns once written, with up to ``confirm_window`` answers outstanding;
        this is the point to be sure, e.g. before a script reports success. Runs at exit
        too."""
        producer = self._blocking_producer()
        if producer is not None:
            producer.flush_blocking(timeout)

    async def asend_task(self, name: str, args: Any = None, kwargs: Any = None,
                         **options: Any) -> AsyncResult[Any]:
        """Awaitable ``send_task`` (publishes on the caller's event loop)."""
        task_type = options.pop("task_type", None)
        window_s = self._publish_window(options)
        message, due = self._build_message(name, args, kwargs, task_type, options)
        await self.publish_many([message], due, window_s=window_s)
        if signals.after_task_publish._receivers:
            _signal_publish(signals.after_task_publish, message)
        return AsyncResult(message.task_id, app=self._app())

    async def publish(self, message: Message, due: float | None = None) -> None:
        """Publish one message now, or into the broker's delay store until ``due``."""
        await self.publish_many([message], due)

    async def publish_many(self, messages: Sequence[Message], due: float | None, *,
                           window_s: float | None = None) -> None:
        """Publish a batch now, or into the broker's delay store until ``due``;
        ``window_s`` as in ``publish_many_blocking``."""
        if window_s is None:
            window_s = self.send_defaults().publish_window_s
        with publish_retry.covering(window_s):
            broker = await self._connected_broker(window_s)
            if due is None or not self.send_defaults().delay_store:
                await broker.publish(messages)
            else:
                await broker.delay(scheduled(messages, due))
        if self.send_defaults().sent_event:
            await self._sent_events(messages)

    async def _sent_events(self, messages: Sequence[Message]) -> None:
        """``task-sent`` events (``task_send_sent_event``); a failure to send them is
        logged, not raised: the tasks themselves were sent."""
        from celeriac.events.sent import send_sent_events

        try:
            await send_sent_events(await self.clients.broker(), messages,
                                   self.control.clock,  # type: ignore[attr-defined]
                                   str(self.conf.event_exchange or "celeryev"))
        except Exception as exc:
            logger.warning("sending task-sent events failed: %s", exc)

    async def _connected_broker(self, window_s: float | None) -> Broker:
        """This loop's broker; under a retry policy a refused first connection is tried
        again (backoff) until the policy's window passes, then raised."""
        if window_s is None:
            return await self.clients.broker()
        deadline = time.monotonic() + window_s
        pause = 0.05
        while True:
            try:
                return await self.clients.broker()
            except BrokerConnectionError:
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)



def _signal_publish(signal: Any, message: Message, **extra: Any) -> None:
    """before/after_task_publish as Celery sends them: sender the task name, the body
    as (args, kwargs, embed), the headers dict itself (receivers may add to it)."""
    try:
        body = loads(message.body, message.content_type, frozenset({message.content_type}))
    except Exception:  # a receiver still learns of the publish
        body = message.body
    signal.send(message.task_name, body=body, exchange=message.exchange,
                routing_key=message.routing_key, headers=message.headers,
                properties=message.properties, **extra)


def _batches(calls: Iterable[Call], size: int) -> Iterator[list[Call]]:
    """``(args, kwargs)`` pairs in lists of at most ``size``."""
    batch: list[Call] = []
    for args, kwargs in calls:
        batch.append((args, kwargs))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _fill_options(d: SendDefaults, name: str, args: Any, kwargs: Any, task_type: Any,
                  options: dict[str, Any]) -> None:
    """Where apply_async gave no value: the task's own options, then its route's."""
    if task_type is not None:
        for key in _TASK_OPTIONS:
            value = getattr(task_type, key, None)
            if value is not None and options.get(key) is None:
                options[key] = value
    if d.routes:
        route = Router(d.routes).lookup(name, args, kwargs, options, task_type)
        for key, value in (route or {}).items():
            if options.get(key) is None:
                options[key] = value


def _when(value: Any, countdown: float | None, now: dt.datetime,
          naive_tz: dt.tzinfo = dt.UTC) -> dt.datetime | None:
    """eta/expires as an aware datetime: from a countdown, seconds, or a date (a naive
    one is in ``naive_tz``: send_defaults.naive_timezone)."""
    if countdown is not None:
        return now + dt.timedelta(seconds=float(countdown))
    if isinstance(value, (int, float)):
        return now + dt.timedelta(seconds=float(value))
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=naive_tz)
    return value if isinstance(value, dt.datetime) else None


def _signatures(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    return [dict(item) for item in items]


