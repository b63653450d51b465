"""The bulk frame reader: deliveries assembled from raw bytes however the socket splits
them, other frames left to pamqp, and header values decoded exactly as pamqp does."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
from typing import Any

import pytest
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp.header import ContentHeader

from celeriac.brokers.amqp.headers import decode_header
from celeriac.brokers.amqp.reader import BulkFrameReceiver, Delivered, Deliveries
from celeriac.brokers.amqp.wire import Outgoing, encode_header, encode_publish, to_message
from celeriac.protocol import Message


def message(headers: dict[str, Any], body: bytes = b"[[], {}, {}]",
            **props: Any) -> Message:
    return Message(headers, body, props or {"correlation_id": "c1", "delivery_mode": 2},
                   "application/json", "utf-8", "", "celery")


ODD_HEADERS = {"s": "text", "bytes": b"\xff\xfe", "i": -5, "big": 2**40, "f": 1.5,
               "t": True, "none": None, "list": [1, "a", None, [2.5]],
               "map": {"k": {"z": "\u00e9"}}, "tuple": (1, 2),
               "when": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
               "dec": decimal.Decimal("1.25")}
ALL_PROPS = {"correlation_id": "c", "reply_to": "r", "delivery_mode": 2, "priority": 3,
             "expiration": "10", "message_id": "m", "timestamp": 1700000000, "type": "t",
             "user_id": "guest", "app_id": "a"}


@pytest.mark.parametrize("msg", [message(ODD_HEADERS), message({}, **ALL_PROPS),
                                 message({"id": "x", "x-death": [{"count": 1}]})])
def test_header_decodes_as_pamqp_decodes_it(msg: Message) -> None:
    payload = encode_header(msg, len(msg.body))
    reference = ContentHeader()
    reference.unmarshal(payload)
    want = to_message(reference.properties, msg.body, "", "", keep_death=True)
    content_type, content_encoding, headers, properties = decode_header(payload)
    assert (content_type, content_encoding) == (want.content_type, want.content_encoding)
    assert headers == want.headers
    assert properties == want.properties


class FakeReader:
    """A StreamReader stand-in handing out the bytes in the given pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def read(self, _: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def deliver_frames(tag: str, delivery_tag: int, msg: Message, frame_max: int) -> bytes:
    out = bytearray(pframe.marshal(spec.Basic.Deliver(
        consumer_tag=tag, delivery_tag=delivery_tag, redelivered=True, exchange="ex",
        routing_key="rk"), 1))
    publish = bytearray()
    encode_publish(publish, 1, Outgoing("ex", "rk", msg), frame_max)
    method_len = 7 + int.from_bytes(publish[3:7], "big") + 1
    out += publish[method_len:]  # the header and body frames, as RabbitMQ sends them
    return bytes(out)


async def read_all(data: bytes, piece: int) -> list[Any]:
    pieces = [data[i:i + piece] for i in range(0, len(data), piece)]
    receiver = BulkFrameReceiver(FakeReader(pieces))
    got = []
    while True:
        try:
            got.append(await receiver.get_frame())
        except StopAsyncIteration:
            return got


@pytest.mark.parametrize("piece", [1, 7, 100, 1 << 20])
def test_deliveries_are_assembled_however_the_bytes_arrive(piece: int) -> None:
    body = bytes(range(256)) * 3
    data = (deliver_frames("celeriac.abc.q", 7, message({"id": "a"}, body), 200)
            + pframe.marshal(spec.Basic.Ack(delivery_tag=3), 2)
            + deliver_frames("celeriac.abc.q", 8, message({"id": "b"}, b""), 200)
            + deliver_frames("ctag-other", 9, message({"id": "c"}), 200))
    got = asyncio.run(read_all(data, piece))
    first, ack, second, *stock = [frame[0] if type(frame) is Deliveries else frame
                                  for _, _, frame in got]
    assert isinstance(first, Delivered) and first.body == body
    assert (first.consumer_tag, first.delivery_tag, first.redelivered, first.exchange,
            first.routing_key) == ("celeriac.abc.q", 7, True, "ex", "rk")
    assert decode_header(first.header)[2] == {"id": "a"}
    assert isinstance(ack, spec.Basic.Ack) and ack.delivery_tag == 3
    assert isinstance(second, Delivered) and second.body == b"" and second.delivery_tag == 8
    # another consumer's delivery (rpc:// results) stays three pamqp frames
    assert isinstance(stock[0], spec.Basic.Deliver) and len(stock) == 3


@pytest.mark.parametrize("piece", [1, 300, 1 << 20])
def test_deliveries_in_a_row_come_as_runs_in_order(piece: int) -> None:
    """Whole deliveries of a channel read together are one item; another frame (or
    another channel) between them starts a new run, so the order never changes."""
    body = b"x" * 500  # two body frames at frame_max 200: assembled from parts
    data = b"".join(deliver_frames("celeriac.abc.q", tag, message({"id": str(tag)},
                                                                   body if tag == 3 else
                                                                   b"[]"), 200)
                    for tag in range(1, 6))
    data += pframe.marshal(spec.Basic.CancelOk(consumer_tag="celeriac.abc.q"), 1)
    data += deliver_frames("celeriac.abc.q", 6, message({"id": "6"}), 200)
    got = [frame for _, _, frame in asyncio.run(read_all(data, piece))]
    tags = [[d.delivery_tag for d in f] if type(f) is Deliveries else type(f).__name__
            for f in got]
    flat = [t for item in tags for t in (item if isinstance(item, list) else [item])]
    assert flat == [1, 2, 3, 4, 5, "CancelOk", 6]
    assert [d.body for f in got if type(f) is Deliveries for d in f][2] == body
    if piece == 1 << 20:  # all in one read: one run before the cancel-ok, one after
        assert tags == [[1, 2, 3, 4, 5], "CancelOk", [6]]


def test_a_connection_closed_mid_frame_is_an_error() -> None:
    from aiormq.exceptions import AMQPConnectionError

    data = deliver_frames("celeriac.abc.q", 1, message({}), 200)
    with pytest.raises(AMQPConnectionError):
        asyncio.run(read_all(data[:-3], 1 << 20))


def test_a_delivery_with_unreadable_properties_is_kept_with_its_error() -> None:
    """The inbox runs on the connection's reader: a header it cannot decode must become
    a delivery the worker dead-letters, not an exception that ends the connection."""
    from celeriac.brokers.amqp.inbox import Inbox
    from celeriac.brokers.amqp.topology import Topology

    inbox = Inbox(None, Topology(), prefetch=1, consumer_timeout_ms=None)  # type: ignore[arg-type]
    inbox._consuming["celeriac.x.q"] = "q"
    good = Message(headers={"id": "t1", "task": "x"}, body=b"[[], {}, {}]")
    header = encode_header(good, len(good.body))
    broken = header[:20] + b"\xff" * 8  # the table's length now points past the end
    for tag, payload in ((1, header), (2, broken)):
        inbox._on_delivered([Delivered("celeriac.x.q", tag, False, "", "q", payload,
                                       good.body)])
    ok, bad = inbox._pop(["q"], 10)
    assert ok.envelope_error is None and ok.message.task_id == "t1"
    assert bad.envelope_error is not None and "unreadable AMQP properties" in bad.envelope_error
    assert bad.message.body == good.body and bad.tag == (0, 2)
