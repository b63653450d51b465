"""Shared memory between a consumer-children parent and its children: the board.

With ``worker_consumer_children`` each prefork child consumes from the broker itself
(pools/consumer_children.py), so the parent no longer sees the tasks go by. What it
must still know it reads here, a few hundred bytes of anonymous ``MAP_SHARED`` memory
made before the first fork:

- one slot per child: the task it runs (id, name), when it started, its hard time
  limit, and how many tasks the child has finished. A task costs the child two
  ``pack_into`` calls, no syscall. The parent reads a slot to answer ``inspect
  active``, to signal the child running a task (``revoke(terminate=True)``), to kill a
  child past a task's hard limit, and, when a child dies, to learn which task died with
  it;
- the lost list: ids of tasks that were running in a child when it died, with how many
  times that happened and why. The broker gives a dead child's unacked messages back
  (RabbitMQ at once, Redis when their lease runs out); the child that receives such a
  redelivered message looks its id up here and records the task as failed
  (``WorkerLostError``, or ``TimeLimitExceeded`` when the parent killed it at its hard
  limit) instead of running it again, as the prefork parent does today
  (``task_reject_on_worker_lost`` runs it once more, then fails it).
"""

from __future__ import annotations

import mmap
import struct
import time

#: running flag, started at (monotonic), hard limit s (0: none), finished count,
#: id length, name length, id bytes, name bytes
_SLOT = struct.Struct("=qddqHH64s128s")
SLOT_SIZE = 256
#: count (0: free entry), reason, id length, id bytes
_LOST = struct.Struct("=bbH64s")
LOST_SIZE = 72
LOST_ENTRIES = 512

#: why a task was lost: its child died, or the parent killed it at its hard time limit
DIED, TIME_LIMIT = 1, 2


class Board:
    """The slots of ``count`` children and the lost list, in one shared mapping."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._lost_at = self.count * SLOT_SIZE
        self._map = mmap.mmap(-1, self._lost_at + LOST_ENTRIES * LOST_SIZE)
        self._next_lost = 0

    # -- slots: the child writes, the parent reads --------------------------------------
    def clear(self, index: int) -> None:
        _SLOT.pack_into(self._map, index * SLOT_SIZE, 0, 0.0, 0.0, 0, 0, 0, b"", b"")

    def start(self, index: int, task_id: str, name: str, hard_s: float | None) -> None:
        """In the child: this task starts now."""
        tid, tname = task_id.encode()[:64], name.encode()[:128]
        done = self.finished(index)
        _SLOT.pack_into(self._map, index * SLOT_SIZE, 1, time.monotonic(),
                        float(hard_s or 0.0), done, len(tid), len(tname), tid, tname)

    def finish(self, index: int) -> None:
        """In the child: the running task is over (one more finished)."""
        offset = index * SLOT_SIZE
        struct.pack_into("=q", self._map, offset + 24, self.finished(index) + 1)
        struct.pack_into("=q", self._map, offset, 0)

    def finished(self, index: int) -> int:
        return int(struct.unpack_from("=q", self._map, index * SLOT_SIZE + 24)[0])

    def running(self, index: int) -> tuple[str, str, float, float] | None:
        """(task id, name, started at (monotonic), hard limit s) of the child's running
        task, or None when it runs none."""
        running, at, hard_s, _, id_len, name_len, tid, tname = _SLOT.unpack_from(
            self._map, index * SLOT_SIZE)
        if not running:
            return None
        return tid[:id_len].decode(), tname[:name_len].decode(), at, hard_s

    # -- the lost list: the parent writes, the children read ----------------------------
    def add_lost(self, task_id: str, reason: int) -> int:
        """In the parent: ``task_id`` died with its child; returns how many times now."""
        found = self._find_lost(task_id)
        if found is not None:
            offset, count = found
            struct.pack_into("=bb", self._map, offset, min(count + 1, 100), reason)
            return count + 1
        tid = task_id.encode()[:64]
        offset = self._lost_at + self._next_lost * LOST_SIZE
        self._next_lost = (self._next_lost + 1) % LOST_ENTRIES
        _LOST.pack_into(self._map, offset, 0, reason, len(tid), tid)
        struct.pack_into("=b", self._map, offset, 1)  # the count last: a reader sees all
        return 1

    def lost(self, task_id: str) -> tuple[int, int]:
        """(times lost, reason) for a task id; (0, 0) when it never was."""
        found = self._find_lost(task_id)
        if found is None:
            return 0, 0
        count, reason, _, _ = _LOST.unpack_from(self._map, found[0])
        return int(count), int(reason)

    def _find_lost(self, task_id: str) -> tuple[int, int] | None:
        tid = task_id.encode()[:64]
        for entry in range(LOST_ENTRIES):
            offset = self._lost_at + entry * LOST_SIZE
            count, _, id_len, raw = _LOST.unpack_from(self._map, offset)
            if count and raw[:id_len] == tid:
                return offset, int(count)
        return None
