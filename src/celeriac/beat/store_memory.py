"""The in-process beat store for ``memory://`` brokers: the contract's reference."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from celeriac.beat.store import BeatStore, Claim


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.leader: tuple[str, float] | None = None  # node, monotonic deadline
        self.values: dict[str, str] = {}


_STATES: dict[str, _State] = {}
_STATES_LOCK = threading.Lock()


class MemoryStore(BeatStore):
    """State shared by every scheduler of one process on the same ``memory://`` URL."""

    def __init__(self, url: str = "memory://") -> None:
        with _STATES_LOCK:
            self._state = _STATES.setdefault(url, _State())

    def lead(self, node: str, ttl_s: float) -> bool:
        s = self._state
        now = time.monotonic()
        with s.lock:
            if s.leader is None or s.leader[0] == node or s.leader[1] <= now:
                s.leader = (node, now + ttl_s)
                return True
            return False

    def resign(self, node: str) -> None:
        s = self._state
        with s.lock:
            if s.leader is not None and s.leader[0] == node:
                s.leader = None

    def load(self, names: Sequence[str]) -> dict[str, str | None]:
        with self._state.lock:
            return {n: self._state.values.get(n) for n in names}

    def claim(self, claims: Sequence[Claim]) -> list[bool]:
        values = self._state.values
        out = []
        with self._state.lock:
            for name, expected, new in claims:
                ok = values.get(name) == expected
                if ok:
                    values[name] = new
                out.append(ok)
        return out
