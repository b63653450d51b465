"""JSON with kombu's __type__ wrappers, and content-type refusal."""

from __future__ import annotations

import datetime as dt
import decimal
import pickle
import uuid

import orjson
import pytest

from celeriac import serialization
from celeriac.errors import ContentDisallowed, DecodeError

ACCEPT_JSON = frozenset({serialization.JSON})


def test_rich_values_roundtrip_as_kombu_wrappers() -> None:
    value = {
        "when": dt.datetime(2026, 11, 23, 20, 42, 43, 930952, tzinfo=dt.UTC),
        "day": dt.date(2026, 1, 2),
        "at": dt.time(3, 4, 5),
        "price": decimal.Decimal("10.01"),
        "id": uuid.UUID("22222222-2222-2222-2222-222222222222"),
        "raw": b"\x00\xffabc",
        "nested": [uuid.UUID(int=1), (1, 2)],
    }
    raw = serialization.json_dumps(value)
    wire = orjson.loads(raw)
    assert wire["when"] == {"__type__": "datetime",
                            "__value__": "2026-11-23T20:42:43.930952+00:00"}
    assert wire["price"] == {"__type__": "decimal", "__value__": "10.01"}
    assert wire["id"] == {"__type__": "uuid", "__value__": {
        "hex": "22222222222222222222222222222222", "version": None}}
    assert wire["raw"] == {"__type__": "base64", "__value__": "AP9hYmM="}
    assert wire["nested"][0]["__type__"] == "uuid"
    back = serialization.json_loads(raw)
    assert back == {**value, "nested": [uuid.UUID(int=1), [1, 2]]}


def test_utf8_bytes_use_the_bytes_marker() -> None:
    raw = serialization.json_dumps([b"abc"])
    assert orjson.loads(raw) == [{"__type__": "bytes", "__value__": "abc"}]
    assert serialization.json_loads(raw) == [b"abc"]


def test_plain_json_is_untouched() -> None:
    assert serialization.json_loads(b'[[1, 2], {"a": "b"}, {}]') == [[1, 2], {"a": "b"}, {}]


def test_pickle_refused_unless_accepted() -> None:
    content_type, _, body = serialization.dumps([1], "pickle")
    with pytest.raises(ContentDisallowed, match="pickle"):
        serialization.loads(body, content_type, ACCEPT_JSON)
    assert serialization.loads(body, content_type,
                               serialization.accepted_types(["json", "pickle"])) == [1]
    assert pickle.loads(body) == [1]


def test_broken_json_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        serialization.loads(b"[[1, 2], {", serialization.JSON, ACCEPT_JSON)


def test_unknown_serializer_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown serializer 'yaml'"):
        serialization.dumps(1, "yaml")
