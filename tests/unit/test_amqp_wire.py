"""AMQP wire encoding: byte for byte what py-amqp (Celery's client) writes, read back by
pamqp as RabbitMQ would hand it over; publisher-confirm bookkeeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import struct
from typing import Any

import pytest
from amqp.basic_message import Message as PyAmqpMessage
from pamqp import frame as pamqp_frame
from pamqp.commands import Basic

from celeriac.brokers.amqp import link as amqp_link
from celeriac.brokers.amqp.wire import (
    ConfirmTracker,
    Outgoing,
    encode_header,
    encode_publish,
    encode_table,
    to_message,
)
from celeriac.errors import PublishError
from celeriac.protocol import build_task_message


def py_amqp_properties(message: Any) -> bytes:
    """What py-amqp puts after the content header's class/weight/size: flags + values."""
    props = dict(message.properties)
    reference = PyAmqpMessage(message.body, content_type=message.content_type,
                              content_encoding=message.content_encoding,
                              application_headers=message.headers, **props)
    return bytes(reference._serialize_properties())


def celery_task(**kw: Any) -> Any:
    return build_task_message("proj.add", (2, 3), {"z": 1.5}, task_id="tid-1",
                              reply_to="oid-1", **kw)


def test_task_message_header_is_byte_identical_to_py_amqp() -> None:
    message = celery_task(eta=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
                          expires=dt.datetime(2031, 1, 1, tzinfo=dt.UTC),
                          priority=7, time_limit=30, retries=2)
    ours = encode_header(message, len(message.body))
    assert ours[:12] == struct.pack(">HHQ", 60, 0, len(message.body))
    assert ours[12:] == py_amqp_properties(message)


@pytest.mark.parametrize("value", [
    0, -5, 2**31 - 1, -(2**31 - 1), 2**31, -(2**31), 2**40, 1.1, 1e300, True, False, None,
    "", "naïve ✓", b"raw", [1, "a", None, [2.5]], (1, 2), {"nested": {"x": [True]}},
    dt.datetime(2030, 5, 6, 7, 8, 9), decimal.Decimal("12.345"),
])
def test_every_header_type_is_encoded_as_py_amqp_does(value: Any) -> None:
    message = celery_task(headers={"v": value})
    assert encode_header(message, 0)[12:] == py_amqp_properties(message)


def test_values_come_back_from_rabbitmqs_encoding_unchanged() -> None:
    """Doubles stay doubles (pamqp would write 1.1 as a 32-bit float)."""
    table = encode_table({"f": 1.1, "big": 2**40, "list": [1, "x"], "map": {"k": None}})
    from pamqp.decode import field_table

    _, decoded = field_table(table)
    assert decoded == {"f": 1.1, "big": 2**40, "list": [1, "x"], "map": {"k": None}}


