"""The chord join's contract: what each result backend family implements.

A header task that finishes (SUCCESS or FAILURE; not RETRY) adds its part to the join
under its group id. A part is keyed by ``<task id>:<group index>``, so a task that
stores twice (redelivered after its worker died before acking, or run by two workers)
counts once. The part that completes the header gets a *claim*: only one caller can
hold it (Redis ``SET NX``, a SQL row update, a lock), so two workers racing on the last
results send the body once. After the body is sent the join is marked done, so a late
duplicate of a header task finds it done and sends nothing.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any


@dataclass
class Claim:
    """The right to send a chord's body: the header's parts, in header order."""

    token: str
    #: (task id, state, result) of each part; a failure's result is Celery's dict
    parts: list[tuple[str, str, Any]]


class ChordJoin(abc.ABC):
    """One backend's chord join state and saved groups."""

    def __init__(self, chord_expires_s: float | None, result_expires_s: float | None,
                 claim_expires_s: int) -> None:
        self.chord_expires_s = chord_expires_s
        #: header results and saved groups live at least as long as results (Celery)
        self.group_expires_s = (max(chord_expires_s, result_expires_s)
                                if chord_expires_s and result_expires_s else None)
        self.claim_expires_s = claim_expires_s

    @abc.abstractmethod
    async def set_size(self, group_id: str, size: int) -> None:
        """Record how many parts complete the header (sent before its last task)."""

    @abc.abstractmethod
    async def add_part(self, group_id: str, task_id: str, group_index: int | None,
                       state: str, result: Any) -> Claim | None:
        """Add one part (idempotent); the claim when this part completes the header
        and nobody holds the claim yet, else None."""

    async def confirm(self, group_id: str, claim: Claim, publish_s: float) -> bool:
        """Still ours, for ``publish_s`` more seconds? (Redis claims expire.)"""
        return True

    @abc.abstractmethod
    async def done(self, group_id: str, claim: Claim) -> None:
        """The body was sent (or failed): drop the parts, keep a 'done' mark."""

    @abc.abstractmethod
    async def failed(self, group_id: str, claim: Claim) -> None:
        """The header failed and the body was failed: forget the size (Celery keeps the
        parts), so a late duplicate does not fail it again."""

    @abc.abstractmethod
    async def save_group(self, group_id: str, encoded: bytes) -> None: ...

    @abc.abstractmethod
    async def restore_group(self, group_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def delete_group(self, group_id: str) -> None: ...


def member(task_id: str, group_index: int | None) -> str:
    """A part's key in the join: Celery 5.7's ``<tid>:<index>`` (``+inf`` for none)."""
    return f"{task_id}:{'+inf' if group_index is None else group_index}"
