"""celeriac.contrib.testing.mocks: Celery's TaskMessage, task_message_from_sig and
ContextMock; a TaskMessage decodes as the worker decodes a received message."""

from __future__ import annotations

import datetime as dt

from celeriac.contrib.testing.mocks import ContextMock, TaskMessage, task_message_from_sig
from celeriac.protocol import Message, parse_task
from celeriac.testing import memory_app

ACCEPT = frozenset({"application/json"})


def test_a_task_message_is_what_a_worker_parses() -> None:
    message = TaskMessage("proj.add", id="id-1", args=(2, 3), kwargs={"z": 1},
                          shadow="add!", retries=2)
    assert message.headers == {"id": "id-1", "task": "proj.add", "shadow": "add!",
                               "retries": 2}
    assert message.payload == ((2, 3), {"z": 1},
                               {"callbacks": None, "errbacks": None, "chain": None})
    call = parse_task(Message(message.headers, message.body, content_type=message.content_type,
                              content_encoding=message.content_encoding), ACCEPT)
    assert (call.id, call.name, call.args, call.kwargs, call.retries) == (
        "id-1", "proj.add", [2, 3], {"z": 1}, 2)


def test_a_task_message_gets_an_id() -> None:
    first, second = TaskMessage("t"), TaskMessage("t")
    assert first.headers["id"] and first.headers["id"] != second.headers["id"]


def test_task_message_from_sig_fixes_id_links_and_times() -> None:
    app = memory_app("mocks")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    sig = add.s(2, 2).set(countdown=60, expires=120)
    sig.link(add.s(10))
    before = app.now()
    message = task_message_from_sig(app, sig)
    headers = message.headers
    assert headers["id"] == sig.id and headers["task"] == add.name
    assert list(message.payload[0]) == [2, 2]
    assert [c["task"] for c in message.payload[2]["callbacks"]] == [add.name]
    eta = dt.datetime.fromisoformat(headers["eta"])
    expires = dt.datetime.fromisoformat(headers["expires"])
    assert before + dt.timedelta(seconds=59) < eta < expires


def test_context_mock_enters_as_itself() -> None:
    mock = ContextMock()
    with mock as entered:
        entered.write("x")
    assert entered is mock
    mock.write.assert_called_once_with("x")
    mock.__exit__.assert_called_once()
