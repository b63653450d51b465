"""Publishing to RabbitMQ from a sync caller's own thread, with a confirm window.

Why: a sync ``.delay()`` that hands its publish to the bridge loop pays two thread
wake-ups, and one that waits for its own publisher confirm pays a RabbitMQ round trip;
together they capped a ``.delay()`` loop at ~1,000/s. ``BlockingPublisher`` keeps one
blocking socket of its own (no event loop, no thread hop) and lets up to ``window``
confirms be outstanding: ``publish`` returns once the frames are written, and the
confirms are read as they arrive on later calls.

The rule that holds: a publish that RabbitMQ did not confirm raises, never passes
silently. Each ``publish`` first reads, without blocking, what RabbitMQ has sent back.
A nack or a ``basic.return`` (unroutable) of an earlier message raises
``UnconfirmedPublish`` (naming the task ids) from the next ``publish`` (which then
sends nothing), from ``flush``, or at interpreter exit, where ``flush`` runs and a
failure is logged at ERROR and re-raised. A connection lost
before the confirms came reconnects (backoff, up to ``retry_timeout``) and re-sends
every unconfirmed message (at-least-once: one whose confirm was lost may be stored
twice); if it cannot reconnect in time, the call raises ``ConnectionLost`` naming them.

Heartbeats are off on this connection (nothing would send them between calls); a dead
peer shows up as a failed write or read, which reconnects. Declarations go through the
same ``Declarer`` as the async broker: ``SyncChannel``'s methods are coroutines that do
their blocking round trip and never suspend, so ``drive`` runs them to completion.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp.header import ProtocolHeader

from celeriac import publish_retry
from celeriac.brokers.amqp.batch import encode_many
from celeriac.brokers.amqp.link import ConnectionLost, ConnParams, backoff_s
from celeriac.brokers.amqp.topology import Declarer
from celeriac.brokers.amqp.wire import Outgoing
from celeriac.brokers.publish_window import flush_at_exit, refused
from celeriac.errors import BrokerConnectionError, PublishError

log = logging.getLogger("celeriac.brokers.amqp")

T = TypeVar("T")
SyncDeclare = Callable[["SyncChannel"], Coroutine[Any, Any, None]]

_HEAD = struct.Struct(">BHI")
_METHOD = struct.Struct(">HH")
_TAG = struct.Struct(">QB")
_ACK = (60, 80)
_NACK = (60, 120)
_RETURN = (60, 50)
_CHANNEL = 1
_FRAME_MAX = 131072
#: unconfirmed messages allowed before publish waits for confirms
DEFAULT_WINDOW = 5000


class ChannelClosed(PublishError):
    """RabbitMQ closed the channel (a refused declaration, a bad exchange)."""


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (SyncChannel calls) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a blocking declaration tried to wait on an event loop")


class SyncChannel:
    """The slice of aiormq's Channel that ``Declarer`` uses, done as blocking calls."""

    def __init__(self, link: _Link) -> None:
        self._link = link

    async def exchange_declare(self, exchange: str, *, exchange_type: str = "direct",
                               durable: bool = False, auto_delete: bool = False) -> None:
        self._link.call(spec.Exchange.Declare(exchange=exchange, exchange_type=exchange_type,
                                              durable=durable, auto_delete=auto_delete),
                        spec.Exchange.DeclareOk)

    async def queue_declare(self, queue: str, *, durable: bool = False,
                            exclusive: bool = False, auto_delete: bool = False,
                            arguments: dict[str, Any] | None = None) -> None:
        self._link.call(spec.Queue.Declare(queue=queue, durable=durable, exclusive=exclusive,
                                           auto_delete=auto_delete, arguments=arguments),
                        spec.Queue.DeclareOk)

    async def queue_bind(self, queue: str, exchange: str, *, routing_key: str = "") -> None:
        self._link.call(spec.Queue.Bind(queue=queue, exchange=exchange,
                                        routing_key=routing_key), spec.Queue.BindOk)

    async def exchange_bind(self, *, destination: str, source: str,
                            routing_key: str = "") -> None:
        self._link.call(spec.Exchange.Bind(destination=destination, source=source,
                                           routing_key=routing_key), spec.Exchange.BindOk)


