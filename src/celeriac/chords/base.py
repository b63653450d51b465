"""The chord join's contract: what each result backend family implements.

A header task that finishes (SUCCESS or FAILURE; not RETRY) adds its part to the join
under its group id. A part is keyed by ``<task id>:<group index>``, so a task that
stores twice (redelivered after its worker died before acking, or run by two workers)
counts once. The part that completes the header gets a *claim*: only one caller can
hold it (Redis ``SET NX``, a SQL row update, a lock), so two workers racing on the last
results send the body once. After the body is sent the join is marked done, so a late
duplicate of a header task finds it done and sends nothing.

A claim expires (``claim_expires_s``): a part that completes the header while another
caller holds the claim gets ``HELD`` and waits (``reclaim``) until the holder marks the
join done, or its claim expires (its worker died between the claim and ``done``) and
the waiter takes it over and sends the body itself. The body then travels with the
claim's token (the ``celeriac_chord_claim`` header), and a worker runs a body message
only if ``accept`` says its token was the first sent for that task id: a body the dead
holder did publish and the take-over's copy run once between them.
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


class Held:
    """The header is complete, and another caller holds the claim to send its body."""

    def __repr__(self) -> str:
        return "HELD"


HELD = Held()


class NoSize:
    """The part was added, but the header's size is not recorded (yet): the client
    writes it before it sends the header; a size that never comes is logged."""

    def __repr__(self) -> str:
        return "NO_SIZE"


NO_SIZE = NoSize()


class ChordJoin(abc.ABC):
    """One backend's chord join state and saved groups."""

    #: ``store_part`` stores a header task's result with its part, in one step
    stores_results = False

    def __init__(self, chord_expires_s: float | None, result_expires_s: float | None,
                 claim_expires_s: int) -> None:
        self.chord_expires_s = chord_expires_s
        #: header results and saved groups live at least as long as results (Celery)
        self.group_expires_s = (max(chord_expires_s, result_expires_s)
                                if chord_expires_s and result_expires_s else None)
        self.claim_expires_s = claim_expires_s

    @abc.abstractmethod
    async def set_size(self, group_id: str, size: int) -> bool:
        """Record how many parts complete the header (before its tasks are sent);
        False, recording nothing, when a saved group already has this id."""

    @abc.abstractmethod
    async def size_known(self, group_id: str) -> bool:
        """The header's size is recorded, or the join is done."""

    @abc.abstractmethod
    async def group_exists(self, group_id: str) -> bool:
        """A group was saved under this id (``GroupResult.save``)."""

    @abc.abstractmethod
    async def add_to_chord(self, group_id: str) -> None:
        """One more part completes the header (a task added at run time)."""

    @abc.abstractmethod
    async def add_part(self, group_id: str, task_id: str, group_index: int | None,
                       state: str, result: Any) -> Claim | Held | NoSize | None:
        """Add one part (idempotent); the claim when this part completes the header
        and nobody holds the claim yet; HELD when the header is complete and someone
        else holds it; NO_SIZE when the header's size is not recorded; else None (not
        complete yet, or already done)."""

    async def store_part(self, group_id: str, task_id: str, group_index: int | None,
                         state: str, result: Any, meta: dict[str, Any],
                         expires_s: float | None) -> Claim | Held | NoSize | None:
        """Store the task's result ``meta`` (as ``ResultBackend.store``: a stored
        SUCCESS kept) and add its part, at once; as ``add_part`` otherwise. Only where
        ``stores_results``; raises what ``store`` raises for a value it cannot store."""
        raise NotImplementedError

    @abc.abstractmethod
    async def reclaim(self, group_id: str) -> Claim | Held | None:
        """After HELD: the claim if the holder's expired (taken over now), HELD while
        it is still held, None once the join is done (or failed, or gone)."""

    @abc.abstractmethod
    async def accept(self, group_id: str, task_id: str, token: str) -> bool:
        """A body message sent under claim ``token`` arrived: True if it is the first
        token seen for ``task_id`` (or the same one again: a redelivery), False for a
        second copy sent under another claim (drop it)."""

    async def confirm(self, group_id: str, claim: Claim, publish_s: float) -> bool:
        """Still ours, for ``publish_s`` more seconds? (Redis claims expire.)"""
        return True

    @abc.abstractmethod
    async def done(self, group_id: str, claim: Claim) -> None:
        """The body was sent (or failed): drop the parts, keep a 'done' mark."""

    @abc.abstractmethod
    async def failed(self, group_id: str, claim: Claim) -> None:
        """The header failed and the body was failed: mark the join done, so a late
        duplicate does not fail it again."""

    @abc.abstractmethod
    async def save_group(self, group_id: str, encoded: bytes) -> None: ...

    @abc.abstractmethod
    async def restore_group(self, group_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def delete_group(self, group_id: str) -> None: ...


def claim_header(group_id: str, token: str) -> str:
    """The ``celeriac_chord_claim`` header of a body sent under a claim."""
    return f"{group_id} {token}"


def member(task_id: str, group_index: int | None) -> str:
    """A part's key in the join: Celery 5.7's ``<tid>:<index>`` (``+inf`` for none)."""
    return f"{task_id}:{'+inf' if group_index is None else group_index}"
