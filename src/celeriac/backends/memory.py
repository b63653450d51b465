"""In-process result backend (``memory://``): the reference, and the test backend.

One store per URL per process, shared across threads. Expiry is honoured on read.
Results are kept as the JSON bytes every other backend stores, so a result that cannot
be encoded fails here as it fails there (EncodeError), and a read returns what Redis or
SQLite would (a tuple comes back as a list, as in Celery).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celeriac import states
from celeriac.backends.base import Meta, ResultBackend, decode_meta, encode_meta
from celeriac.backends.polling import poll_until_ready

_STORES: dict[str, dict[str, tuple[str | None, bytes, float | None]]] = {}
_LOCK = threading.Lock()


class MemoryBackend(ResultBackend):
    """See the module docstring."""

    schemes = ("memory",)

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        with _LOCK:
            self._results = _STORES.setdefault(url, {})

    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        raw = encode_meta(meta, self.codec)
        expires_at = None if expires_s is None else time.time() + expires_s
        with _LOCK:
            old = self._results.get(task_id)
            if old is not None and old[0] == states.SUCCESS:
                return
            self._results[task_id] = (meta.get("status"), raw, expires_at)

    async def get(self, task_id: str) -> Meta | None:
        with _LOCK:
            found = self._results.get(task_id)
            if found is None:
                return None
            _, raw, expires_at = found
            if expires_at is not None and expires_at <= time.time():
                del self._results[task_id]
                return None
        return decode_meta(raw, self.codec)

    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        return await poll_until_ready(self.get, task_id, timeout_s, max_pause_s=0.005)

    async def forget(self, task_id: str) -> None:
        with _LOCK:
            self._results.pop(task_id, None)
