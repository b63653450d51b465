"""AMQP 0-9-1 wire helpers for the RabbitMQ broker: frames, properties, lean channels.

Why this exists instead of ``Channel.basic_publish`` / ``basic_consume``:

- Publishing: aiormq encodes header tables with pamqp, which writes floats as 32-bit
  (``1.1`` comes back as ``1.100000023841858``), refuses tuples and costs ~40 us per
  message. ``encode_publish`` writes the method, header and body frames of a whole
  batch itself, encoding tables the way py-amqp (Celery's client) does: ``S`` strings,
  ``t`` booleans, ``I``/``l`` integers, ``d`` doubles, ``A`` arrays, ``F`` tables.
- Confirms: ``PublishChannel`` hands ``basic.ack``/``basic.nack``/``basic.return`` to a
  ``ConfirmTracker`` that tracks whole batches, so a batch of N messages costs one
  future, not N (aiormq makes a future and takes a lock per publish).
- Consuming: aiormq starts one asyncio Task per delivery. ``ConsumerChannel`` reads the
  header and body frames inline and hands the delivery to a plain callback, so the
  hot path allocates no Task and no Future per message.

Both channel classes only override aiormq 7's frame hooks (``_on_deliver_frame``,
``_on_confirm_frame``, ``_on_return_frame``); ``open_channel`` registers them with the
connection the way ``Connection.channel`` does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiormq.abc import ConfirmationFrameType
from aiormq.channel import Channel
from aiormq.connection import Connection
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from celeriac.brokers.amqp.reader import Delivered, Deliveries
from celeriac.errors import PublishError
from celeriac.protocol import Message

# -- encoding ------------------------------------------------------------------------

_FRAME_HEAD = struct.Struct(">BHI")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_HEADER_FIXED = struct.Struct(">HHQH")  # class id, weight, body size, property flags
_PUBLISH_HEAD = b"\x00\x3c\x00\x28\x00\x00"  # Basic(60).Publish(40), reserved ticket 0
_END = b"\xce"
_INT32_MAX = 2**31 - 1
_I32 = struct.Struct(">ci")
_I64 = struct.Struct(">cq")
_F64 = struct.Struct(">cd")

#: (property name in Message.properties, AMQP flag bit, kind) in AMQP order after headers
_PROPS: tuple[tuple[str, int, str], ...] = (
    ("delivery_mode", 0x1000, "octet"),
    ("priority", 0x0800, "octet"),
    ("correlation_id", 0x0400, "short"),
    ("reply_to", 0x0200, "short"),
    ("expiration", 0x0100, "short"),
    ("message_id", 0x0080, "short"),
    ("timestamp", 0x0040, "u64"),
    ("type", 0x0020, "short"),
    ("user_id", 0x0010, "short"),
    ("app_id", 0x0008, "short"),
)


def short_string(text: str) -> bytes:
    """``text`` as an AMQP short string (length byte + UTF-8), not memoised."""
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"AMQP short string over 255 bytes: {text[:40]!r}...")
    return bytes((len(raw),)) + raw


def _short(out: bytearray, text: str) -> None:
    out += short_string(text)


def _value(out: bytearray, value: Any) -> None:
    """One field-table value, typed as py-amqp types it (what Celery puts on the wire)."""
    if isinstance(value, (str, bytes, bytearray)):
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        out += b"S"
        out += _U32.pack(len(raw))
        out += raw
    elif value is None:
        out += b"V"
    elif isinstance(value, bool):
        out += b"t\x01" if value else b"t\x00"
    elif isinstance(value, int):
        # py-amqp's bounds: |v| <= 2**31 - 1 is a signed 32-bit "I", anything else "L"
        out += _I32.pack(b"I", value) if -_INT32_MAX <= value <= _INT32_MAX else \
            _I64.pack(b"L", value)
    elif isinstance(value, float):
        out += _F64.pack(b"d", value)
    elif isinstance(value, Mapping):
        out += b"F"
        _table(out, value)
    elif isinstance(value, (list, tuple)):
        _array(out, value)
    else:
        _rare_value(out, value)


def _array(out: bytearray, items: Sequence[Any]) -> None:
    out += b"A"
    start = len(out)
    out += b"\x00\x00\x00\x00"
    for item in items:
        _value(out, item)
    _U32.pack_into(out, start, len(out) - start - 4)


def _rare_value(out: bytearray, value: Any) -> None:
    """Datetimes (whole seconds, naive = UTC) and decimals, as py-amqp writes them."""
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        out += struct.pack(">cQ", b"T", int(stamp.timestamp()))
    elif isinstance(value, decimal.Decimal):
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):
            raise TypeError(f"decimal {value} cannot go in an AMQP header")
        number = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        out += struct.pack(">cBi", b"D", -exponent, number)
    else:
        raise TypeError(f"a {type(value).__name__} cannot go in an AMQP header table")


#: field names and content types/encodings as short strings (few distinct ones)
_SHORTS: dict[str, bytes] = {}


def short_bytes(text: str) -> bytes:
    """``text`` as an AMQP short string (length byte + UTF-8), memoised while small."""
    cached = _SHORTS.get(text)
    if cached is None:
        raw = text.encode()
        if len(raw) > 255:
            raise ValueError(f"AMQP short string over 255 bytes: {text[:40]!r}...")
        cached = bytes((len(raw),)) + raw
        if len(_SHORTS) < 4096:
            _SHORTS[text] = cached
    return cached


def _table(out: bytearray, table: Mapping[str, Any]) -> None:
    start = len(out)
    out += b"\x00\x00\x00\x00"
    shorts, u32 = _SHORTS, _U32.pack
    for key, value in table.items():
        name = shorts.get(key) if type(key) is str else None
        out += name if name is not None else short_bytes(str(key))
        kind = type(value)  # the common types first, exactly as _value encodes them
        if kind is str:
            raw = value.encode("utf-8", "surrogatepass")
            out += b"S"
            out += u32(len(raw))
            out += raw
        elif value is None:
            out += b"V"
        elif kind is int and -_INT32_MAX <= value <= _INT32_MAX:
            out += _I32.pack(b"I", value)
        else:
            _value(out, value)
    _U32.pack_into(out, start, len(out) - start - 4)


def encode_table(table: Mapping[str, Any]) -> bytes:
    """A field table as bytes (length-prefixed), for tests and declarations."""
    out = bytearray()
    _table(out, table)
    return bytes(out)


def encode_header(message: Message, body_size: int, *, drop_expiration: bool = False) -> bytes:
    """The content-header payload (class 60) carrying the message's properties."""
    out = bytearray()
    _header_into(out, message, body_size, drop_expiration)
    return bytes(out)


