"""``app.control``: Celery's remote control client, for celeriac and Celery workers.

``broadcast`` sends a pidbox request (control/wire.py) and, when a reply is wanted,
reads the replies from this client's mailbox ``<oid>.reply.celery.pidbox`` until
``timeout`` seconds pass or ``limit`` replies came (the number of destinations when
they are named). Replies are ``[{hostname: reply}, ...]`` as in Celery; ``inspect()``
methods merge them into ``{hostname: reply}`` (None when nobody answered).

``revoke`` does more than Celery's: it writes the ids to the broker's revoked store
(control/revoked.py), so workers started later refuse them too, and marks tasks that
have no state yet REVOKED in the result backend.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac import signing, states
from celeriac.backends.base import exception_to_result, make_meta
from celeriac.control import wire
from celeriac.control.revoked import revoked_ttl_s
from celeriac.errors import DecodeError, TaskRevokedError

if TYPE_CHECKING:
    from celeriac.app import Celery

Replies = list[dict[str, Any]]


class Control:
    """See the module docstring. Sync methods run on the app's bridge loop; each has an
    ``a``-prefixed coroutine twin where it matters (``abroadcast``)."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.oid = uuid.uuid4().hex
        self.clock = wire.LamportClock()

    @property
    def namespace(self) -> str:
        return str(self.app.conf.control_exchange or "celery")

    def inspect(self, destination: Sequence[str] | None = None, timeout: float = 1.0,
                callback: Callable[[dict[str, Any]], None] | None = None,
                connection: Any = None, app: Any = None, limit: int | None = None,
                pattern: str | None = None, matcher: str | None = None) -> Inspect:
        """Celery's arguments, in Celery's order (``connection`` and ``app`` are
        accepted and not used: the app's broker is)."""
        return Inspect(self, destination, timeout, pattern, matcher, limit, callback)

    # -- sending ------------------------------------------------------------------------
    def broadcast(self, command: str, arguments: dict[str, Any] | None = None,
                  destination: Sequence[str] | None = None, reply: bool = False,
                  timeout: float = 1.0, limit: int | None = None,
                  callback: Callable[[dict[str, Any]], None] | None = None,
                  pattern: str | None = None, matcher: str | None = None,
                  **_: Any) -> Replies | None:
        coro = self.abroadcast(command, arguments, destination, reply, timeout, limit,
                               callback, pattern, matcher)
        return self.app.run_sync(coro, timeout + 30.0)

    async def abroadcast(self, command: str, arguments: dict[str, Any] | None = None,
                         destination: Sequence[str] | None = None, reply: bool = False,
                         timeout: float = 1.0, limit: int | None = None,
                         callback: Callable[[dict[str, Any]], None] | None = None,
                         pattern: str | None = None, matcher: str | None = None
                         ) -> Replies | None:
        if destination is not None and not isinstance(destination, (list, tuple)):
            raise ValueError(f"destination must be a list/tuple not {type(destination)}")
        broker = await self.app.clients.broker()
        ns = self.namespace
        ticket = uuid.uuid4().hex if reply else None
        # a reply queue per request: two requests in flight from one client (threads)
        # sharing one would take, or unbind, each other's replies (kombu's oid is per
        # thread for the same reason)
        oid = uuid.uuid4().hex if reply else self.oid
        mailbox = None
        if reply:
            mailbox = await broker.open_mailbox(wire.reply_exchange(ns), oid,
                                                wire.reply_queue(oid, ns))
        try:
            message = wire.request_message(
                command, dict(arguments or {}), clock=self.clock.forward(),
                destination=list(destination) if destination else None, ticket=ticket,
                reply_to={"exchange": wire.reply_exchange(ns), "routing_key": oid},
                timeout_s=timeout, pattern=pattern, matcher=matcher)
            key = self.app.conf.security_key
            if key:
                signing.sign(message, key)
            await broker.broadcast(wire.pidbox_exchange(ns), message)
            if mailbox is None:
                return None
            if limit is None and destination:
                limit = len(destination)
            return await _collect(mailbox, ticket, timeout, limit, callback, self.clock)
        finally:
            if mailbox is not None:
                await mailbox.close()

    def _call(self, command: str, arguments: dict[str, Any], reply: bool = False,
              **kwargs: Any) -> Replies | None:
        return self.broadcast(command, arguments, reply=reply, **kwargs)

    # -- commands -----------------------------------------------------------------------
    def ping(self, destination: Sequence[str] | None = None, timeout: float = 1.0,
             **kwargs: Any) -> Replies:
        return self.broadcast("ping", {}, destination, reply=True, timeout=timeout,
                              **kwargs) or []

    def revoke(self, task_id: str | Sequence[str], destination: Sequence[str] | None = None,
               terminate: bool = False, signal: str = "SIGTERM", **kwargs: Any
               ) -> Replies | None:
        ids = [task_id] if isinstance(task_id, str) else [str(i) for i in task_id]
        self.app.run_sync(self._persist_revoke(ids), 60.0)
        return self._call("revoke", {"task_id": ids, "terminate": terminate,
                                     "signal": signal}, destination=destination, **kwargs)

    async def _persist_revoke(self, ids: list[str]) -> None:
        """The broker's revoked store, then REVOKED for ids without a state yet."""
        broker = await self.app.clients.broker()
        if broker.supports_broadcast:
            await broker.store_revoked(ids, revoked_ttl_s(self.app))
        try:
            backend = await self.app.clients.backend()
            expires_s = self.app.conf.seconds("result_expires")
            for task_id in ids:
                meta = await backend.get(task_id)
                if meta is None or meta.get("status") == states.PENDING:
                    exc = TaskRevokedError("revoked")
                    await backend.store(task_id, make_meta(task_id, states.REVOKED,
                                                           exception_to_result(exc)), expires_s)
        except NotImplementedError:  # no result backend
            pass

    def terminate(self, task_id: str | Sequence[str], destination: Sequence[str] | None = None,
                  signal: str = "SIGTERM", **kwargs: Any) -> Replies | None:
        return self.revoke(task_id, destination, terminate=True, signal=signal, **kwargs)

    def rate_limit(self, task_name: str, rate_limit: Any,
                   destination: Sequence[str] | None = None, **kwargs: Any) -> Replies | None:
        return self._call("rate_limit", {"task_name": task_name, "rate_limit": rate_limit},
                          destination=destination, **kwargs)

    def time_limit(self, task_name: str, soft: float | None = None, hard: float | None = None,
                   destination: Sequence[str] | None = None, **kwargs: Any) -> Replies | None:
        return self._call("time_limit", {"task_name": task_name, "soft": soft, "hard": hard},
                          destination=destination, **kwargs)

    def add_consumer(self, queue: str, exchange: str | None = None,
                     exchange_type: str = "direct", routing_key: str | None = None,
                     options: dict[str, Any] | None = None,
                     destination: Sequence[str] | None = None, **kwargs: Any
                     ) -> Replies | None:
        return self._call("add_consumer", {"queue": queue, "exchange": exchange,
                                           "exchange_type": exchange_type,
                                           "routing_key": routing_key, **(options or {})},
                          destination=destination, **kwargs)

    def cancel_consumer(self, queue: str, destination: Sequence[str] | None = None,
                        **kwargs: Any) -> Replies | None:
        return self._call("cancel_consumer", {"queue": queue}, destination=destination,
                          **kwargs)

    def pool_grow(self, n: int = 1, destination: Sequence[str] | None = None,
                  **kwargs: Any) -> Replies | None:
        return self._call("pool_grow", {"n": n}, destination=destination, **kwargs)

    def pool_shrink(self, n: int = 1, destination: Sequence[str] | None = None,
                    **kwargs: Any) -> Replies | None:
        return self._call("pool_shrink", {"n": n}, destination=destination, **kwargs)

    def shutdown(self, destination: Sequence[str] | None = None, **kwargs: Any
                 ) -> Replies | None:
        return self._call("shutdown", {}, destination=destination, **kwargs)

    def enable_events(self, destination: Sequence[str] | None = None, **kwargs: Any
                      ) -> Replies | None:
        return self._call("enable_events", {}, destination=destination, **kwargs)

    def disable_events(self, destination: Sequence[str] | None = None, **kwargs: Any
                       ) -> Replies | None:
        return self._call("disable_events", {}, destination=destination, **kwargs)

    def purge(self) -> int:
        """Delete every waiting message of the app's queues; returns how many."""
        conf = self.app.conf
        queues = [conf.task_default_queue]
        for item in conf.task_queues or ():
            name = item if isinstance(item, str) else getattr(item, "name", None)
            if name and name not in queues:
                queues.append(str(name))

        async def purge() -> int:
            broker = await self.app.clients.broker()
            return await broker.purge(queues)
        return self.app.run_sync(purge(), 60.0)


