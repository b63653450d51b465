"""Body serializers: JSON with kombu's ``__type__`` wrappers by default, pickle by name.

Celery's JSON carries values JSON lacks as ``{"__type__": T, "__value__": V}``
(datetime, date, time, decimal, uuid, bytes/base64), exactly as kombu's JSON does.
We encode them on the way out and decode them on the way in, so Celery and celeriac
read each other's arguments.
Decoding only walks the tree when the raw bytes contain ``__type__``: the common
case costs one ``orjson.loads``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import pickle
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from celeriac.errors import ContentDisallowed, DecodeError

JSON = "application/json"
PICKLE = "application/x-python-serialize"

#: short names users put in ``accept_content`` / ``task_serializer``
CONTENT_TYPES = {"json": JSON, "pickle": PICKLE}
_NAMES_BY_TYPE = {v: k for k, v in CONTENT_TYPES.items()}


class UnencodableType(TypeError):
    """A value of a type JSON cannot carry, even with kombu's wrappers (``value_type``)."""

    def __init__(self, value_type: type) -> None:
        self.value_type = value_type
        super().__init__(f"Object of type {value_type.__name__} is not JSON serializable")


def _encode_extra(value: Any) -> Any:
    """orjson ``default`` hook: wrap values JSON cannot carry the way kombu does."""
    if isinstance(value, dt.datetime):
        return {"__type__": "datetime", "__value__": value.isoformat()}
    if isinstance(value, dt.date):
        return {"__type__": "date", "__value__": value.isoformat()}
    if isinstance(value, dt.time):
        return {"__type__": "time", "__value__": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"__type__": "decimal", "__value__": str(value)}
    if isinstance(value, uuid.UUID):
        return {"__type__": "uuid", "__value__": {"hex": value.hex, "version": value.version}}
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return {"__type__": "bytes", "__value__": raw.decode("utf-8")}
        except UnicodeDecodeError:
            return {"__type__": "base64", "__value__": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, (set, frozenset)):
        return list(value)
    if hasattr(value, "__json__"):
        return value.__json__()
    # subclasses (a Signature in a chord's message): as the stdlib writes them, without
    # orjson failing and the whole message being encoded again by the stdlib
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    raise UnencodableType(type(value))


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": lambda v: dt.datetime.fromisoformat(v).date(),
    "time": dt.time.fromisoformat,
    "decimal": decimal.Decimal,
    # kombu writes {"hex", "version"}; a bare string is accepted too
    "uuid": lambda v: uuid.UUID(**v) if isinstance(v, dict) else uuid.UUID(v),
    "bytes": lambda v: v.encode("utf-8"),
    "base64": base64.b64decode,
}

# Native datetime serialization in orjson would bypass the ``default`` hook and write
# bare strings, which Celery would not turn back into objects.
_DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _wrap_uuids(node: Any) -> Any:
    """orjson writes UUIDs as bare strings and has no pass-through flag for them, so wrap
    them first. Returns ``node`` itself when it holds no UUID (the common case), having
    allocated nothing: this runs on every message sent."""
    kind = type(node)
    if kind in _SCALARS:
        return node
    if kind is list or kind is tuple:
        copy: list[Any] | None = None
        for i, value in enumerate(node):
            if type(value) in _SCALARS:
                continue
            wrapped = _wrap_uuids(value)
            if wrapped is not value:
                if copy is None:
                    copy = list(node)
                copy[i] = wrapped
        return node if copy is None else copy
    if kind is dict:
        pairs: dict[Any, Any] | None = None
        for key, value in node.items():
            if type(value) in _SCALARS:
                continue
            wrapped = _wrap_uuids(value)
            if wrapped is not value:
                if pairs is None:
                    pairs = dict(node)
                pairs[key] = wrapped
        return node if pairs is None else pairs
    return _wrap_other(node)


def _wrap_other(node: Any) -> Any:
    """UUIDs, and subclasses of list, tuple and dict (walked as their base class)."""
    if isinstance(node, uuid.UUID):
        return _encode_extra(node)
    if isinstance(node, (list, tuple)):
        plain: Any = list(node)
    elif isinstance(node, dict):
        plain = dict(node)
    else:
        return node
    wrapped = _wrap_uuids(plain)
    return node if wrapped is plain else wrapped  # the same object: no UUID inside


def json_dumps(value: Any) -> bytes:
    """Serialize to JSON bytes with kombu's ``__type__`` wrappers."""
    value = _wrap_uuids(value)
    try:
        return orjson.dumps(value, default=_encode_extra, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError:
        # orjson refuses ints over 64 bits and some subclasses; fall back to the stdlib.
        import json

        return json.dumps(value, default=_encode_extra).encode()


def _revive(node: Any) -> Any:
    if isinstance(node, dict):
        kind = node.get("__type__")
        if kind is not None and "__value__" in node and len(node) == 2:
            decoder = _DECODERS.get(kind)
            if decoder is not None:
                return decoder(node["__value__"])
        return {k: _revive(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_revive(v) for v in node]
    return node


def json_loads(raw: bytes | str) -> Any:
    """Parse JSON and turn ``__type__`` wrappers back into Python values."""
    value = orjson.loads(raw)
    needle: bytes | str = b"__type__" if isinstance(raw, (bytes, bytearray)) else "__type__"
    if needle in raw:  # type: ignore[operator]
        value = _revive(value)
    return value


def resolve_content_type(name: str) -> str:
    """``'json'`` -> ``'application/json'``; full MIME types pass through."""
    return CONTENT_TYPES.get(name, name)


def accepted_types(names: Iterable[str]) -> frozenset[str]:
    """The MIME types a consumer accepts, from ``accept_content`` names."""
    return frozenset(resolve_content_type(n) for n in names)


def dumps(value: Any, serializer: str) -> tuple[str, str, bytes]:
    """Serialize with a serializer name; returns (content_type, content_encoding, body)."""
    content_type = resolve_content_type(serializer)
    if content_type == JSON:
        return JSON, "utf-8", json_dumps(value)
    if content_type == PICKLE:
        return PICKLE, "binary", pickle.dumps(value, protocol=4)
    raise ValueError(f"unknown serializer {serializer!r}; use 'json' or 'pickle'")


def loads(body: bytes, content_type: str, accept: frozenset[str]) -> Any:
    """Deserialize a body, refusing content types not in ``accept``.

    Raises ContentDisallowed for a type outside ``accept`` and DecodeError for a body
    that does not parse; the worker dead-letters both with the reason.
    """
    if content_type not in accept:
        name = _NAMES_BY_TYPE.get(content_type, content_type)
        raise ContentDisallowed(
            f"content type {name!r} is not in accept_content {sorted(accept)}"
        )
    try:
        if content_type == JSON:
            return json_loads(body)
        if content_type == PICKLE:
            return pickle.loads(body)
    except Exception as exc:
        raise DecodeError(f"cannot decode {content_type} body: {exc}") from exc
    raise ContentDisallowed(f"no decoder for content type {content_type!r}")