def _header_into(out: bytearray, message: Message, body_size: int,
                 drop_expiration: bool) -> None:
    start = len(out)
    out += _HEADER_FIXED.pack(60, 0, body_size, 0)
    flags = 0x8000 | 0x4000 | 0x2000  # content type, content encoding, headers
    out += short_bytes(message.content_type)
    out += short_bytes(message.content_encoding)
    _table(out, message.headers or {})
    flags |= properties_into(out, message.properties, drop_expiration)
    _U16.pack_into(out, start + 12, flags)


def properties_into(out: bytearray, props: Mapping[str, Any],
                    drop_expiration: bool = False) -> int:
    """Append the basic properties after the headers (AMQP order); return their flags."""
    flags = 0
    for name, bit, kind in _PROPS:
        value = props.get(name)
        if value is None or (drop_expiration and name == "expiration"):
            continue
        flags |= bit
        if kind == "octet":
            out.append(max(0, min(255, int(value))))
        elif kind == "u64":
            out += struct.pack(">Q", int(value))
        else:
            _short(out, str(value))
    return flags


@dataclass(slots=True)
class Outgoing:
    """One message to publish: where to, and whether to strip its TTL (delayed copies)."""

    exchange: str
    routing_key: str
    message: Message
    drop_expiration: bool = False
    #: unroutable -> basic.return -> PublishError; False drops it silently (rpc replies)
    mandatory: bool = True


def _frame(out: bytearray, kind: int, channel: int, payload: bytes | bytearray) -> None:
    out += _FRAME_HEAD.pack(kind, channel, len(payload))
    out += payload
    out += _END


#: (channel, exchange, routing key, mandatory) -> the whole basic.publish frame
_METHOD_FRAMES: dict[tuple[int, str, str, bool], bytes] = {}


def method_frame(channel: int, exchange: str, routing_key: str, mandatory: bool) -> bytes:
    key = (channel, exchange, routing_key, mandatory)
    frame = _METHOD_FRAMES.get(key)
    if frame is None:
        method = bytearray(_PUBLISH_HEAD)
        _short(method, exchange)
        _short(method, routing_key)
        method.append(1 if mandatory else 0)
        out = bytearray()
        _frame(out, 1, channel, method)
        frame = bytes(out)
        if len(_METHOD_FRAMES) < 4096:
            _METHOD_FRAMES[key] = frame
    return frame


