"""How a backend turns Celery's result meta into bytes and back: ``result_serializer`` and
``result_accept_content``, as Celery's backends read them.

``json`` (the default): kombu's JSON with ``__type__`` wrappers. ``pickle``: the whole
meta dict pickled, as a Celery worker with ``result_serializer='pickle'`` stores it, so a
result may be any picklable object. A failure's ``result`` stays Celery's
``{"exc_type", "exc_message", "exc_module"}`` dict, which Celery rebuilds under either
serializer; a Celery failure stored as a pickled exception instance is read as it is.

Reading: the stored bytes carry no content type (on Redis), so Celery decodes with its
own ``result_serializer``. celeriac looks at the first byte (a pickle starts with 0x80, JSON
with ``{``), so results written before a serializer change still read, and decodes only
a type in ``result_accept_content`` (unset: ``accept_content``, as Celery): pickle is
never loaded unless the app accepts it (ContentDisallowed).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from celeriac.errors import ConfigurationError, ContentDisallowed, EncodeError
from celeriac.serialization import (
    CONTENT_TYPES,
    JSON,
    PICKLE,
    UnencodableType,
    accepted_types,
    json_dumps,
    json_loads,
)

Meta = dict[str, Any]

#: what a JSON encoder raises for a value it cannot write: a type, a cycle, too deep
ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError)


@dataclass(frozen=True, slots=True)
class ResultCodec:
    """One backend's serializer and the content types it will read."""

    content_type: str = JSON
    accept: frozenset[str] = frozenset({JSON})

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ResultCodec:
        """From the backend options the app adds (``result_serializer``,
        ``result_accept_content``); absent: JSON only, as before."""
        name = str(options.get("result_serializer") or "json")
        content_type = CONTENT_TYPES.get(name, name)
        if content_type not in (JSON, PICKLE):
            raise ConfigurationError(
                f"result_serializer {name!r} is not supported: use 'json' or 'pickle'")
        accept: Iterable[str] = options.get("result_accept_content") or ["json"]
        return cls(content_type, accepted_types(accept))

    def encode(self, meta: Meta) -> bytes:
        """The bytes stored. A result the serializer cannot carry raises EncodeError
        naming its type, before anything is written (the worker records a FAILURE)."""
        if self.content_type == PICKLE:
            try:
                return pickle.dumps(meta, protocol=4)
            except Exception as exc:
                raise EncodeError(f"a value that cannot be serialized as pickle: "
                                  f"{type(meta.get('result'))!r} ({type(exc).__name__}: "
                                  f"{exc})") from None
        try:
            return json_dumps(meta)
        except ENCODE_ERRORS as exc:
            if isinstance(exc, UnencodableType):
                detail = repr(exc.value_type)
            else:
                detail = f"{type(meta.get('result'))!r} ({type(exc).__name__}: {exc})"
            raise EncodeError(f"a value that cannot be serialized as json: {detail}") from None

    def decode(self, raw: bytes | str) -> Meta:
        """A stored meta, by its first byte; only a content type in ``accept``."""
        pickled = isinstance(raw, bytes) and raw[:1] == b"\x80"
        content_type = PICKLE if pickled else JSON
        if content_type not in self.accept:
            name = "pickle" if content_type == PICKLE else "json"
            raise ContentDisallowed(f"a stored result is {name}, which is not in "
                                    f"result_accept_content {sorted(self.accept)}")
        meta = pickle.loads(raw) if isinstance(raw, bytes) and pickled else json_loads(raw)
        if not isinstance(meta, dict):
            raise ValueError("stored result is not an object")
        return meta


JSON_CODEC = ResultCodec()
