"""result_serializer and result_accept_content on a backend (memory: the reference)."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from celeriac import Celery
from celeriac.backends.base import make_meta
from celeriac.backends.codec import ResultCodec
from celeriac.errors import ConfigurationError, ContentDisallowed, EncodeError


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


def test_pickle_stores_any_picklable_value_and_reads_it_back() -> None:
    codec = ResultCodec.from_options({"result_serializer": "pickle",
                                      "result_accept_content": ["json", "pickle"]})
    raw = codec.encode(make_meta("t", "SUCCESS", Point(3)))
    assert raw[:1] == b"\x80" and pickle.loads(raw)["result"] == Point(3)
    assert codec.decode(raw)["result"] == Point(3)


def test_pickle_is_not_loaded_unless_accepted_and_json_still_reads() -> None:
    writer = ResultCodec.from_options({"result_serializer": "pickle",
                                       "result_accept_content": ["pickle"]})
    reader = ResultCodec.from_options({"result_serializer": "json"})
    raw = writer.encode(make_meta("t", "SUCCESS", 1))
    with pytest.raises(ContentDisallowed, match="pickle"):
        reader.decode(raw)
    json_raw = reader.encode(make_meta("t", "SUCCESS", 2))
    with pytest.raises(ContentDisallowed, match="json"):  # accept names pickle only
        writer.decode(json_raw)
    both = ResultCodec.from_options({"result_serializer": "pickle",
                                     "result_accept_content": ["json", "pickle"]})
    assert both.decode(json_raw)["result"] == 2  # results written before the switch


def test_unknown_serializers_are_refused_and_json_errors_unchanged() -> None:
    with pytest.raises(ConfigurationError, match="msgpack"):
        ResultCodec.from_options({"result_serializer": "msgpack"})
    with pytest.raises(EncodeError, match="json"):
        ResultCodec().encode(make_meta("t", "SUCCESS", Point(1)))
    with pytest.raises(EncodeError, match="pickle"):
        ResultCodec(content_type="application/x-python-serialize").encode(
            make_meta("t", "SUCCESS", lambda: 1))


def test_the_app_gives_its_backend_the_settings() -> None:
    app = Celery("codec", broker="memory://", backend="memory://", set_as_current=False,
                 result_serializer="pickle", accept_content=["json", "pickle"])
    backend = app._new_backend()
    assert backend.codec.content_type == "application/x-python-serialize"

    async def roundtrip() -> object:
        await backend.store("t1", make_meta("t1", "SUCCESS", Point(5)), None)
        meta = await backend.get("t1")
        return None if meta is None else meta["result"]

    assert asyncio.run(roundtrip()) == Point(5)
    app.conf.result_accept_content = ["json"]  # Celery: result_accept_content wins
    assert app._new_backend().codec.accept == frozenset({"application/json"})


def test_a_backend_that_keeps_json_says_so_when_pickle_is_asked() -> None:
    from celeriac.backends.rpc import RPCBackend
    from celeriac.errors import UnsupportedSetting

    with pytest.warns(UnsupportedSetting, match="RPCBackend: its results are JSON"):
        backend = RPCBackend("rpc://", {"result_serializer": "pickle",
                                        "broker_url": "amqp://guest:guest@127.0.0.1//"})
    assert backend.codec.content_type == "application/json"
