"""The chord join of the ``memory://`` result backend: one dict per backend URL, every
step under one lock (the reference the other joins are tested against)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from celeriac.chords.base import HELD, NO_SIZE, ChordJoin, Claim, Held, NoSize, member


@dataclass
class _State:
    size: int | None = None
    parts: dict[str, tuple[float, str, str, Any]] = field(default_factory=dict)
    claim: str | None = None
    claim_until: float = 0.0
    done: bool = False


_JOINS: dict[str, dict[str, _State]] = {}
_GROUPS: dict[str, dict[str, tuple[bytes, float | None]]] = {}
_SENDS: dict[str, dict[tuple[str, str], str]] = {}
_LOCK = threading.Lock()


class MemoryChordJoin(ChordJoin):
    """See the module docstring."""

    def __init__(self, url: str, chord_expires_s: float | None,
                 result_expires_s: float | None, claim_expires_s: int) -> None:
        super().__init__(chord_expires_s, result_expires_s, claim_expires_s)
        with _LOCK:
            self._joins = _JOINS.setdefault(url, {})
            self._groups = _GROUPS.setdefault(url, {})
            self._sends = _SENDS.setdefault(url, {})

    async def size_known(self, group_id: str) -> bool:
        with _LOCK:
            join = self._joins.get(group_id)
            return join is not None and (join.size is not None or join.done)

    async def group_exists(self, group_id: str) -> bool:
        return await self.restore_group(group_id) is not None

    async def set_size(self, group_id: str, size: int) -> bool:
        if await self.group_exists(group_id):
            return False
        with _LOCK:
            state = self._joins.setdefault(group_id, _State())
            state.size, state.claim, state.done = size, None, False
            state.claim_until = 0.0
        return True

    async def add_to_chord(self, group_id: str) -> None:
        with _LOCK:
            join = self._joins.setdefault(group_id, _State())
            join.size = (join.size or 0) + 1

    async def add_part(self, group_id: str, task_id: str, group_index: int | None,
                       state: str, result: Any) -> Claim | Held | NoSize | None:
        score = float("inf") if group_index is None else float(group_index)
        with _LOCK:
            join = self._joins.setdefault(group_id, _State())
            if join.done:
                return None
            join.parts.setdefault(member(task_id, group_index),
                                  (score, task_id, state, result))
            if join.size is None:
                return NO_SIZE
            return self._try_claim(join)

    async def reclaim(self, group_id: str) -> Claim | Held | None:
        with _LOCK:
            join = self._joins.get(group_id)
            return None if join is None or join.done else self._try_claim(join)

    def _try_claim(self, join: _State) -> Claim | Held | None:
        if join.size is None or len(join.parts) != join.size:
            return None
        now = time.monotonic()
        if join.claim is not None and join.claim_until > now:
            return HELD
        join.claim, join.claim_until = uuid.uuid4().hex, now + self.claim_expires_s
        parts = sorted(join.parts.values(), key=lambda p: p[0])
        return Claim(join.claim, [(tid, st, res) for _, tid, st, res in parts])

    async def accept(self, group_id: str, task_id: str, token: str) -> bool:
        with _LOCK:
            return self._sends.setdefault((group_id, task_id), token) == token

    async def confirm(self, group_id: str, claim: Claim, publish_s: float) -> bool:
        with _LOCK:
            join = self._joins.get(group_id)
            if join is None or join.done or join.claim != claim.token:
                return False
            join.claim_until = time.monotonic() + max(self.claim_expires_s, publish_s + 1)
            return True

    async def done(self, group_id: str, claim: Claim) -> None:
        with _LOCK:
            join = self._joins.get(group_id)
            if join is not None and join.claim == claim.token:
                join.parts.clear()
                join.size, join.done = None, True

    async def failed(self, group_id: str, claim: Claim) -> None:
        await self.done(group_id, claim)

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