def encode_publish(
    out: bytearray, channel: int, item: Outgoing, frame_max: int) -> None:
    """Append the basic.publish, header and body frames of one message to ``out``.

    Raises PublishError, leaving ``out`` as it was, when the headers do not fit in one
    frame: RabbitMQ would close the whole connection for it (``frame_too_large``)."""
    start = len(out)
    out += method_frame(channel, item.exchange, item.routing_key, item.mandatory)
    body = item.message.body
    head = len(out)
    out += _FRAME_HEAD.pack(2, channel, 0)
    _header_into(out, item.message, len(body), item.drop_expiration)
    size = len(out) - head - 7
    if frame_max and size + 8 > frame_max:
        del out[start:]
        raise header_too_large(item.message.task_id, size, frame_max)
    _U32.pack_into(out, head + 3, size)
    out += _END
    body_frames(out, channel, body, frame_max)


def content_frames(out: bytearray, channel: int, header: bytes, body: bytes,
                   frame_max: int, task_id: str) -> None:
    """Append a ready content-header payload's frame and the body frames after it;
    PublishError when the header does not fit in one frame (see encode_publish)."""
    if frame_max and len(header) + 8 > frame_max:
        raise header_too_large(task_id, len(header), frame_max)
    out += _FRAME_HEAD.pack(2, channel, len(header))
    out += header
    out += _END
    body_frames(out, channel, body, frame_max)


def header_too_large(task_id: str, size: int, frame_max: int) -> PublishError:
    return PublishError(f"task {task_id}: its headers take {size} bytes, more than "
                        f"RabbitMQ's frame_max ({frame_max}); AMQP cannot carry them")


def body_frames(out: bytearray, channel: int, body: bytes, frame_max: int) -> None:
    """Append the body frames of one message (none for an empty body)."""
    chunk = max(1, frame_max - 8) if frame_max else len(body) or 1
    if len(body) <= chunk:
        if body:
            out += _FRAME_HEAD.pack(3, channel, len(body))
            out += body
            out += _END
        return
    for start in range(0, len(body), chunk):
        _frame(out, 3, channel, body[start:start + chunk])


# -- decoding (pamqp has parsed the frames; we only map them) --------------------------

#: headers RabbitMQ adds when it dead-letters (our delay hops); not part of the task
DEATH_HEADERS = frozenset({
    "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
    "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason",
})

_PROP_ATTRS: tuple[tuple[str, str], ...] = (
    ("correlation_id", "correlation_id"), ("reply_to", "reply_to"),
    ("delivery_mode", "delivery_mode"), ("priority", "priority"),
    ("expiration", "expiration"), ("message_id", "message_id"), ("type", "message_type"),
    ("user_id", "user_id"), ("app_id", "app_id"),
)


def to_message(
    props: spec.Basic.Properties, body: bytes, exchange: str, routing_key: str,
    *, keep_death: bool = False,
) -> Message:
    """A received message (pamqp properties + body) as a celeriac Message."""
    properties: dict[str, Any] = {}
    for key, attr in _PROP_ATTRS:
        value = getattr(props, attr)
        if value is not None:
            properties[key] = value
    if props.timestamp is not None:
        properties["timestamp"] = props.timestamp.timestamp()
    return message_from(props.content_type, props.content_encoding, props.headers or {},
                        properties, body, exchange, routing_key, keep_death=keep_death)


def message_from(
    content_type: str | None, content_encoding: str | None, headers: dict[str, Any],
    properties: dict[str, Any], body: bytes, exchange: str, routing_key: str,
    *, keep_death: bool = False,
) -> Message:
    """A received message from its decoded parts (see amqp_reader.decode_header)."""
    if not keep_death and "x-death" in headers:
        headers = {k: v for k, v in headers.items() if k not in DEATH_HEADERS}
    return Message(
        headers=headers,
        body=body,
        properties=properties,
        content_type=content_type or "application/octet-stream",
        content_encoding=content_encoding or "binary",
        exchange=exchange,
        routing_key=routing_key,
    )


# -- publisher confirms ------------------------------------------------------------------


@dataclass(eq=False)
class Batch:
    """Messages written together; done when RabbitMQ has confirmed every one."""

    first: int
    items: Sequence[Outgoing]
    future: asyncio.Future[None]
    remaining: int = 0
    failures: list[str] = field(default_factory=list)

    def settle(self, ok: bool, why: str = "") -> None:
        self.remaining -= 1
        if not ok:
            self.failures.append(why)
        if self.remaining == 0 and not self.future.done():
            if self.failures:
                self.future.set_exception(PublishError("; ".join(self.failures[:5])))
            else:
                self.future.set_result(None)


