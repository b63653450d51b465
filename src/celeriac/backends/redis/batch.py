"""Scripts of many callers in one Redis round trip: the result backend's writes.

A worker that finishes many short tasks stores a result (and, for a chord's header
task, joins its part) per task. Sent one by one, each is a round trip and a socket
write of its own, and the task's ack waits for it. ``ScriptBatcher.eval`` queues the
script; every call made while no batch is on the wire goes out in the next one: one
write, the replies read in order, each caller woken with its own reply (or its own
error). While a batch is in flight new calls gather for the next, so a busy worker
sends fewer, larger writes and an idle one sends each call at once (no timer).

A lost connection retries the whole batch (``RedisConnection.retry``): the scripts
sent this way are idempotent (a stored SUCCESS is kept, a chord part counts once).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from functools import partial
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from celeriac.brokers.redis.connection import RedisConnection

#: the most scripts in one write (a bound on the request's size, not a timer)
MAX_BATCH = 256

_Call = tuple[str, Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class ScriptBatcher:
    """Queues ``EVALSHA`` calls and sends them in batches on one lane of a connection."""

    def __init__(self, redis: RedisConnection, lane: str = "main") -> None:
        self.redis = redis
        self.lane = lane
        self._pending: list[_Call] = []
        self._shas: dict[str, str] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def eval(self, source: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """The script's reply, sent with the other calls of this moment."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((source, keys, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                replies = await self.redis.retry(partial(self._send, batch))
            except BaseException as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    self._fail_pending(exc)
                    raise
                continue
            for (*_, future), reply in zip(batch, replies, strict=True):
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, []
        for *_, future in pending:
            if not future.done():
                future.set_exception(exc)

    async def _send(self, batch: list[_Call]) -> list[Any]:
        """One write of the batch; scripts Redis does not know (first use, or a restart
        flushed them) are loaded and those calls sent again."""
        lane = self.redis.lane(self.lane)
        replies = await lane.execute_each(*(self._command(source, keys, args)
                                            for source, keys, args, _ in batch))
        missing = sorted({i for i, reply in enumerate(replies)
                          if isinstance(reply, NoScriptError)})
        if missing:
            sources = sorted({batch[i][0] for i in missing})
            await lane.execute(*(("SCRIPT", "LOAD", source) for source in sources))
            again = await lane.execute_each(*(self._command(*batch[i][:3]) for i in missing))
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    def _command(self, source: str, keys: Sequence[Any], args: Sequence[Any]
                 ) -> tuple[Any, ...]:
        sha = self._shas.get(source)
        if sha is None:  # Redis names a script by its SHA-1: loaded on NOSCRIPT
            sha = self._shas[source] = hashlib.sha1(source.encode(),
                                                          usedforsecurity=False).hexdigest()
        return ("EVALSHA", sha, len(keys), *keys, *args)


__all__ = ["MAX_BATCH", "ScriptBatcher"]
