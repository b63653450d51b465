"""The chord join of the ``memory://`` result backend: one dict per backend URL, every
step under one lock (the reference the other joins are tested against)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from celeriac.chords.base import ChordJoin, Claim, member


@dataclass
class _State:
    size: int | None = None
    parts: dict[str, tuple[float, str, str, Any]] = field(default_factory=dict)
    claim: str | None = None
    done: bool = False


_JOINS: dict[str, dict[str, _State]] = {}
_GROUPS: dict[str, dict[str, tuple[bytes, float | None]]] = {}
_LOCK = threading.Lock()


class MemoryChordJoin(ChordJoin):
    """See the module docstring."""

    def __init__(self, url: str, chord_expires_s: float | None,
                 result_expires_s: float | None, claim_expires_s: int) -> None:
        super().__init__(chord_expires_s, result_expires_s, claim_expires_s)
        with _LOCK:
            self._joins = _JOINS.setdefault(url, {})
            self._groups = _GROUPS.setdefault(url, {})

    async def set_size(self, group_id: str, size: int) -> None:
        with _LOCK:
            state = self._joins.setdefault(group_id, _State())
            state.size, state.claim, state.done = size, None, False

    async def add_part(self, group_id: str, task_id: str, group_index: int | None,
                       state: str, result: Any) -> Claim | None:
        score = float("inf") if group_index is None else float(group_index)
        with _LOCK:
            join = self._joins.setdefault(group_id, _State())
            if join.done:
                return None
            join.parts.setdefault(member(task_id, group_index),
                                  (score, task_id, state, result))
            if join.size is None or len(join.parts) != join.size or join.claim is not None:
                return None
            join.claim = uuid.uuid4().hex
            parts = sorted(join.parts.values(), key=lambda p: p[0])
            return Claim(join.claim, [(tid, st, res) for _, tid, st, res in parts])

    async def done(self, group_id: str, claim: Claim) -> None:
        with _LOCK:
            join = self._joins.get(group_id)
            if join is not None and join.claim == claim.token:
                join.parts.clear()
                join.size, join.done = None, True

    async def failed(self, group_id: str, claim: Claim) -> None:
        with _LOCK:
            join = self._joins.get(group_id)
            if join is not None:
                join.size = None

    async def save_group(self, group_id: str, encoded: bytes) -> None:
        expires = self.group_expires_s or self.chord_expires_s
        with _LOCK:
            self._groups[group_id] = (encoded, time.time() + expires if expires else None)

    async def restore_group(self, group_id: str) -> bytes | None:
        with _LOCK:
            found = self._groups.get(group_id)
        if found is None or (found[1] is not None and found[1] <= time.time()):
            return None
        return found[0]

    async def delete_group(self, group_id: str) -> None:
        with _LOCK:
            self._groups.pop(group_id, None)
