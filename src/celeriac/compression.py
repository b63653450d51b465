"""Message body compression as kombu does it: ``task_compression`` / ``compression=``.

A compressed body carries kombu's ``compression`` header (the codec's content type, such
as ``application/x-gzip``), so Celery workers and clients read what celeriac sends and
the other way round. Names as kombu registers them: ``gzip``/``zlib``, ``bzip2``/
``bzip``, ``lzma``/``xz`` (standard library codecs; kombu's brotli and zstd are not).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable

from celeriac.errors import ConfigurationError, DecodeError

_GZIP, _BZ2, _LZMA = "application/x-gzip", "application/x-bz2", "application/x-lzma"
#: name or alias -> the content type kombu puts in the ``compression`` header
ALIASES = {"gzip": _GZIP, "zlib": _GZIP, "bzip2": _BZ2, "bzip": _BZ2, "lzma": _LZMA,
           "xz": _LZMA, _GZIP: _GZIP, _BZ2: _BZ2, _LZMA: _LZMA}
_CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    _GZIP: (zlib.compress, zlib.decompress),
    _BZ2: (bz2.compress, bz2.decompress),
    _LZMA: (lzma.compress, lzma.decompress),
}


def header_for(name: str) -> str:
    """The ``compression`` header for a codec name; ConfigurationError if unknown."""
    try:
        return ALIASES[name.lower()]
    except KeyError:
        raise ConfigurationError(f"unknown compression {name!r}: use one of "
                                 f"{', '.join(sorted(a for a in ALIASES if '/' not in a))}"
                                 ) from None


def compress(name: str, body: bytes) -> tuple[str, bytes]:
    """(header value, compressed body)."""
    header = header_for(name)
    return header, _CODECS[header][0](body)


def decompress(header: str, body: bytes) -> bytes:
    """The body of a message whose ``compression`` header is ``header``."""
    codec = _CODECS.get(ALIASES.get(str(header).lower(), ""))
    if codec is None:
        raise DecodeError(f"unsupported compression {header!r}")
    try:
        return codec[1](body)
    except Exception as exc:  # zlib.error, OSError, lzma.LZMAError
        raise DecodeError(f"{header} body does not decompress: {exc}") from exc
