"""One RabbitMQ connection kept alive: reconnects with backoff, publishes with confirms.

``Session`` owns the connection and its confirm-mode publishing channel. Any caller
that finds them dead calls ``ready()``, which reconnects (0.1 s, 0.2 s ... backoff, up
to ``retry_timeout`` seconds) and bumps ``generation`` so users of the old connection
(the consumer channel, declaration caches) know to start again. The loss is logged
once, the recovery once. Refused logins and unknown vhosts are not retried.

``publish`` writes a whole batch of pre-encoded frames in one go and waits for
RabbitMQ's confirms of that batch only: concurrent batches pipeline, and no message
pays a round trip of its own. A nack or a basic.return raises ``PublishError``; a
connection lost before the confirms came re-sends what was not confirmed on the new
connection (at-least-once: a message whose confirm was lost may be stored twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiormq.channel import Channel
from aiormq.connection import Connection
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed

from celeriac import publish_retry
from celeriac.brokers.amqp.batch import OutgoingBatch
from celeriac.brokers.amqp.link import (
    ConnectionLost,
    ConnParams,
    backoff_s,
    close_connection,
    is_alive,
    open_connection,
    write_frames,
)
from celeriac.brokers.amqp.reader import install as install_bulk_reader
from celeriac.brokers.amqp.topology import Declarer
from celeriac.brokers.amqp.wire import (
    ConfirmTracker,
    Outgoing,
    PublishChannel,
    encode_publish,
    open_channel,
)
from celeriac.errors import PublishError

log = logging.getLogger("celeriac.brokers.amqp")

install_bulk_reader()  # deliveries parsed straight from the socket's bytes

DeclareFn = Callable[[PublishChannel], Awaitable[None]]
#: bytes of frames written per batch before yielding to the writer
_CHUNK_BYTES = 1 << 20


class Session:
    """See the module docstring."""

    def __init__(self, params: ConnParams, retry_timeout_s: float = 30.0) -> None:
        self.params = params
        self.retry_timeout_s = retry_timeout_s
        self.conn: Connection | None = None
        self.publisher: PublishChannel | None = None
        self.generation = 0
        self.declarer = Declarer()
        self._reconnecting: asyncio.Lock | None = None
        self._write_lock: asyncio.Lock | None = None
        self._lost_logged = False
        self._closed = False

    # -- connection -------------------------------------------------------------------
    async def connect(self) -> None:
        """First connection: one attempt, a clear error if it fails."""
        self._reconnecting = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        await self._open()

    async def _open(self) -> None:
        conn = await open_connection(self.params)
        try:
            publisher = await open_channel(conn, PublishChannel, confirms=True)
        except Exception as exc:
            await close_connection(conn)
            raise ConnectionLost(f"RabbitMQ at {self.params.masked}: opening a channel "
                                 f"failed: {exc}") from exc
        tracker = ConfirmTracker()
        publisher.tracker = tracker
        publisher.closing.add_done_callback(lambda _: tracker.fail_all(ConnectionLost(
            f"RabbitMQ at {self.params.masked} closed the channel before confirming")))
        self.conn, self.publisher = conn, publisher
        self.generation += 1
        self.declarer.reset()

    def alive(self) -> bool:
        return is_alive(self.conn) and self.publisher is not None \
            and not self.publisher.is_closed

    async def ready(self, deadline: float | None = None) -> PublishChannel:
        """The live publishing channel, reconnecting first if the connection is gone."""
        if self.alive():
            assert self.publisher is not None
            return self.publisher
        if self._closed:
            raise ConnectionLost(f"the connection to {self.params.masked} is closed")
        assert self._reconnecting is not None, "connect() first"
        async with self._reconnecting:
            if not self.alive():
                await self._reconnect(deadline)
        assert self.publisher is not None
        return self.publisher

    async def _reconnect(self, deadline: float | None) -> None:
        if deadline is None:
            deadline = time.monotonic() + self.retry_timeout_s
        if not self._lost_logged:
            log.warning("lost the connection to RabbitMQ at %s; reconnecting",
                        self.params.masked)
            self._lost_logged = True
        await close_connection(self.conn)
        attempt = 0
        while True:
            try:
                await self._open()
                break
            except ConnectionLost as exc:
                pause = backoff_s(attempt, 5.0)
                if time.monotonic() + pause > deadline:
                    raise ConnectionLost(f"{exc} (gave up reconnecting)") from exc
                attempt += 1
                await asyncio.sleep(pause)
        log.warning("reconnected to RabbitMQ at %s", self.params.masked)
        self._lost_logged = False

    async def write(self, channel: Channel, payload: bytes) -> None:
        """Write raw frames on the channel's connection (no reply expected)."""
        await write_frames(channel.connection, payload)

    async def close(self) -> None:
        self._closed = True
        conn, self.conn, self.publisher = self.conn, None, None
        await close_connection(conn)

    # -- publishing -------------------------------------------------------------------
    async def publish(self, items: Sequence[Outgoing], declare: DeclareFn | None = None,
                      deadline: float | None = None) -> None:
        """Publish and wait for every confirm; re-send unconfirmed ones after a loss."""
        if deadline is None:  # a send's retry policy, else retry_timeout
            deadline = publish_retry.deadline(self.retry_timeout_s)
        pending: Sequence[Outgoing] = items  # a batch stays one (amqp_batch)
        while pending:
            channel = await self.ready(deadline)
            try:
                if declare is not None:
                    await declare(channel)
                await self._publish_once(channel, pending)
                return
            except _Unconfirmed as lost:
                pending = lost.items
                if time.monotonic() > deadline:
                    raise ConnectionLost(f"RabbitMQ at {self.params.masked}: "
                                         f"{len(pending)} message(s) not confirmed") from lost
            except ConnectionLost:
                if time.monotonic() > deadline:
                    raise
            except Exception as exc:
                if channel.is_closed and not _is_refusal(exc) and time.monotonic() < deadline:
                    continue  # the connection died mid-declare: reconnect and retry
                raise

    async def _publish_once(self, channel: PublishChannel, items: Sequence[Outgoing]
                            ) -> None:
        tracker = channel.tracker
        frame_max = channel.connection.connection_tune.frame_max
        loop = asyncio.get_running_loop()
        assert self._write_lock is not None
        async with self._write_lock:  # sequence numbers follow the order frames are written
            batch = tracker.start(items, loop)
            out = bytearray()
            if isinstance(items, OutgoingBatch):  # one send's batch: spliced in one go
                items.encode(out, channel.number, frame_max)
            else:
                for item in items:
                    encode_publish(out, channel.number, item, frame_max)
                    if len(out) >= _CHUNK_BYTES:
                        await self.write(channel, bytes(out))
                        out = bytearray()
            if out:
                await self.write(channel, bytes(out))
        try:
            await batch.future
        except ConnectionLost as exc:
            raise _Unconfirmed(tracker.unconfirmed(batch)) from exc


class _Unconfirmed(Exception):
    def __init__(self, items: list[Outgoing]) -> None:
        super().__init__(f"{len(items)} unconfirmed")
        self.items = items


def _is_refusal(exc: BaseException) -> bool:
    """Errors that a reconnect cannot fix (a nack, a return, a bad declaration)."""
    return isinstance(exc, (PublishError, ChannelPreconditionFailed, ChannelAccessRefused))