class ConfirmTracker:
    """Publisher-confirm sequence numbers of one channel, mapped to their batches."""

    def __init__(self) -> None:
        self.next_seq = 1
        self._pending: OrderedDict[int, Batch] = OrderedDict()

    def start(self, items: Sequence[Outgoing], loop: asyncio.AbstractEventLoop) -> Batch:
        batch = Batch(self.next_seq, items, loop.create_future(), remaining=len(items))
        self._pending.update(dict.fromkeys(range(self.next_seq, self.next_seq + len(items)),
                                           batch))
        self.next_seq += len(items)
        return batch

    def on_confirm(self, tag: int, multiple: bool, ok: bool) -> None:
        why = "" if ok else "RabbitMQ nacked the message (it could not take responsibility)"
        if not multiple:
            batch = self._pending.pop(tag, None)
            if batch is not None:
                batch.settle(ok, why)
            return
        pending = self._pending
        while pending:
            seq = next(iter(pending))
            if seq > tag:
                break
            pending.popitem(last=False)[1].settle(ok, why)

    def on_return(self, frame: spec.Basic.Return, body: bytes) -> None:
        """Blame the returned message's batch (returns come before that message's ack)."""
        why = (f"unroutable: exchange {frame.exchange!r} routing key {frame.routing_key!r} "
               f"({frame.reply_code} {frame.reply_text})")
        batches = list(dict.fromkeys(self._pending.values()))
        for batch in batches:
            for item in batch.items:
                if (item.routing_key == frame.routing_key and item.exchange == frame.exchange
                        and item.message.body == body):
                    batch.failures.append(why)
                    return
        if batches:
            batches[0].failures.append(why)

    def unconfirmed(self, batch: Batch) -> list[Outgoing]:
        """Messages of a batch still waiting for a confirm (to resend after a loss)."""
        return [batch.items[seq - batch.first] for seq, owner in self._pending.items()
                if owner is batch]

    def fail_all(self, exc: BaseException) -> None:
        for batch in dict.fromkeys(self._pending.values()):
            if not batch.future.done():
                batch.future.set_exception(exc)


# -- channels ----------------------------------------------------------------------------


class PublishChannel(Channel):
    """A confirm-mode channel whose acks, nacks and returns go to a ConfirmTracker."""

    tracker: ConfirmTracker

    async def _on_confirm_frame(self, frame: ConfirmationFrameType) -> None:
        multiple = bool(getattr(frame, "multiple", False))
        self.tracker.on_confirm(int(frame.delivery_tag or 0), multiple,
                                isinstance(frame, spec.Basic.Ack))

    async def _on_return_frame(self, frame: spec.Basic.Return) -> None:
        _, body = await read_content(self)
        self.tracker.on_return(frame, body)


DeliveryCallback = Callable[[spec.Basic.Deliver, spec.Basic.Properties, bytes], None]


class _InlineDeliveries(asyncio.Queue[Any]):
    """A channel's frame queue that hands ``Deliveries`` (a run of whole deliveries) to
    the channel's ``on_delivered`` the moment the connection's reader puts them, instead
    of queueing them for the channel's reader task: no queue, no task wake-up."""

    def __init__(self, channel: ConsumerChannel) -> None:
        super().__init__()
        self._channel = channel

    async def put(self, item: Any) -> None:
        frame = item[1]
        if type(frame) is Deliveries:
            self._channel.on_delivered(frame)
            return
        await super().put(item)


class ConsumerChannel(Channel):
    """A channel that hands each delivery to ``on_delivery`` inline: no Task per message.

    Deliveries that ``amqp_reader`` assembled (``Deliveries``) go to ``on_delivered``
    from the connection's reader itself (``_InlineDeliveries``); every other frame
    takes aiormq's usual path through the channel's queue. The pamqp path below is kept
    for connections opened with the stock reader."""

    on_delivery: DeliveryCallback
    on_delivered: Callable[[list[Delivered]], None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames = _InlineDeliveries(self)

    async def _on_deliver_frame(self, frame: spec.Basic.Deliver) -> None:
        props, body = await read_content(self)
        self.on_delivery(frame, props, body)


async def read_content(channel: Channel) -> tuple[spec.Basic.Properties, bytes]:
    """Read the header and body frames that follow a deliver/return/get-ok frame."""
    header = await channel._get_frame()
    if not isinstance(header, ContentHeader):
        raise ValueError(f"expected a content header, got {header!r}")
    size = header.body_size
    parts: list[bytes] = []
    received = 0
    while received < size:
        frame = await channel._get_frame()
        if not isinstance(frame, ContentBody):
            raise ValueError(f"expected a content body frame, got {frame!r}")
        parts.append(frame.value)
        received += len(frame.value)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    return header.properties, body


ChannelT = TypeVar("ChannelT", bound=Channel)


async def open_channel(
    conn: Connection, cls: type[ChannelT], *, confirms: bool, timeout: float | None = None
) -> ChannelT:
    """Open a channel of our class on an aiormq connection (as Connection.channel does)."""
    number = 1
    while number in conn.channels:
        number += 1
    channel = cls(conn, number, publisher_confirms=confirms, frame_buffer=0)
    conn.channels[number] = channel
    await channel.open(timeout=timeout)
    return channel
