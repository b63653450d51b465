"""Optional message signing with a shared key (``security_key``): HMAC-SHA256.

When ``security_key`` is set, producers sign every task message they send and workers
dead-letter any message whose signature is missing or wrong, before decoding its body.
The signature covers what decides what runs and how: the body bytes, its content type
and encoding, and the headers in ``SIGNED_HEADERS`` (task name, id, eta, expires,
retries, time limits, lineage, group, compression). It travels in the
``celeriac_signature`` header as ``v1:<hex digest>``. Headers a broker rewrites in
transit (``redelivered``) are not covered, so a redelivery keeps a valid signature.

What it protects against: anyone who can write to the broker but has no key (a rogue or
compromised producer, a shared Redis) cannot make a worker run anything. What it does
not do: encrypt, or stop replays of a message captured from the broker (use TLS and
broker authentication for those). Not wire-compatible with Celery's ``auth``
serializer (x509): a Celery client cannot send to workers that require a signature.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from celeriac.protocol import Message

SIGNATURE_HEADER = "celeriac_signature"
VERSION = "v1"
SIGNED_HEADERS = ("lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
                  "retries", "timelimit", "root_id", "parent_id", "compression")


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def digest(message: Message, key: str | bytes) -> str:
    """The signature of a message under a key (``v1:<hex>``)."""
    headers = {name: message.headers.get(name) for name in SIGNED_HEADERS}
    canonical = orjson.dumps([VERSION, message.content_type, message.content_encoding,
                              headers], option=orjson.OPT_SORT_KEYS, default=repr)
    mac = hmac.new(_key_bytes(key), canonical, hashlib.sha256)
    mac.update(b"\n")
    mac.update(message.body)
    return f"{VERSION}:{mac.hexdigest()}"


def sign(message: Message, key: str | bytes) -> Message:
    """Add the signature header (replacing an old one); returns the message."""
    message.headers[SIGNATURE_HEADER] = digest(message, key)
    return message


def verify(message: Message, key: str | bytes) -> str | None:
    """None when the signature is right; otherwise why not (the key is never shown)."""
    given: Any = message.headers.get(SIGNATURE_HEADER) if isinstance(message.headers,
                                                                      dict) else None
    if not given:
        return "unsigned message: security_key is set and the message has no signature"
    if not isinstance(given, str) or not hmac.compare_digest(given, digest(message, key)):
        return "bad signature: the message was changed or signed with another key"
    return None
