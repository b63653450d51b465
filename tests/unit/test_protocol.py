"""Protocol v2 messages, checked against the real Celery 5.7 capture in shared/."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from celeriac.errors import DecodeError
from celeriac.protocol import (
    Message,
    build_task_message,
    from_envelope,
    parse_datetime,
    parse_task,
    to_envelope,
)

ACCEPT = frozenset({"application/json"})
#: real Celery 5.7 messages (a copy of ../shared/celery-wire/redis-capture-celery-5.7.txt)
CAPTURE = Path(__file__).resolve().parents[1] / "data" / "redis-capture-celery-5.7.txt"


def captured_envelopes() -> list[dict]:
    text = CAPTURE.read_text()
    blocks = re.findall(r"^b'celery[^']*' list\n(\{.*?^\})", text, re.S | re.M)
    return [json.loads(block) for block in blocks]


def test_captured_celery_messages_parse() -> None:
    envelopes = captured_envelopes()
    assert len(envelopes) == 2
    calls = {}
    for envelope in envelopes:
        message = from_envelope(json.dumps(envelope).encode())
        call = parse_task(message, ACCEPT)
        calls[call.id] = call
    eta_call = calls["22222222-2222-2222-2222-222222222222"]
    assert eta_call.name == "proj.tasks.add"
    assert eta_call.args == [1, 2] and eta_call.kwargs == {"z": 3}
    assert eta_call.eta == dt.datetime(2026, 11, 23, 20, 42, 43, 930952, tzinfo=dt.UTC)
    assert eta_call.timelimit == (30.0, 20.0)
    plain = calls["11111111-1111-1111-1111-111111111111"]
    assert plain.args == [2, 2] and plain.eta is None and plain.timelimit == (None, None)


def test_built_message_has_celerys_exact_shape() -> None:
    envelope = captured_envelopes()[1]
    eta = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    message = build_task_message("proj.tasks.add", (2, 2), {}, task_id="x", eta=eta,
                                 expires=eta, time_limit=30, soft_time_limit=20, priority=5)
    ours = json.loads(to_envelope(message))
    assert ours.keys() == envelope.keys()
    assert ours["headers"].keys() == envelope["headers"].keys()
    assert set(ours["properties"]) == set(envelope["properties"]) | {"expiration"}
    assert ours["headers"]["timelimit"] == [30, 20]
    assert ours["headers"]["eta"] == "2030-01-01T00:00:00+00:00"
    assert ours["properties"]["priority"] == 5
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": "celery"}
    body = json.loads(base64.b64decode(ours["body"]))
    assert body == [[2, 2], {}, {"callbacks": None, "errbacks": None, "chain": None,
                                 "chord": None}]


def test_envelope_roundtrip_keeps_everything() -> None:
    message = build_task_message("t", (1,), {"k": "v"}, queue="q9", priority=3)
    back = from_envelope(to_envelope(message))
    assert back.headers == message.headers
    assert back.body == message.body
    assert back.routing_key == "q9"
    assert back.properties["priority"] == 3


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not JSON"),
    (b"[1]", "JSON object"),
    (b'{"body": "%%%", "properties": {"body_encoding": "base64"}}', "base64"),
])
def test_bad_envelopes_are_decode_errors(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        from_envelope(raw)


@pytest.mark.parametrize("headers, body, reason", [
    ({}, b"[[], {}, {}]", "no 'task' header"),
    ({"task": 5}, b"[[], {}, {}]", "must be a string"),
    ({"task": "t"}, b"[[], {}]", r"\[args, kwargs, embed\]"),
    ({"task": "t"}, b'[{}, [], {}]', "args must be a list"),
    ({"task": "t", "eta": "tomorrow"}, b"[[], {}, {}]", "bad ISO-8601"),
])
def test_bad_task_messages_are_decode_errors(headers: dict, body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        parse_task(Message(headers=headers, body=body), ACCEPT)


@pytest.mark.parametrize("value, expected", [
    ("2026-12-01T10:00:00+02:00", dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)),
    ("2026-12-01T08:00:00", dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)),
    ("2026-12-01T08:00:00Z", dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)),
])
def test_header_datetimes_come_back_in_utc(value: str, expected: dt.datetime) -> None:
    parsed = parse_datetime(value)
    assert parsed == expected and parsed is not None and parsed.utcoffset() == dt.timedelta(0)


def test_a_datetime_utc_cannot_hold_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="out of range"):
        parse_datetime("9999-12-31T23:59:59.999999-23:59")
