"""In-process result backend (``memory://``): the reference, and the test backend.

One store per URL per process, shared across threads. Expiry is honoured on read.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celeriac import states
from celeriac.backends.base import Meta, ResultBackend
from celeriac.backends.polling import poll_until_ready

_STORES: dict[str, dict[str, tuple[Meta, float | None]]] = {}
_LOCK = threading.Lock()


class MemoryBackend(ResultBackend):
    """See the module docstring."""

    schemes = ("memory",)

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        with _LOCK:
            self._results = _STORES.setdefault(url, {})

    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        expires_at = None if expires_s is None else time.time() + expires_s
        with _LOCK:
            old = self._results.get(task_id)
            if old is not None and old[0].get("status") == states.SUCCESS:
                return
            self._results[task_id] = (meta, expires_at)

    async def get(self, task_id: str) -> Meta | None:
        with _LOCK:
            found = self._results.get(task_id)
            if found is None:
                return None
            meta, expires_at = found
            if expires_at is not None and expires_at <= time.time():
                del self._results[task_id]
                return None
            return dict(meta)

    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        return await poll_until_ready(self.get, task_id, timeout_s, max_pause_s=0.005)

    async def forget(self, task_id: str) -> None:
        with _LOCK:
            self._results.pop(task_id, None)
