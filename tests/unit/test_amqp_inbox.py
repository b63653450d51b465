"""The inbox's acks: one cumulative ``basic.ack(multiple=True)`` for what finished in
order, single acks for what finished behind a delivery still running (never a multiple
ack past it), nothing for deliveries of a channel that has since closed."""

from __future__ import annotations

import asyncio
from typing import Any

from pamqp import commands as spec

from celeriac.brokers.amqp.inbox import Inbox
from celeriac.brokers.amqp.reader import Delivered
from celeriac.brokers.amqp.topology import Topology
from celeriac.brokers.amqp.wire import encode_header
from celeriac.brokers.base import Delivery
from celeriac.protocol import Message


class _Channel:
    is_closed = False
    number = 1


def inbox_with(tags: list[int]) -> tuple[Inbox, list[Delivery], list[list[Any]]]:
    """An inbox that received deliveries ``tags`` (one run, as the reader hands them);
    the frames it would write are collected instead."""
    inbox = Inbox(None, Topology(), prefetch=len(tags),  # type: ignore[arg-type]
                  consumer_timeout_ms=None)
    inbox._consuming["celeriac.x.q"] = "q"
    inbox.channel = _Channel()  # type: ignore[assignment]
    inbox.epoch = 1
    sent: list[list[Any]] = []

    async def send(frames: list[Any]) -> None:
        sent.append(frames)

    inbox._send = send  # type: ignore[method-assign]
    message = Message(headers={"id": "t", "task": "x"}, body=b"[[], {}, {}]")
    header = encode_header(message, len(message.body))
    inbox._on_delivered([Delivered("celeriac.x.q", tag, False, "", "q", header, message.body)
                         for tag in tags])
    return inbox, inbox._pop(["q"], len(tags)), sent


def acks(frames: list[Any]) -> list[tuple[int, bool]]:
    assert all(isinstance(f, spec.Basic.Ack) for f in frames)
    return [(f.delivery_tag, f.multiple) for f in frames]


def test_deliveries_finished_in_order_take_one_cumulative_ack() -> None:
    inbox, got, sent = inbox_with([1, 2, 3, 4])
    asyncio.run(inbox.ack(got))
    assert [acks(frames) for frames in sent] == [[(4, True)]]
    assert not inbox._unacked


def test_a_gap_acks_only_what_ran() -> None:
    """3 is still running: 1 and 2 go in one multiple ack, 4 and 5 one by one (a
    multiple ack up to 5 would ack 3 too, and a kill now would lose it)."""
    inbox, got, sent = inbox_with([1, 2, 3, 4, 5])
    one, two, three, four, five = got
    asyncio.run(inbox.ack([one, two, four, five]))
    assert acks(sent[0]) == [(2, True), (4, False), (5, False)]
    assert list(inbox._unacked) == [3]  # RabbitMQ redelivers it if the channel dies
    asyncio.run(inbox.ack([three]))
    assert acks(sent[1]) == [(3, True)]
    assert not inbox._unacked


def test_the_gap_closing_acks_the_rest_at_once() -> None:
    inbox, got, sent = inbox_with([1, 2, 3, 4])
    asyncio.run(inbox.ack(got[1:2]))  # 2 behind the running 1
    asyncio.run(inbox.ack([got[0], got[2], got[3]]))
    assert [acks(frames) for frames in sent] == [[(2, False)], [(4, True)]]


def test_deliveries_of_a_closed_channel_are_not_acked() -> None:
    """After a reconnect the tags start again: acking an old one would ack (or close)
    the new channel's; RabbitMQ has already requeued those."""
    inbox, got, sent = inbox_with([1, 2])
    inbox.epoch += 1
    inbox._unacked.clear()
    asyncio.run(inbox.ack(got))
    assert sent == []
