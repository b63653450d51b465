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
- the deliveries each child holds (tag, queue, task id and name, one entry each,
  written when fetched and cleared when settled): ``inspect reserved`` lists them, and
  on brokers with leases (Redis, SQLite), when a child dies, the parent gives them back
  to their queues at once instead of after their lease runs out (RabbitMQ redelivers
  a closed connection's messages itself);
- what each child has run, by task name (written once a second), for ``inspect
  stats``;
- the lost list: ids of tasks that were running in a child when it died, with how many
  times that happened and why. The broker gives a dead child's unacked messages back
  (RabbitMQ at once, Redis when their lease runs out); the child that receives such a
  redelivered message looks its id up here (and in the slots: a dead child's slot
  names its task until the parent has reaped it) and records the task as failed
  (``WorkerLostError``; ``TimeLimitExceeded`` when the parent killed it at its hard
  limit; REVOKED when remote control terminated it: the parent writes those two before
  it kills) instead of running it again, as the prefork parent does
  (``task_reject_on_worker_lost`` runs it once more after a death, then fails it).
"""

from __future__ import annotations

import marshal
import mmap
import struct
import time
from typing import Any

#: running flag, started at (monotonic), hard limit s (0: none), finished count,
#: id length, name length, id bytes, name bytes; then (at _ARGS_AT) the lengths and
#: bytes of the task's argsrepr and kwargsrepr, cut to REPR_BYTES
_SLOT = struct.Struct("=qddqHH64s128s")
SLOT_SIZE = 1024
#: the parts a task's start writes: the names (at 32), then the flag and times (at 0)
_NAMES = struct.Struct("=HH64s128sHH384s384s")
_HEAD = struct.Struct("=qdd")
_ARGS_AT = _SLOT.size
_ARGS = struct.Struct("=HH384s384s")
REPR_BYTES = 384
#: count (0: free entry), reason, id length, start of the run lost last, id bytes
_LOST = struct.Struct("=bbHd64s")
LOST_SIZE = 80
_LOST_ID_AT = 12
LOST_ENTRIES = 512

#: held deliveries: in use, length, marshal of (tag, queue)
_HELD = struct.Struct("=bB")
HELD_SIZE = 256
HELD_PER_CHILD = 256

#: tasks run by name (``inspect stats``' "total"): length, marshal of a dict
TOTALS_SIZE = 8192

#: why a task was lost: its child died, the parent killed it at its hard time limit, or
#: remote control terminated it (revoke(terminate=True))
DIED, TIME_LIMIT, TERMINATED = 1, 2, 3


class Board:
    """The slots of ``count`` children and the lost list, in one shared mapping."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._held_at = self.count * SLOT_SIZE
        self._totals_at = self._held_at + self.count * HELD_PER_CHILD * HELD_SIZE
        self._lost_at = self._totals_at + self.count * TOTALS_SIZE
        self._map = mmap.mmap(-1, self._lost_at + LOST_ENTRIES * LOST_SIZE)
        self._next_lost = 0

    # -- slots: the child writes, the parent reads --------------------------------------
    def clear(self, index: int) -> None:
        _SLOT.pack_into(self._map, index * SLOT_SIZE, 0, 0.0, 0.0, 0, 0, 0, b"", b"")
        for entry in range(HELD_PER_CHILD):
            self.release(index, entry)
        struct.pack_into("=I", self._map, self._totals_at + index * TOTALS_SIZE, 0)

    def start(self, index: int, task_id: str, name: str, hard_s: float | None,
              argsrepr: str = "", kwargsrepr: str = "") -> None:
        """In the child: this task starts now (its arguments' reprs for ``inspect
        active``, cut to REPR_BYTES)."""
        tid, tname = task_id.encode()[:64], name.encode()[:128]
        targs, tkwargs = _cut(argsrepr), _cut(kwargsrepr)
        offset = index * SLOT_SIZE
        _NAMES.pack_into(self._map, offset + 32, len(tid), len(tname), tid, tname,
                         len(targs), len(tkwargs), targs, tkwargs)
        _HEAD.pack_into(self._map, offset, 1, time.monotonic(), float(hard_s or 0.0))

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

    def arguments(self, index: int) -> tuple[str, str]:
        """(argsrepr, kwargsrepr) of the task the child runs or ran last."""
        args_len, kwargs_len, args, kwargs = _ARGS.unpack_from(
            self._map, index * SLOT_SIZE + _ARGS_AT)
        return (args[:args_len].decode(errors="replace"),
                kwargs[:kwargs_len].decode(errors="replace"))

    # -- held deliveries: the child writes, the parent reads when it died -----------------
    def hold(self, index: int, entry: int, tag: Any, queue: str, task_id: str,
             name: str) -> bool:
        """In the child: a delivery it holds, in ``entry`` (0 to HELD_PER_CHILD - 1);
        False when it does not fit (a leased broker's lease brings it back anyway)."""
        raw = marshal.dumps((tag, queue, task_id, name))
        if len(raw) > HELD_SIZE - _HELD.size:
            return False
        offset = self._held_at + (index * HELD_PER_CHILD + entry) * HELD_SIZE
        self._map[offset + 2:offset + 2 + len(raw)] = raw
        _HELD.pack_into(self._map, offset, 1, len(raw))
        return True

    def release(self, index: int, entry: int) -> None:
        self._map[self._held_at + (index * HELD_PER_CHILD + entry) * HELD_SIZE] = 0

    def held(self, index: int, clear: bool = False) -> list[tuple[Any, str, str, str]]:
        """(tag, queue, task id, name) of each delivery the child holds (cleared when
        ``clear``: the parent gives a dead child's deliveries back once)."""
        out = []
        for entry in range(HELD_PER_CHILD):
            offset = self._held_at + (index * HELD_PER_CHILD + entry) * HELD_SIZE
            used, size = _HELD.unpack_from(self._map, offset)
            if used:
                try:
                    out.append(marshal.loads(self._map[offset + 2:offset + 2 + size]))
                except (EOFError, ValueError, TypeError):
                    continue  # being written by a live child as we read: skip it
                if clear:
                    self._map[offset] = 0
        return out

    # -- totals: the child writes them now and then, the parent reads ------------------
    def write_totals(self, index: int, totals: dict[str, int]) -> None:
        raw = marshal.dumps(totals)
        if len(raw) > TOTALS_SIZE - 4:  # thousands of task names: the biggest ones
            raw = marshal.dumps(dict(sorted(totals.items(), key=lambda kv: -kv[1])[:100]))
        offset = self._totals_at + index * TOTALS_SIZE
        struct.pack_into("=I", self._map, offset, 0)
        self._map[offset + 4:offset + 4 + len(raw)] = raw
        struct.pack_into("=I", self._map, offset, len(raw))

    def totals(self, index: int) -> dict[str, int]:
        offset = self._totals_at + index * TOTALS_SIZE
        size = struct.unpack_from("=I", self._map, offset)[0]
        if not size:
            return {}
        try:
            found = marshal.loads(self._map[offset + 4:offset + 4 + size])
        except (EOFError, ValueError, TypeError):
            return {}  # being written as we read: the next look sees it
        return found if isinstance(found, dict) else {}

    # -- the lost list: the parent writes, the children read ----------------------------
    def add_lost(self, task_id: str, reason: int, started_at: float) -> int:
        """In the parent: the run of ``task_id`` that began at ``started_at`` (its slot's
        time) died with its child; returns how many runs of it died so far."""
        found = self._find_lost(task_id)
        if found is not None:
            offset, count = found
            struct.pack_into("=bbHd", self._map, offset, min(count + 1, 100), reason,
                             len(task_id.encode()[:64]), started_at)
            return count + 1
        tid = task_id.encode()[:64]
        offset = self._lost_at + self._next_lost * LOST_SIZE
        self._next_lost = (self._next_lost + 1) % LOST_ENTRIES
        _LOST.pack_into(self._map, offset, 0, reason, len(tid), started_at, tid)
        struct.pack_into("=b", self._map, offset, 1)  # the count last: a reader sees all
        return 1

    def losses(self, task_id: str) -> tuple[int, int]:
        """In a child, for a redelivered message: (runs of it that died, why the last
        did), (0, 0) when none did. Counts a run the parent has not recorded yet: a dead
        child's slot still naming the task (RabbitMQ redelivers as soon as the child's
        connection drops, which can be before the parent has reaped the child)."""
        times, reason, recorded_at = 0, 0, 0.0
        found = self._find_lost(task_id)
        if found is not None:
            times, reason, _, recorded_at, _ = _LOST.unpack_from(self._map, found[0])
        for index in range(self.count):
            running = self.running(index)
            if running is not None and running[0] == task_id and running[2] != recorded_at:
                times, reason = times + 1, DIED
        return int(times), int(reason)

    def _find_lost(self, task_id: str) -> tuple[int, int] | None:
        tid = task_id.encode()[:64]
        if not tid:
            return None
        at = self._lost_at
        while True:  # mmap.find: a C search, not a loop over 512 entries
            at = self._map.find(tid, at)
            if at < 0:
                return None
            offset = at - (at - self._lost_at) % LOST_SIZE
            count, _, id_len, _, raw = _LOST.unpack_from(self._map, offset)
            if at == offset + _LOST_ID_AT and count and raw[:id_len] == tid:
                return offset, int(count)
            at += 1


def _cut(text: str) -> bytes:
    """``text`` as UTF-8 in at most REPR_BYTES bytes ("..." at the end when cut)."""
    raw = text.encode(errors="replace")
    return raw if len(raw) <= REPR_BYTES else raw[:REPR_BYTES - 3] + b"..."