def test_publish_frames_parse_back_to_the_same_message() -> None:
    message = celery_task(priority=3, expires=dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
    message.body = b"x" * 10_000  # split over several body frames
    out = bytearray()
    encode_publish(out, 5, Outgoing("", "celery", message), frame_max=4096)
    frames = []
    while out:
        consumed, channel, frame = pamqp_frame.unmarshal(bytes(out))
        assert channel == 5
        frames.append(frame)
        del out[:consumed]
    method, header, *bodies = frames
    assert isinstance(method, Basic.Publish)
    assert (method.exchange, method.routing_key, method.mandatory) == ("", "celery", True)
    assert b"".join(b.value for b in bodies) == message.body
    assert len(bodies) == 3 and all(len(b.value) <= 4088 for b in bodies)
    back = to_message(header.properties, b"".join(b.value for b in bodies), "", "celery")
    assert back.headers == message.headers
    assert back.properties == message.properties
    assert back.properties["delivery_mode"] == 2
    assert (back.content_type, back.content_encoding) == ("application/json", "utf-8")


def test_headers_too_big_for_a_frame_raise_and_write_nothing() -> None:
    """RabbitMQ closes the connection on a header frame over frame_max: refuse it here."""
    out = bytearray(b"earlier")
    huge = celery_task()
    huge.headers["x-big"] = "v" * 200_000
    with pytest.raises(PublishError, match="frame_max"):
        encode_publish(out, 1, Outgoing("", "celery", huge), frame_max=131072)
    assert out == b"earlier"


def test_delayed_copies_drop_their_expiration() -> None:
    message = celery_task(expires=dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
    assert "expiration" in message.properties
    out = bytearray()
    encode_publish(out, 1, Outgoing("celeriac.delay.3", "k", message, drop_expiration=True),
                   frame_max=131072)
    consumed, _, _ = pamqp_frame.unmarshal(bytes(out))  # the basic.publish frame
    _, _, header = pamqp_frame.unmarshal(bytes(out[consumed:]))
    assert header.properties.expiration is None


# -- confirms ------------------------------------------------------------------------------


def items(n: int) -> list[Outgoing]:
    return [Outgoing("", "q", celery_task()) for _ in range(n)]


async def test_one_multiple_ack_settles_several_batches() -> None:
    loop = asyncio.get_running_loop()
    tracker = ConfirmTracker()
    first, second = tracker.start(items(3), loop), tracker.start(items(2), loop)
    tracker.on_confirm(4, multiple=True, ok=True)
    assert first.future.done() and not second.future.done()
    tracker.on_confirm(5, multiple=False, ok=True)
    await asyncio.gather(first.future, second.future)


async def test_a_nack_fails_its_batch_only() -> None:
    loop = asyncio.get_running_loop()
    tracker = ConfirmTracker()
    good, bad = tracker.start(items(1), loop), tracker.start(items(2), loop)
    tracker.on_confirm(1, multiple=False, ok=True)
    tracker.on_confirm(2, multiple=False, ok=False)
    tracker.on_confirm(3, multiple=False, ok=True)
    await good.future
    with pytest.raises(PublishError, match="nacked"):
        await bad.future


async def test_a_returned_message_fails_its_batch_after_the_ack() -> None:
    loop = asyncio.get_running_loop()
    tracker = ConfirmTracker()
    batch = tracker.start(items(1), loop)
    sent = batch.items[0]
    tracker.on_return(Basic.Return(312, "NO_ROUTE", sent.exchange, sent.routing_key),
                      sent.message.body)
    assert not batch.future.done()
    tracker.on_confirm(1, multiple=False, ok=True)
    with pytest.raises(PublishError, match="unroutable"):
        await batch.future


async def test_unconfirmed_messages_are_known_after_a_loss() -> None:
    loop = asyncio.get_running_loop()
    tracker = ConfirmTracker()
    batch = tracker.start(items(4), loop)
    tracker.on_confirm(2, multiple=True, ok=True)
    assert tracker.unconfirmed(batch) == list(batch.items[2:])
    tracker.fail_all(ConnectionError("gone"))
    with pytest.raises(ConnectionError):
        await batch.future


class _Writer:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


class _Conn:
    """What write_frames reads of an aiormq connection."""

    def __init__(self) -> None:
        self.write_queue: asyncio.Queue[Any] = asyncio.Queue()


async def test_write_frames_goes_straight_out_only_behind_an_empty_queue() -> None:
    conn, writer = _Conn(), _Writer()
    amqp_link._WRITERS[conn] = writer  # type: ignore[index]
    await amqp_link.write_frames(conn, b"first")  # type: ignore[arg-type]
    assert writer.written == [b"first"] and conn.write_queue.empty()
    conn.write_queue.put_nowait("queued by aiormq")  # e.g. a heartbeat not yet written
    await amqp_link.write_frames(conn, b"second")  # type: ignore[arg-type]
    assert writer.written == [b"first"]  # behind aiormq's frame, not before it
    assert conn.write_queue.get_nowait() == "queued by aiormq"
    assert conn.write_queue.get_nowait().payload == b"second"


async def test_write_frames_without_a_known_writer_uses_aiormqs_queue() -> None:
    conn = _Conn()
    await amqp_link.write_frames(conn, b"frames")  # type: ignore[arg-type]
    assert conn.write_queue.get_nowait().payload == b"frames"