class _Link:
    """One open socket, channel 1 in confirm mode, and the frames read from it."""

    def __init__(self, params: ConnParams, on_confirm: Callable[[int, bool, bool], None],
                 on_return: Callable[[Any, bytes], None]) -> None:
        self.params = params
        self._on_confirm = on_confirm
        self._on_return = on_return
        self._buf = bytearray()
        self._returning: Any = None  # a basic.return whose content is being read
        self._content_left = 0
        self._body: list[bytes] = []
        self._reply: Any = None
        self.frame_max = _FRAME_MAX
        self.sock = self._open_socket()
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    # -- connecting -----------------------------------------------------------------------
    def _open_socket(self) -> socket.socket:
        p = self.params
        try:
            sock = socket.create_connection((p.host, p.port), timeout=p.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if p.scheme == "amqps":
                import ssl

                context = p.ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=p.host)
        except OSError as exc:
            raise ConnectionLost(f"RabbitMQ at {p.masked} is unreachable: {exc}") from exc
        return sock

    def _handshake(self) -> None:
        p = self.params
        self.write(ProtocolHeader().marshal())
        self._expect(0, spec.Connection.Start)
        self.send(0, spec.Connection.StartOk(
            client_properties={"product": "celeriac", "capabilities": {
                "publisher_confirms": True, "basic.nack": True,
                "connection.blocked": False, "consumer_cancel_notify": True}},
            mechanism="PLAIN", response=f"\0{p.user}\0{p.password}", locale="en_US"))
        try:
            tune = self._expect(0, spec.Connection.Tune)
        except ConnectionLost as exc:
            raise BrokerConnectionError(
                f"RabbitMQ at {p.masked} refused the login of user {p.user!r}: wrong user "
                f"name or password ({exc})") from exc
        self.frame_max = min(tune.frame_max or _FRAME_MAX, _FRAME_MAX)
        self.send(0, spec.Connection.TuneOk(channel_max=tune.channel_max or 2047,
                                            frame_max=self.frame_max, heartbeat=0))
        self.send(0, spec.Connection.Open(virtual_host=p.vhost))
        try:
            self._expect(0, spec.Connection.OpenOk)
        except ConnectionLost as exc:
            raise BrokerConnectionError(
                f"RabbitMQ at {p.masked}: virtual host {p.vhost!r} does not exist or user "
                f"{p.user!r} may not use it ({exc})") from exc
        self.call(spec.Channel.Open(), spec.Channel.OpenOk)
        self.call(spec.Confirm.Select(), spec.Confirm.SelectOk)
        self.sock.settimeout(None)

    # -- writing ------------------------------------------------------------------------
    def write(self, data: bytes | bytearray) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ConnectionLost(f"RabbitMQ at {self.params.masked}: write failed: {exc}"
                                 ) from exc

    def send(self, channel: int, method: Any) -> None:
        self.write(pframe.marshal(method, channel))

    def call(self, method: Any, reply: type[T]) -> T:
        """Send a method on channel 1 and wait for its reply (confirms are handled meanwhile)."""
        self.send(_CHANNEL, method)
        return self._expect(_CHANNEL, reply)

    def _expect(self, channel: int, reply: type[T]) -> T:
        self._reply = None
        while self._reply is None:
            self.read(block=True)
        got, self._reply = self._reply, None
        if not isinstance(got, reply):
            raise ConnectionLost(f"expected {reply.__name__}, got {got!r}")
        return got

    # -- reading ------------------------------------------------------------------------
    def read(self, block: bool) -> bool:
        """Read what the socket has (waiting for something if ``block``) and handle it.

        Returns False when nothing was there to read without blocking."""
        sock = self.sock
        try:
            data = sock.recv(1 << 16) if block else sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            raise ConnectionLost(f"RabbitMQ at {self.params.masked}: read failed: {exc}"
                                 ) from exc
        if not data:
            raise ConnectionLost(f"RabbitMQ at {self.params.masked} closed the connection")
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 8:
            kind, channel, size = _HEAD.unpack_from(buf, pos)
            stop = pos + 7 + size
            if stop + 1 > end:
                break
            if kind == 1:
                self._on_method(channel, buf, pos + 7, stop)
            elif kind == 2 and self._returning is not None:
                self._content_left = struct.unpack_from(">Q", buf, pos + 11)[0]
                if self._content_left == 0:
                    self._finish_return()
            elif kind == 3 and self._returning is not None:
                self._content_left -= size
                self._body.append(bytes(buf[pos + 7:stop]))
                if self._content_left <= 0:
                    self._finish_return()
            # kind 8 (heartbeat) needs nothing: heartbeats are off
            pos = stop + 1
        del buf[:pos]
        return True

    def _on_method(self, channel: int, buf: bytearray, start: int, stop: int) -> None:
        key = _METHOD.unpack_from(buf, start)
        if key in (_ACK, _NACK):
            tag, bits = _TAG.unpack_from(buf, start + 4)
            self._on_confirm(tag, bool(bits & 1), key == _ACK)
            return
        _, _, method = pframe.unmarshal(bytes(buf[start - 7:stop + 1]))
        if key == _RETURN:
            self._returning, self._body = method, []
        elif isinstance(method, spec.Connection.Close):
            self.send(0, spec.Connection.CloseOk())
            raise ConnectionLost(f"RabbitMQ at {self.params.masked} closed the connection: "
                                 f"{method.reply_code} {method.reply_text}")
        elif isinstance(method, spec.Channel.Close):
            self.send(channel, spec.Channel.CloseOk())
            raise ChannelClosed(f"RabbitMQ closed the publishing channel: "
                                f"{method.reply_code} {method.reply_text}")
        else:
            self._reply = method

    def _finish_return(self) -> None:
        assert self._returning is not None
        self._on_return(self._returning, b"".join(self._body))
        self._returning, self._body = None, []

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class BlockingPublisher:
    """Thread-safe confirmed publishing on a blocking socket; see the module docstring."""

    def __init__(self, params: ConnParams, retry_timeout_s: float = 30.0,
                 window: int = DEFAULT_WINDOW) -> None:
        self.params = params
        self.retry_timeout_s = retry_timeout_s
        self.window = max(0, window)  # 0: every call waits for its own confirm
        self.declarer = Declarer()
        self._link: _Link | None = None
        self._lock = threading.RLock()
        self._next_seq = 1
        #: publish sequence number -> the message, until RabbitMQ confirms it
        self._pending: OrderedDict[int, Outgoing] = OrderedDict()
        self._refused: dict[int, str] = {}  # seq -> why, returned before its confirm
        self._failed: list[tuple[Outgoing, str]] = []
        self._lost_logged = False
        self._pid = os.getpid()
        atexit.register(self._at_exit)

    # -- public ---------------------------------------------------------------------------
    def publish(self, items: Sequence[Outgoing], declare: SyncDeclare | None = None) -> None:
        """Write the messages; raise what earlier ones failed with; wait only when the
        window is full."""
        with self._lock:
            self._raise_failed()
            deadline = publish_retry.deadline(self.retry_timeout_s)  # the send's policy
            written = False
            while True:
                link = self._ready(deadline)  # after a reconnect: re-sends the unconfirmed
                try:
                    if not written:
                        # confirms, returns, a connection closed meanwhile: seen before
                        # this call writes anything (one cheap non-blocking read)
                        link.read(block=False)
                        self._raise_failed()
                        if declare is not None:
                            drive(declare(SyncChannel(link)))
                        written = True
                        self._write(link, items)
                    while len(self._pending) > self.window:
                        link.read(block=True)
                    break
                except ConnectionLost:
                    self._drop(deadline)
                except ChannelClosed:
                    self._drop(deadline)
                    raise
            self._raise_failed(sent=True)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until RabbitMQ confirmed everything written; raise what it refused."""
        with self._lock:
            deadline = time.monotonic() + (self.retry_timeout_s if timeout_s is None
                                           else timeout_s)
            while self._pending:
                link = self._ready(deadline)
                try:
                    link.read(block=True)
                except ConnectionLost:
                    self._drop(deadline)
            self._raise_failed()

    @property
    def unconfirmed(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
            if link is not None:
                link.close()

    # -- internals ------------------------------------------------------------------------
    def _ready(self, deadline: float) -> _Link:
        """The open link; reconnects (re-sending every unconfirmed message) if needed."""
        if self._link is not None:
            return self._link
        attempt = 0
        while True:
            try:
                link = _Link(self.params, self._on_confirm, self._on_return)
                break
            except ConnectionLost as exc:
                pause = backoff_s(attempt, 5.0)
                if time.monotonic() + pause > deadline:
                    self._give_up(exc)
                time.sleep(pause)
                attempt += 1
        if self._lost_logged:
            log.warning("reconnected to RabbitMQ at %s", self.params.masked)
            self._lost_logged = False
        self._link = link
        self.declarer.reset()
        self._next_seq = 1
        resend = list(self._pending.values())
        self._pending.clear()
        self._refused.clear()
        if resend:
            self._write(link, resend)
        return link

    def _drop(self, deadline: float) -> None:
        """Forget a broken link; the next _ready reconnects (or gives up at deadline)."""
        if self._link is not None:
            self._link.close()
            self._link = None
        if not self._lost_logged:
            log.warning("lost the connection to RabbitMQ at %s; reconnecting",
                        self.params.masked)
            self._lost_logged = True
        if time.monotonic() > deadline:
            self._give_up(ConnectionLost(f"RabbitMQ at {self.params.masked} unreachable"))

    def _give_up(self, exc: ConnectionLost) -> None:
        lost = list(self._pending.values())
        self._pending.clear()
        ids = [_task_id(i) for i in lost]
        raise ConnectionLost(f"{exc} (gave up reconnecting); {len(lost)} earlier message(s) "
                             f"not confirmed: task ids {', '.join(ids[:10])}") from exc

    def _write(self, link: _Link, items: Sequence[Outgoing]) -> None:
        out = bytearray()
        encode_many(out, _CHANNEL, items, link.frame_max)
        seq = self._next_seq
        pending = self._pending
        for item in items:  # registered before the write: a failed write re-sends them
            pending[seq] = item
            seq += 1
        self._next_seq = seq
        link.write(out)

    def _on_confirm(self, tag: int, multiple: bool, ok: bool) -> None:
        pending, refused = self._pending, self._refused
        why = "" if ok else "RabbitMQ nacked it"
        if not multiple:
            item = pending.pop(tag, None)
            if item is not None and (not ok or refused):
                self._settle_failed(tag, item, ok, why)
            return
        while pending:
            seq = next(iter(pending))
            if seq > tag:
                break
            item = pending.popitem(last=False)[1]
            if not ok or refused:
                self._settle_failed(seq, item, ok, why)

    def _settle_failed(self, seq: int, item: Outgoing, ok: bool, why: str) -> None:
        returned = self._refused.pop(seq, None)
        if returned is not None or not ok:
            self._failed.append((item, returned or why))

    def _on_return(self, method: Any, body: bytes) -> None:
        """A return precedes its message's confirm: find that message, mark it refused."""
        why = (f"unroutable: exchange {method.exchange!r} routing key "
               f"{method.routing_key!r} ({method.reply_code} {method.reply_text})")
        for seq, item in self._pending.items():
            if (seq not in self._refused and item.routing_key == method.routing_key
                    and item.exchange == method.exchange and item.message.body == body):
                self._refused[seq] = why
                return

    def _raise_failed(self, sent: bool = False) -> None:
        if self._failed:
            failed, self._failed = self._failed, []
            raise refused("RabbitMQ", [([_task_id(item)], why) for item, why in failed], sent)

    def _at_exit(self) -> None:
        flush_at_exit(self.flush, bool(self._pending or self._failed), self._pid, "RabbitMQ")


def _task_id(item: Outgoing) -> str:
    headers = item.message.headers or {}
    return str(headers.get("id") or item.message.properties.get("correlation_id") or "?")
