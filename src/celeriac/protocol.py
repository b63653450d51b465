"""Celery task protocol v2 <-> celeriac's Message: the only module that knows the format.

A ``Message`` is what brokers move: headers, properties and an opaque body, plus the
exchange and routing key it was published to. ``build_task_message`` makes one the way
Celery 5 does (every header present, ``null`` where unused), ``parse_task`` reads one
back into a ``TaskCall``. ``to_envelope``/``from_envelope`` are kombu's JSON envelope,
used verbatim on Redis and as the stored form on SQLite and in memory.
See ../shared/celery-wire/PROTOCOL.md for the facts.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson

from celeriac import serialization
from celeriac.errors import DecodeError

#: reprs of args/kwargs in headers are capped like Celery's
REPR_LIMIT = 1024
_EMPTY_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_EMPTY_EMBED_JSON = orjson.dumps(_EMPTY_EMBED)
#: the JSON body of a call without arguments
_NO_ARGUMENTS_JSON = b"[[],{},%b]" % _EMPTY_EMBED_JSON


@dataclass(slots=True)
class Message:
    """One broker message: what is published, stored, fetched and acked."""

    headers: dict[str, Any]
    body: bytes
    properties: dict[str, Any] = field(default_factory=dict)
    content_type: str = serialization.JSON
    content_encoding: str = "utf-8"
    exchange: str = ""
    routing_key: str = "celery"

    @property
    def task_id(self) -> str:
        return str(self.headers.get("id") or self.properties.get("correlation_id") or "")

    @property
    def task_name(self) -> str:
        return str(self.headers.get("task") or "")

    @property
    def priority(self) -> int:
        value = self.properties.get("priority")
        if type(value) is int and 0 <= value <= 9:  # what celeriac and Celery send
            return value
        try:
            return max(0, min(9, int(value or 0)))
        except (TypeError, ValueError):
            return 0

    @property
    def eta(self) -> dt.datetime | None:
        return parse_datetime(self.headers.get("eta"))


@dataclass(slots=True)
class TaskCall:
    """A decoded task message: what to run and with what."""

    id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    callbacks: list[dict[str, Any]] | None
    errbacks: list[dict[str, Any]] | None
    chain: list[dict[str, Any]] | None
    chord: dict[str, Any] | None
    headers: dict[str, Any]
    #: the ``eta`` and ``expires`` headers, parsed (aware datetimes) or None
    eta: dt.datetime | None = None
    expires: dt.datetime | None = None

    @property
    def retries(self) -> int:
        return int(self.headers.get("retries") or 0)

    @property
    def timelimit(self) -> tuple[float | None, float | None]:
        """(hard, soft) in seconds, each None when unset."""
        raw = self.headers.get("timelimit") or (None, None)
        hard, soft = [*raw, None, None][:2]
        return (float(hard) if hard else None, float(soft) if soft else None)


class _RandomPool(threading.local):
    """Per-thread random hex for ids: one ``os.urandom`` call per 64 ids, not per id (a
    syscall each, and bulk sends take two ids per message). Per thread so no two
    threads take the same slice; emptied in a forked child so it never repeats the
    parent's ids."""

    def __init__(self) -> None:
        self.hex = ""
        self.pos = 0


_POOL = _RandomPool()
_POOL_BYTES = 16 * 64


