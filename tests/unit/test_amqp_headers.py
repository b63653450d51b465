"""The header memo: whatever stream of headers it is fed, it returns exactly what a full
decode returns, never shares a mutable value between messages, and for a stream from
one producer decodes only the values that change."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from celeriac.brokers.amqp import headers as amqp_headers
from celeriac.brokers.amqp.headers import HeaderDecoder, decode_header
from celeriac.brokers.amqp.wire import encode_header
from celeriac.protocol import Message


def celery_header(task_id: str, argsrepr: str = "()", **extra: Any) -> bytes:
    """A content header as a celeriac/Celery producer writes one for a task."""
    headers = {"lang": "py", "task": "tasks.add", "id": task_id, "shadow": None,
               "eta": None, "expires": None, "group": None, "retries": 0,
               "timelimit": [None, None], "root_id": task_id, "parent_id": None,
               "argsrepr": argsrepr, "kwargsrepr": "{}", "origin": "1@host",
               "ignore_result": False, "stamps": {}, **extra}
    props = {"correlation_id": task_id, "reply_to": "r-1", "delivery_mode": 2,
             "priority": 0}
    message = Message(headers, b"[[], {}, {}]", props, "application/json", "utf-8",
                      "", "celery")
    return encode_header(message, 12)


def test_a_stream_from_one_producer_decodes_only_the_ids(monkeypatch: Any) -> None:
    decoder = HeaderDecoder()
    payloads = [celery_header(str(uuid.uuid4())) for _ in range(50)]
    for payload in payloads[:2]:
        decoder(payload)
    full_decodes = []
    real = amqp_headers.decode_header
    monkeypatch.setattr(amqp_headers, "decode_header",
                        lambda *a: full_decodes.append(1) or real(*a))
    for payload in payloads[2:]:
        assert decoder(payload) == real(payload)
    assert full_decodes == []
    varying = {span[2:] for span in decoder._shapes[len(payloads[0])].varying}
    assert varying == {(False, "id"), (False, "root_id"), (True, "correlation_id")}


def test_a_group_s_members_decode_only_their_ids_and_index(monkeypatch: Any) -> None:
    """A group's (or chord header's) members differ in ``group_index`` too: an integer,
    learnt as a varying value like the ids, whatever its width on the wire."""
    decoder = HeaderDecoder()
    group_id = str(uuid.uuid4())
    payloads = [celery_header(str(uuid.uuid4()), group=group_id, group_index=i)
                for i in range(50)] + \
               [celery_header(str(uuid.uuid4()), group=group_id, group_index=2**40 + i)
                for i in range(3)]
    for payload in payloads[:2]:
        decoder(payload)
    full_decodes = []
    real = amqp_headers.decode_header
    monkeypatch.setattr(amqp_headers, "decode_header",
                        lambda *a: full_decodes.append(1) or real(*a))
    for i, payload in enumerate(payloads[2:50], 2):
        decoded = decoder(payload)
        assert decoded == real(payload) and decoded[2]["group_index"] == i
    assert full_decodes == []
    for payload in payloads[50:]:  # a 64-bit index: another shape, learnt the same way
        assert decoder(payload) == real(payload)
    assert decoder(payloads[-1])[2]["group_index"] == 2**40 + 2


def test_a_new_varying_value_is_learnt_and_kept() -> None:
    decoder = HeaderDecoder()
    ids = [str(uuid.uuid4()) for _ in range(4)]
    decoder(celery_header(ids[0], "(1,)"))
    decoder(celery_header(ids[1], "(1,)"))
    changed = celery_header(ids[2], "(2,)")  # same length, another argsrepr
    assert decoder(changed)[2]["argsrepr"] == "(2,)"
    assert decoder(celery_header(ids[3], "(3,)"))[2] == decode_header(
        celery_header(ids[3], "(3,)"))[2]
    varying = {span[3] for span in decoder._shapes[len(changed)].varying}
    assert {"id", "root_id", "argsrepr", "correlation_id"} <= varying


def test_messages_never_share_a_mutable_value() -> None:
    decoder = HeaderDecoder()
    results = [decoder(celery_header(str(uuid.uuid4()), stamps={"s": ["a"]}))
               for _ in range(4)]
    for _, _, headers, properties in results[:-1]:  # full decodes and filled ones
        headers["timelimit"].append(5)
        headers["stamps"]["s"].append("b")
        headers.pop("task")
        properties["reply_to"] = "changed"
    last = results[-1]
    again = decoder(celery_header(str(uuid.uuid4()), stamps={"s": ["a"]}))
    for headers, properties in ((last[2], last[3]), (again[2], again[3])):
        assert headers["timelimit"] == [None, None]
        assert headers["stamps"] == {"s": ["a"]}
        assert headers["task"] == "tasks.add"
        assert properties["reply_to"] == "r-1"


def test_a_varying_value_that_is_not_utf8_comes_back_as_bytes() -> None:
    decoder = HeaderDecoder()
    for _ in range(3):
        decoder(celery_header(str(uuid.uuid4())))
    odd = celery_header(str(uuid.uuid4()))
    start, end, _, key = decoder._shapes[len(odd)].varying[0]
    odd = odd[:start] + b"\xff" * (end - start) + odd[end:]
    assert decoder(odd)[2][key] == b"\xff" * (end - start)


# Values whose encodings can have equal lengths but other types or structure.
_values = st.one_of(st.none(), st.booleans(), st.integers(-2**31, 2**31 - 1),
                    st.text(max_size=6), st.binary(max_size=3).filter(
                        lambda b: b.decode("utf-8", "replace").encode() != b),
                    st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=2),
                    st.dictionaries(st.sampled_from("ab"), st.integers(0, 9), max_size=2))
_headers = st.dictionaries(st.sampled_from(["id", "task", "x", "yy", "zzz"]), _values,
                           max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_headers, st.text(max_size=4)), min_size=1, max_size=12))
def test_the_memo_agrees_with_a_full_decode(stream: list[tuple[dict[str, Any], str]]) -> None:
    decoder = HeaderDecoder()
    for headers, correlation_id in stream:
        message = Message(headers, b"", {"correlation_id": correlation_id},
                          "application/json", "utf-8", "", "q")
        payload = encode_header(message, 0)
        got = decoder(payload)
        assert got == decode_header(payload)
        assert [type(v) for v in got[2].values()] == \
            [type(v) for v in decode_header(payload)[2].values()]