async def _collect(mailbox: Any, ticket: str | None, timeout_s: float, limit: int | None,
                   callback: Callable[[dict[str, Any]], None] | None,
                   clock: wire.LamportClock) -> Replies:
    replies: Replies = []
    deadline = time.monotonic() + timeout_s
    while limit is None or len(replies) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for message in await mailbox.get(left):
            headers = message.headers if isinstance(message.headers, dict) else {}
            if headers.get("ticket", ticket) != ticket:
                continue  # an answer to an earlier request
            clock.adjust(headers.get("clock"))
            try:
                body = wire.decode_json(message)
            except DecodeError:
                continue
            if not isinstance(body, dict):
                continue
            if callback is not None:
                callback(body)
            replies.append(body)
        await asyncio.sleep(0)
    return replies


def flatten_reply(reply: Replies) -> dict[str, Any]:
    """``[{host: reply}, ...]`` -> ``{host: reply}`` (Celery's, without its warning
    about duplicate node names: the last reply of a name wins)."""
    merged: dict[str, Any] = {}
    for item in reply:
        merged.update(item)
    return merged


class Inspect:
    """``app.control.inspect()``: read-only commands, replies merged by hostname.
    ``_request(name, **arguments)`` sends any command, an application's own too
    (control/panel.py), as Celery's does."""

    def __init__(self, control: Control, destination: Sequence[str] | None, timeout: float,
                 pattern: str | None, matcher: str | None, limit: int | None,
                 callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.control, self.destination, self.timeout = control, destination, timeout
        self.pattern, self.matcher, self.limit = pattern, matcher, limit
        self.callback = callback

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        replies = self.control.broadcast(
            command, arguments, self.destination, reply=True, timeout=self.timeout,
            limit=self.limit, callback=self.callback, pattern=self.pattern,
            matcher=self.matcher) or []
        return flatten_reply(replies) or None

    def ping(self) -> dict[str, Any] | None:
        return self._request("ping")

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("active", safe=safe) if safe else self._request("active")

    def reserved(self) -> dict[str, Any] | None:
        return self._request("reserved")

    def scheduled(self) -> dict[str, Any] | None:
        return self._request("scheduled")

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._request("registered", taskinfoitems=list(taskinfoitems) or None)

    registered_tasks = registered

    def stats(self) -> dict[str, Any] | None:
        return self._request("stats")

    def active_queues(self) -> dict[str, Any] | None:
        return self._request("active_queues")

    def revoked(self) -> dict[str, Any] | None:
        return self._request("revoked")

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        return self._request("conf", with_defaults=with_defaults)

    def query_task(self, *ids: Any) -> dict[str, Any] | None:
        if len(ids) == 1 and isinstance(ids[0], (list, tuple)):
            ids = tuple(ids[0])
        return self._request("query_task", ids=[str(i) for i in ids])

    def report(self) -> dict[str, Any] | None:
        return self._request("report")

    def clock(self) -> dict[str, Any] | None:
        return self._request("clock")