def new_id() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` (the same
    ``os.urandom`` randomness) but several times faster."""
    pool = _POOL
    pos = pool.pos
    h = pool.hex[pos:pos + 32]
    if len(h) < 32:
        pool.hex = os.urandom(_POOL_BYTES).hex()
        pos = 0
        h = pool.hex[:32]
    pool.pos = pos + 32
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_ids(count: int) -> list[str]:
    """``count`` ids as ``new_id`` makes them, from one ``os.urandom`` call: a bulk
    send's ids at 0.8 us each instead of 1.2 (no thread-local pool per id)."""
    h = os.urandom(16 * count).hex()
    v = _VARIANT
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{v[h[i + 16]]}"
            f"{h[i + 17:i + 20]}-{h[i + 20:i + 32]}" for i in range(0, 32 * count, 32)]


def _empty_pool() -> None:
    _POOL.hex, _POOL.pos = "", 0


#: a hex digit -> the RFC 4122 variant digit with its random low bits kept
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _identify_process() -> None:
    """This process's ``origin`` header (pid@host) and the id its messages carry in
    ``reply_to`` when no reply queue is asked for (Celery's per-client ``thread_oid``,
    the same for every message of a client). Fresh in a forked child."""
    global _ORIGIN, _CLIENT_ID
    _ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
    _CLIENT_ID = new_id()


_ORIGIN = _CLIENT_ID = ""
_identify_process()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_empty_pool)
    os.register_at_fork(after_in_child=_identify_process)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_datetime(value: Any) -> dt.datetime | None:
    """ISO-8601 header value -> datetime in UTC (naive means UTC); None stays None.
    One that UTC cannot hold (``9999-12-31T23:59-23:59``) is a DecodeError: kept as
    an eta, it would wait in the broker for ever instead of being dead-lettered."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise DecodeError(f"bad ISO-8601 datetime {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError as exc:
        raise DecodeError(f"datetime {value!r} is out of range in UTC") from exc


def _repr_capped(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


def build_task_message(
    name: str,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    task_id: str | None = None,
    queue: str = "celery",
    exchange: str = "",
    routing_key: str | None = None,
    serializer: str = "json",
    eta: dt.datetime | None = None,
    expires: dt.datetime | None = None,
    retries: int = 0,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    priority: int | None = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    group_id: str | None = None,
    group_index: int | None = None,
    ignore_result: bool = False,
    reply_to: str | None = None,
    shadow: str | None = None,
    headers: dict[str, Any] | None = None,
    callbacks: list[dict[str, Any]] | None = None,
    errbacks: list[dict[str, Any]] | None = None,
    chain: list[dict[str, Any]] | None = None,
    chord: dict[str, Any] | None = None,
    compression: str | None = None,
) -> Message:
    """Make a protocol v2 task message exactly as a Celery 5 client would."""
    task_id = task_id or new_id()
    kwargs = kwargs or {}
    args = list(args)
    content_type = serialization.resolve_content_type(serializer)
    if callbacks is None and errbacks is None and chain is None and chord is None and \
            content_type == serialization.JSON:  # the common case: the embed is fixed
        body, argsrepr, kwargsrepr = _body_and_reprs(args, kwargs, "json")
        encoding = "utf-8"
    else:
        embed = {"callbacks": callbacks, "errbacks": errbacks, "chain": chain,
                 "chord": chord}
        content_type, encoding, body = serialization.dumps([args, kwargs, embed],
                                                           serializer)
        argsrepr, kwargsrepr = _repr_capped(tuple(args)), _repr_capped(kwargs)
    task_headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": shadow,
        "eta": eta.isoformat() if eta else None,
        "expires": expires.isoformat() if expires else None,
        "group": group_id,
        "group_index": group_index,
        "retries": retries,
        "timelimit": [time_limit, soft_time_limit],
        "root_id": root_id or task_id,
        "parent_id": parent_id,
        "argsrepr": argsrepr,
        "kwargsrepr": kwargsrepr,
        "origin": _ORIGIN,
        "ignore_result": ignore_result,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    if headers:
        task_headers.update(headers)
    if compression:  # as kombu: the codec's content type in the 'compression' header
        from celeriac.compression import compress

        task_headers["compression"], body = compress(compression, body)
    properties: dict[str, Any] = {
        "correlation_id": task_id,
        "reply_to": reply_to or _CLIENT_ID,
        "delivery_mode": 2,
        "priority": max(0, min(9, int(priority or 0))),
    }
    if expires is not None:
        ms = max(0, int((expires - utcnow()).total_seconds() * 1000))
        properties["expiration"] = str(ms)
    return Message(
        headers=task_headers,
        body=body,
        properties=properties,
        content_type=content_type,
        content_encoding=encoding,
        exchange=exchange,
        routing_key=routing_key or queue,
    )


class CallBatch(Sequence[Message]):
    """Calls of one task with one set of options, as bulk sends make them: the first
    call's message is the template and every call adds only its id, body and argument
    reprs. It reads as a sequence of Messages (built on first use); ``envelopes()``
    splices each call into the template's envelope, encoded once, which is what Redis
    stores: a bulk send then costs no dict and no JSON encoding of headers per message.
    """

    def __init__(self, template: Message,
                 calls: Sequence[tuple[Sequence[Any], dict[str, Any] | None]],
                 serializer: str) -> None:
        self.template = template
        headers = template.headers
        #: each call's root id is its own id (a batch sent outside a task)
        self.shared_root = headers.get("root_id") == headers.get("id")
        own = (template.task_id, template.body, headers.get("argsrepr"),
               headers.get("kwargsrepr"))
        self._calls: list[tuple[str, bytes, Any, Any]] = [own]
        ids = new_ids(len(calls))
        self._calls += [_call_parts(i, a, k, serializer)
                        for i, (a, k) in zip(ids, calls, strict=True)]
        self._messages: list[Message] | None = None

    @property
    def task_ids(self) -> list[str]:
        return [call[0] for call in self._calls]

    @property
    def calls(self) -> list[tuple[str, bytes, str, str]]:
        """Each call's (task id, body, argsrepr, kwargsrepr), the template's first."""
        return self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def __getitem__(self, index: Any) -> Any:
        if self._messages is None:
            self._messages = [self.template] + [self._message(c) for c in self._calls[1:]]
        return self._messages[index]

    def _message(self, call: tuple[str, bytes, Any, Any]) -> Message:
        task_id, body, argsrepr, kwargsrepr = call
        template = self.template
        headers = dict(template.headers)
        if self.shared_root:
            headers["root_id"] = task_id
        headers["id"] = task_id
        headers["argsrepr"] = argsrepr
        headers["kwargsrepr"] = kwargsrepr
        properties = dict(template.properties)
        properties["correlation_id"] = task_id
        return Message(headers=headers, body=body, properties=properties,
                       content_type=template.content_type,
                       content_encoding=template.content_encoding,
                       exchange=template.exchange, routing_key=template.routing_key)

    def envelopes(self) -> list[bytes]:
        """Each call's kombu envelope: ``to_envelope`` of its message, byte for byte, but
        for the delivery tag: kombu takes any unique string; these are UUID-shaped, a
        random one per batch with a counter in its last 12 digits."""
        form, pick = self._envelope_form()
        b64, dumps = base64.b64encode, orjson.dumps
        tag = new_id()[:24].encode()
        return [form % pick((dumps(task_id), b'"%b%012x"' % (tag, i), b'"' + b64(body) + b'"',
                             dumps(argsrepr), dumps(kwargsrepr)))
                for i, (task_id, body, argsrepr, kwargsrepr) in enumerate(self._calls)]

    def _envelope_form(self) -> tuple[bytes, Callable[[tuple[bytes, ...]], Any]]:
        """The template's envelope as a ``%b`` form with a hole at each per-call JSON
        value, and what picks the values for the holes, in their order, from
        (id, delivery tag, body, argsrepr, kwargsrepr)."""
        mark = f"celeriac-slot-{os.urandom(8).hex()}-"
        ident, tag, body, args, kwargs = (f"{mark}{i}" for i in range(5))
        document = _envelope_document(self._message((ident, b"", args, kwargs)), tag)
        document["body"] = body
        encoded = orjson.dumps(document, default=serialization._encode_extra)
        pieces = encoded.split(b'"' + mark.encode())  # each hole: digit, closing quote
        literals = [pieces[0]] + [piece[2:] for piece in pieces[1:]]
        form = b"%b".join(literal.replace(b"%", b"%%") for literal in literals)
        return form, itemgetter(*[piece[0] - ord("0") for piece in pieces[1:]])


class DueBatch(Sequence[tuple[Message, float]]):
    """A CallBatch due at one time, as the delay store takes it: (message, due) pairs,
    or ``batch.envelopes()`` for a broker that stores envelopes."""

    def __init__(self, batch: CallBatch, due: float) -> None:
        self.batch = batch
        self.due = due

    def __len__(self) -> int:
        return len(self.batch)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [(m, self.due) for m in self.batch[index]]
        return self.batch[index], self.due


def scheduled(messages: Sequence[Message], due: float) -> Sequence[tuple[Message, float]]:
    """(message, due) pairs for the delay store; a CallBatch stays one (a DueBatch)."""
    if isinstance(messages, CallBatch):
        return DueBatch(messages, due)
    return [(m, due) for m in messages]


def task_ids(messages: Sequence[Message]) -> list[str]:
    """The task ids of a batch of messages, without building a CallBatch's messages."""
    if isinstance(messages, CallBatch):
        return messages.task_ids
    return [m.task_id for m in messages]


def _call_parts(task_id: str, args: Sequence[Any], kwargs: dict[str, Any] | None,
                serializer: str) -> tuple[str, bytes, str, str]:
    """One call of a batch: (task id, body, argsrepr, kwargsrepr)."""
    return (task_id, *_body_and_reprs(args, kwargs, serializer))


def _body_and_reprs(args: Sequence[Any], kwargs: dict[str, Any] | None,
                    serializer: str) -> tuple[bytes, str, str]:
    """A call's body with the fixed (empty) embed, and its argument reprs."""
    if not args and not kwargs and serializer == "json":
        return _NO_ARGUMENTS_JSON, "()", "{}"
    kwargs = kwargs or {}
    args = list(args)
    if serializer == "json":  # the body's three parts encoded apart: the embed is fixed
        dumps = serialization.json_dumps
        body = b"[%b,%b,%b]" % (dumps(args) if args else b"[]",
                                dumps(kwargs) if kwargs else b"{}", _EMPTY_EMBED_JSON)
    else:
        _, _, body = serialization.dumps([args, kwargs, _EMPTY_EMBED], serializer)
    return body, _repr_capped(tuple(args)), _repr_capped(kwargs)


def parse_task(message: Message, accept: frozenset[str]) -> TaskCall:
    """Decode a protocol v2 message. Raises a TaskMessageError subclass on bad input."""
    headers = message.headers
    if not isinstance(headers, dict) or not headers.get("task"):
        raise DecodeError("not a Celery protocol v2 task message: no 'task' header")
    if not isinstance(headers["task"], str):
        raise DecodeError(f"'task' header must be a string, got {type(headers['task']).__name__}")
    body = message.body
    if headers.get("compression"):
        from celeriac.compression import decompress

        body = decompress(headers["compression"], body)
    decoded = serialization.loads(body, message.content_type, accept)
    if not (isinstance(decoded, (list, tuple)) and len(decoded) == 3):
        raise DecodeError("body must be [args, kwargs, embed]")
    args, kwargs, embed = decoded
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise DecodeError("body args must be a list and kwargs an object")
    if embed is None:
        embed = {}
    if not isinstance(embed, dict):
        raise DecodeError("body embed must be an object")
    get = embed.get
    return TaskCall(  # (positional: this runs for every message a worker takes)
        str(headers.get("id") or message.properties.get("correlation_id") or ""),
        headers["task"], list(args), kwargs,
        get("callbacks"), get("errbacks"), get("chain"), get("chord"), headers,
        parse_datetime(headers.get("eta")),  # raises DecodeError on a bad value
        parse_datetime(headers.get("expires")),
    )


# -- kombu's JSON envelope (Redis list items; stored form on SQLite and memory) -------


def to_envelope(message: Message, delivery_tag: str | None = None) -> bytes:
    """Serialize as kombu's Redis transport does: base64 body, hyphenated content keys."""
    document = _envelope_document(message, delivery_tag or new_id())
    document["body"] = base64.b64encode(message.body).decode("ascii")
    return orjson.dumps(document, default=serialization._encode_extra)


def to_text_envelope(message: Message) -> bytes:
    """``to_envelope`` with a JSON body as text, not base64 (Redis broadcasts: event
    batches, remote control). kombu sends this itself with ``body_encoding=None``: its
    virtual Message decodes a body only when ``properties`` name a ``body_encoding``,
    then loads the text as JSON. A third fewer bytes, and no base64 pass over them (a
    worker's -E sends ~700 bytes of events per task). Any other body is base64."""
    if message.content_type != serialization.JSON:
        return to_envelope(message)
    try:
        text = message.body.decode()
    except UnicodeDecodeError:
        return to_envelope(message)
    document = _envelope_document(message, new_id(), None)
    document["body"] = text
    return orjson.dumps(document, default=serialization._encode_extra)


def _envelope_document(message: Message, delivery_tag: str,
                       body_encoding: str | None = "base64") -> dict[str, Any]:
    """kombu's envelope as a dict, its body still to be set (first key, as kombu's)."""
    properties = dict(message.properties)
    properties["delivery_info"] = {
        "exchange": message.exchange,
        "routing_key": message.routing_key,
    }
    if body_encoding is not None:
        properties["body_encoding"] = body_encoding
    properties["delivery_tag"] = delivery_tag
    properties.setdefault("priority", 0)
    return {
        "body": "",
        "content-encoding": message.content_encoding,
        "content-type": message.content_type,
        "headers": message.headers,
        "properties": properties,
    }


def from_envelope(raw: bytes | str) -> Message:
    """Parse a kombu envelope into a Message. Raises DecodeError when it is not one.
    (Every consumed message on Redis, SQLite and memory comes through here: written
    for few lookups, with the fields in Message's order.)"""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"envelope is not JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise DecodeError("envelope must be a JSON object")
    get = envelope.get
    properties = get("properties") or {}
    headers = get("headers") or {}
    if not isinstance(properties, dict) or not isinstance(headers, dict):
        raise DecodeError("envelope headers and properties must be objects")
    body = get("body", "")
    if properties.pop("body_encoding", None) == "base64":
        try:  # b64decode(validate=True) without its wrapper: the same check and errors
            body_bytes = binascii.a2b_base64(body, strict_mode=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise DecodeError(f"body is not valid base64: {exc}") from exc
    else:
        body_bytes = body.encode() if isinstance(body, str) else bytes(body or b"")
    info = properties.pop("delivery_info", None) or {}
    return Message(headers, body_bytes, properties,
                   _text(get("content-type"), serialization.JSON),
                   _text(get("content-encoding"), "utf-8"),
                   _text(info.get("exchange"), ""), _text(info.get("routing_key"), ""))


def _text(value: Any, default: str) -> str:
    """``str(value or default)``, without the call for the usual str value."""
    if type(value) is str and value:
        return value
    return str(value or default)
