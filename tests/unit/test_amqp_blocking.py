"""The sync publisher's confirm bookkeeping, without a server: every message in the
window ends confirmed or reported, returns blame the right message, and a report is
raised once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from celeriac.brokers.amqp.blocking import BlockingPublisher, drive
from celeriac.brokers.amqp.link import parse_url
from celeriac.brokers.amqp.wire import Outgoing
from celeriac.errors import UnconfirmedPublish
from celeriac.protocol import Message


def item(task_id: str, routing_key: str = "celery") -> Outgoing:
    message = Message({"id": task_id}, f"body-{task_id}".encode(),
                      {"correlation_id": task_id}, "application/json", "utf-8", "",
                      routing_key)
    return Outgoing("", routing_key, message)


def publisher_with(*ids: str) -> BlockingPublisher:
    publisher = BlockingPublisher(parse_url("amqp://guest:guest@127.0.0.1:1//"))
    for seq, task_id in enumerate(ids, start=1):
        publisher._pending[seq] = item(task_id)
    publisher._next_seq = len(ids) + 1
    return publisher


def test_multiple_ack_confirms_everything_up_to_the_tag() -> None:
    publisher = publisher_with("a", "b", "c")
    publisher._on_confirm(2, True, True)
    assert list(publisher._pending) == [3]
    publisher._on_confirm(3, False, True)
    assert publisher.unconfirmed == 0
    publisher._raise_failed()  # nothing to report


def test_a_nack_reports_every_message_it_covers_once() -> None:
    publisher = publisher_with("a", "b", "c")
    publisher._on_confirm(1, False, True)
    publisher._on_confirm(3, True, False)
    with pytest.raises(UnconfirmedPublish) as info:
        publisher._raise_failed()
    assert info.value.task_ids == ["b", "c"]
    publisher._raise_failed()  # reported once


def test_a_return_blames_its_own_message_even_under_a_multiple_ack() -> None:
    publisher = publisher_with("a", "b", "c")
    returned = SimpleNamespace(exchange="", routing_key="celery", reply_code=312,
                               reply_text="NO_ROUTE")
    publisher._on_return(returned, b"body-b")
    publisher._on_confirm(3, True, True)
    with pytest.raises(UnconfirmedPublish, match="NO_ROUTE") as info:
        publisher._raise_failed()
    assert info.value.task_ids == ["b"]


def test_drive_runs_a_coroutine_that_never_waits() -> None:
    async def answer() -> int:
        return 42

    assert drive(answer()) == 42
