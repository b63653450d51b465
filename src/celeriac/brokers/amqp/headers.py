"""Decoding an AMQP content header (properties and header table) as pamqp would, and a
memo that skips most of that work for a stream of messages of the same shape.

Why the memo: a Celery message's header table has 19 entries; decoding it in Python is
about a fifth of a worker's CPU per task on RabbitMQ. Messages from one producer differ
only in a few string values (the task id, root id, correlation id) and, in a group, an
integer (``group_index``), so ``HeaderDecoder`` keeps, per payload length, the last
header it decoded and which of those values changed from the one before. A new header
whose bytes equal that template everywhere outside those values has the same structure
(every length, type and name byte is compared), so only those values are decoded;
anything else is decoded in full and teaches the memo.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import decode as pdecode

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

#: (content type, content encoding, headers, properties), as ``decode_header`` returns
Decoded = tuple[str | None, str | None, dict[str, Any], dict[str, Any]]
#: where a value that may vary lies in a payload: (start, end, kind, its key); kind:
#: a string in the headers (0 or False) or the properties (1 or True), or an integer in
#: the headers, 32-bit (``_INT32``) or 64-bit (``_INT64``): a group's ``group_index``
Span = tuple[int, int, int, str]
_INT32, _INT64 = 2, 3

#: field names and other short strings that repeat (content types, reply queues), by
#: their bytes: a dict lookup is cheaper than decoding them for every delivery
_NAMES: dict[bytes, str] = {}


def name(raw: bytes) -> str:
    """``raw.decode()``, remembered for the first 4,096 distinct names."""
    found = _NAMES.get(raw)
    if found is None:
        found = raw.decode()
        if len(_NAMES) < 4096:
            _NAMES[raw] = found
    return found


def short_name(buf: bytes, pos: int) -> tuple[str, int]:
    """A short string at ``pos`` that is likely to repeat -> (text, position after it)."""
    stop = pos + 1 + buf[pos]
    return name(buf[pos + 1:stop]), stop


_PROPERTY_ORDER: tuple[tuple[int, str, str], ...] = (
    (0x1000, "delivery_mode", "octet"),
    (0x0800, "priority", "octet"),
    (0x0400, "correlation_id", "short"),
    (0x0200, "reply_to", "short"),
    (0x0100, "expiration", "short"),
    (0x0080, "message_id", "short"),
    (0x0040, "timestamp", "timestamp"),
    (0x0020, "type", "short"),
    (0x0010, "user_id", "short"),
    (0x0008, "app_id", "short"),
    (0x0004, "cluster_id", "short"),
)


def decode_header(payload: bytes, spans: list[Span] | None = None) -> Decoded:
    """A content-header payload -> content type, content encoding, headers, properties
    (``type`` for the AMQP ``type`` property, ``timestamp`` as a POSIX float). With
    ``spans``, the place of every top-level string value is appended to it."""
    flags = (payload[12] << 8) | payload[13]
    pos = 14
    content_type = content_encoding = None
    headers: dict[str, Any] = {}
    if flags & 0x8000:
        content_type, pos = short_name(payload, pos)
    if flags & 0x4000:
        content_encoding, pos = short_name(payload, pos)
    if flags & 0x2000:
        headers, pos = decode_table(payload, pos, spans)
    properties: dict[str, Any] = {}
    for bit, key, kind in _PROPERTY_ORDER:
        if not flags & bit:
            continue
        if kind == "octet":
            properties[key] = payload[pos]
            pos += 1
        elif kind == "short":
            stop = pos + 1 + payload[pos]
            properties[key] = payload[pos + 1:stop].decode()
            if spans is not None:
                spans.append((pos + 1, stop, True, key))
            pos = stop
        else:
            _, stamp = pdecode.timestamp(payload[pos:pos + 8])
            properties[key] = stamp.timestamp()
            pos += 8
    properties.pop("cluster_id", None)
    return content_type, content_encoding, headers, properties


def decode_table(buf: bytes, pos: int, spans: list[Span] | None = None,
                 ) -> tuple[dict[str, Any], int]:
    """A field table at ``pos`` -> (dict, position after it), values as pamqp decodes
    them (common types inline, the rare ones by pamqp itself)."""
    size = _U32.unpack_from(buf, pos)[0]
    pos += 4
    end = pos + size
    table: dict[str, Any] = {}
    u32, names = _U32.unpack_from, _NAMES
    while pos < end:
        stop = pos + 1 + buf[pos]
        raw_key = buf[pos + 1:stop]
        key = names.get(raw_key) or name(raw_key)
        kind = buf[stop]
        if kind == 0x53:  # S, the common case, inline
            pos = stop + 5 + u32(buf, stop + 1)[0]
            raw = buf[stop + 5:pos]
            try:
                table[key] = raw.decode()
            except UnicodeDecodeError:
                table[key] = raw
            if spans is not None:
                spans.append((stop + 5, pos, False, key))
        elif kind == 0x56:  # V
            table[key] = None
            pos = stop + 1
        elif kind == 0x49:  # I
            table[key] = _I32.unpack_from(buf, stop + 1)[0]
            pos = stop + 5
            if spans is not None:
                spans.append((stop + 1, pos, _INT32, key))
        elif kind == 0x6C or kind == 0x4C:  # l L
            table[key] = _I64.unpack_from(buf, stop + 1)[0]
            pos = stop + 9
            if spans is not None:
                spans.append((stop + 1, pos, _INT64, key))
        elif kind == 0x74:  # t
            table[key] = buf[stop + 1] != 0
            pos = stop + 2
        else:
            table[key], pos = _value(buf, stop)
    return table, end


def _value(buf: bytes, pos: int) -> tuple[Any, int]:
    kind = buf[pos]
    pos += 1
    if kind == 0x53:  # S
        size = _U32.unpack_from(buf, pos)[0]
        raw = buf[pos + 4:pos + 4 + size]
        try:
            return raw.decode("utf-8"), pos + 4 + size
        except UnicodeDecodeError:
            return raw, pos + 4 + size
    if kind == 0x56:  # V
        return None, pos
    if kind == 0x49:  # I
        return _I32.unpack_from(buf, pos)[0], pos + 4
    if kind == 0x74:  # t
        return bool(buf[pos]), pos + 1
    if kind in (0x6C, 0x4C):  # l L
        return _I64.unpack_from(buf, pos)[0], pos + 8
    if kind == 0x64:  # d
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if kind == 0x46:  # F
        return decode_table(buf, pos)
    if kind == 0x41:  # A
        size = _U32.unpack_from(buf, pos)[0]
        pos += 4
        end = pos + size
        items: list[Any] = []
        while pos < end:
            item, pos = _value(buf, pos)
            items.append(item)
        return items, end
    consumed, value = pdecode.embedded_value(bytes(buf[pos - 1:]))
    return value, pos - 1 + consumed


# -- the memo ---------------------------------------------------------------------------

#: the content header's first 12 bytes (class, weight, body size) are not decoded
_FIRST_DECODED = 12
_MAX_SHAPES = 256


_SCALARS = (str, bytes, int, float, type(None))


def _fresh(value: Any) -> Any:
    """A copy of a decoded list or table, so no two messages share a mutable value."""
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    return value


def _copier(value: list[Any] | dict[str, Any]) -> Any:
    """The cheapest way to copy ``value``: shallow when it holds only scalars (as
    Celery's ``timelimit`` and ``stamps`` do)."""
    items = value.values() if isinstance(value, dict) else value
    if all(isinstance(item, _SCALARS) for item in items):
        return type(value).copy
    return _fresh


class _Shape:
    """One template header and the string values (spans) that vary around it."""

    __slots__ = ("decoded", "mutable", "payload", "varying")

    def __init__(self, payload: bytes, decoded: Decoded, varying: list[Span]) -> None:
        content_type, content_encoding, headers, properties = decoded
        # a copy: the caller owns (and may change) the dicts it was handed
        self.decoded = (content_type, content_encoding, _fresh(headers), properties.copy())
        self.payload, self.varying = payload, varying
        self.mutable = [(key, _copier(value)) for key, value in headers.items()
                        if isinstance(value, (list, dict))]

    def fill(self, payload: bytes) -> Decoded | None:
        """``payload`` decoded from the template, or None if it differs anywhere but
        in the varying values (or one of them is not UTF-8)."""
        template, prev = self.payload, _FIRST_DECODED
        for start, end, _, _ in self.varying:
            if payload[prev:start] != template[prev:start]:
                return None
            prev = end
        if payload[prev:] != template[prev:]:
            return None
        content_type, content_encoding, headers, properties = self.decoded
        headers, properties = headers.copy(), properties.copy()
        for key, copy in self.mutable:
            headers[key] = copy(headers[key])
        try:
            for start, end, kind, key in self.varying:
                if kind == _INT32:
                    headers[key] = _I32.unpack_from(payload, start)[0]
                elif kind == _INT64:
                    headers[key] = _I64.unpack_from(payload, start)[0]
                else:
                    (properties if kind else headers)[key] = payload[start:end].decode()
        except UnicodeDecodeError:
            return None
        return content_type, content_encoding, headers, properties


class HeaderDecoder:
    """``decode_header`` with a memo of header shapes (see the module docstring). One
    per connection reader; not shared between threads."""

    __slots__ = ("_shapes",)

    def __init__(self) -> None:
        self._shapes: dict[int, _Shape] = {}

    def __call__(self, payload: bytes) -> Decoded:
        shape = self._shapes.get(len(payload))
        if shape is not None:
            decoded = shape.fill(payload)
            if decoded is not None:
                return decoded
        spans: list[Span] = []
        decoded = decode_header(payload, spans)
        self._learn(payload, decoded, spans, shape)
        return decoded

    def _learn(self, payload: bytes, decoded: Decoded, spans: list[Span],
               old: _Shape | None) -> None:
        """Remember ``payload`` as its length's template. Its varying values: those of
        its string values that differ from the old template's bytes or varied before.
        They are always the template's own string values, so a header that equals the
        template outside them has the template's structure, whatever the old one's."""
        varying: list[Span] = []
        if old is not None:
            before = set(old.varying)
            varying = [span for span in spans if span in before
                       or payload[span[0]:span[1]] != old.payload[span[0]:span[1]]]
        elif len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes[len(payload)] = _Shape(payload, decoded, varying)
