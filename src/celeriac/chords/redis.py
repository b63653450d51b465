"""The chord join on the Redis result backend, on Celery 5.7's keys, so Celery and
celeriac workers may finish the header tasks of one chord together.

Keys, each ``celery-taskset-meta-<group id>`` plus a suffix (and the backend's
``global_keyprefix`` in front):
- ``.s``  the header's size (the client writes it before sending the last header task);
- ``.j``  a sorted set of parts, scored by group index: JSON ``[1, id, state, result]``;
- ``.d``  a set of ``<task id>:<index>``: a part already counted is not added again;
- ``.t``  a counter of tasks added to the chord at run time (``Task.add_to_chord``);
- ``.c``  the claim to send the body (``SET NX`` with a token, expiring), then ``done``;
- ``.b``  (celeriac's own) a hash of body task id -> the claim token it was first sent
  under, so a copy sent again under a taken-over claim is dropped (``accept``).
A part, the check for completion and the claim are one script (``_ADD_PART``), so two
workers racing on the last parts cannot both claim. A header task that succeeded stores
its result (``celery-task-meta-<id>``, as the backend's ``_STORE`` does) and adds its
part in one script (``_STORE_PART``): one round trip per header task, sent with the
other results of the moment (``backends/redis/batch.py``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from celeriac.backends.redis.backend import _STORE
from celeriac.chords.base import HELD, NO_SIZE, ChordJoin, Claim, Held, NoSize, member
from celeriac.protocol import new_id
from celeriac.serialization import json_dumps, json_loads

if TYPE_CHECKING:
    from celeriac.backends.base import Meta
    from celeriac.backends.redis import RedisBackend

GROUP_PREFIX = "celery-taskset-meta-"

# K: j t s d g c   A: member, value, score, expires, group expires, claim s, token.
# Returns {ready, added, size, claimed}: ready -1 once the join is done.
_ADD_PART_BODY = """
if redis.call('GET', K[6]) == 'done' then return {-1, false, false, 0} end
if redis.call('SISMEMBER', K[4], A[1]) == 0 then
  redis.call('ZADD', K[1], A[3], A[2])
  redis.call('SADD', K[4], A[1])
end
local ready = redis.call('ZCARD', K[1])
local expires = tonumber(A[4])
if expires > 0 then
  for i = 1, 4 do redis.call('EXPIRE', K[i], expires) end
  if tonumber(A[5]) > 0 then redis.call('EXPIRE', K[5], A[5]) end
end
local added = redis.call('GET', K[2])
local size = redis.call('GET', K[3])
local claimed = 0
if size and ready == tonumber(size) + tonumber(added or 0) then
  if redis.call('SET', K[6], A[7], 'NX', 'EX', A[6]) then claimed = 1
  else claimed = 2 end
end
return {ready, added, size, claimed}
"""
# KEYS: j t s d g c   ARGV: as A above
_ADD_PART = "local K, A = KEYS, ARGV\n" + _ADD_PART_BODY
# A header task's result and its part in one script (one round trip, atomic): KEYS: the
# result's key, then _ADD_PART's; ARGV: _STORE's (meta, mode, ttl), then _ADD_PART's.
# The result is written as the backend writes it (Celery's format, SETEX, PUBLISH for
# the clients waiting on it; a stored SUCCESS kept), then the part is added.
_STORE_PART = ("local function store()\n" + _STORE + "\nend\nstore()\n"
               "local K, A = {unpack(KEYS, 2)}, {unpack(ARGV, 4)}\n" + _ADD_PART_BODY)

# KEYS: j t s c   ARGV: token, claim s. 1: claimed, 2: held, 0: done or not complete
_RECLAIM = """
local holder = redis.call('GET', KEYS[4])
if holder == 'done' then return 0 end
local size = redis.call('GET', KEYS[3])
if not size then return 0 end
local added = redis.call('GET', KEYS[2])
if redis.call('ZCARD', KEYS[1]) ~= tonumber(size) + tonumber(added or 0) then return 0 end
if holder then return 2 end
redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[2])
return 1
"""

# KEYS: b   ARGV: task id, token, seconds the hash lives
_ACCEPT = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 1 end
return 0
"""

# KEYS: g c s   ARGV: size, seconds the size lives. A saved group has this id: 0.
_SET_SIZE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2])
else redis.call('SET', KEYS[3], ARGV[1]) end
return 1
"""

# KEYS: c s   ARGV: token, seconds. Extend our claim (or take an expired one back).
_CONFIRM = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if not holder and redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX') then return 1 end
end
return 0
"""

# KEYS: c j t s d   ARGV: token, seconds the 'done' mark lives
_DONE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2]) end
return 1
"""


class RedisChordJoin(ChordJoin):
    """See the module docstring."""

    stores_results = True

    def __init__(self, backend: RedisBackend, chord_expires_s: float | None,
                 result_expires_s: float | None, claim_expires_s: int) -> None:
        super().__init__(chord_expires_s, result_expires_s, claim_expires_s)
        self.backend = backend
        self.prefix = backend.prefix + GROUP_PREFIX

    def key(self, group_id: str, suffix: str = "") -> str:
        return f"{self.prefix}{group_id}{suffix}"

    async def set_size(self, group_id: str, size: int) -> bool:
        # a frozen chord sent again reuses its group id: a new run, a new claim
        k = self.key
        ok = await self.backend.redis.eval(
            _SET_SIZE, [k(group_id), k(group_id, ".c"), k(group_id, ".s")],
            [size, int(self.chord_expires_s or 0)])
        return bool(ok)

    async def size_known(self, group_id: str) -> bool:
        size, claim = await self.backend.redis.run(("EXISTS", self.key(group_id, ".s")),
                                                   ("GET", self.key(group_id, ".c")))
        return bool(size) or claim == b"done"

    async def group_exists(self, group_id: str) -> bool:
        [found] = await self.backend.redis.run(("EXISTS", self.key(group_id)))
        return bool(found)

    async def add_to_chord(self, group_id: str) -> None:
        key = self.key(group_id, ".t")
        ex = int(self.chord_expires_s or 0)
        await self.backend.redis.run(("INCR", key), *([("EXPIRE", key, ex)] if ex else []))

    def _part(self, group_id: str, task_id: str, group_index: int | None, state: str,
              result: Any) -> tuple[list[str], list[Any], str]:
        """(KEYS, ARGV, claim token) of ``_ADD_PART``."""
        k = self.key
        keys = [k(group_id, ".j"), k(group_id, ".t"), k(group_id, ".s"), k(group_id, ".d"),
                k(group_id), k(group_id, ".c")]
        token = new_id().replace("-", "")  # pooled randomness: no syscall per part
        value = json_dumps([1, task_id, state, result])
        score = "+inf" if group_index is None else str(int(group_index))
        return keys, [member(task_id, group_index), value, score,
                      int(self.chord_expires_s or 0), int(self.group_expires_s or 0),
                      self.claim_expires_s, token], token

    async def add_part(self, group_id: str, task_id: str, group_index: int | None,
                       state: str, result: Any) -> Claim | Held | NoSize | None:
        keys, args, token = self._part(group_id, task_id, group_index, state, result)
        reply = await self.backend.scripts.eval(_ADD_PART, keys, args)
        return await self._added(reply, keys[0], token)

    async def store_part(self, group_id: str, task_id: str, group_index: int | None,
                         state: str, result: Any, meta: Meta, expires_s: float | None
                         ) -> Claim | Held | NoSize | None:
        # encoded (EncodeError, BackendStoreError) before anything is sent
        stored = self.backend.store_args(meta, expires_s)
        keys, args, token = self._part(group_id, task_id, group_index, state, result)
        reply = await self.backend.scripts.eval(
            _STORE_PART, [self.backend.key(task_id), *keys], [*stored, *args])
        return await self._added(reply, keys[0], token)

    async def _added(self, reply: list[Any], parts_key: str, token: str
                     ) -> Claim | Held | NoSize | None:
        ready, _, size, claimed = reply
        if ready == -1:
            return None
        if not size:
            return NO_SIZE
        if not claimed:
            return None
        if claimed == 2:
            return HELD
        return await self._claim(parts_key, token)

    async def reclaim(self, group_id: str) -> Claim | Held | None:
        k = self.key
        token = uuid.uuid4().hex
        got = await self.backend.redis.eval(
            _RECLAIM, [k(group_id, ".j"), k(group_id, ".t"), k(group_id, ".s"),
                       k(group_id, ".c")], [token, self.claim_expires_s])
        if got == 2:
            return HELD
        return await self._claim(k(group_id, ".j"), token) if got == 1 else None

    async def accept(self, group_id: str, task_id: str, token: str) -> bool:
        ex = int(self.group_expires_s or self.chord_expires_s or 0) or 86400
        ok = await self.backend.redis.eval(_ACCEPT, [self.key(group_id, ".b")],
                                           [task_id, token, ex])
        return bool(ok)

    async def _claim(self, parts_key: str, token: str) -> Claim:
        [raw] = await self.backend.redis.run(("ZRANGE", parts_key, 0, -1))
        parts = []
        for item in raw:
            _, tid, part_state, part_result = json_loads(item)
            parts.append((str(tid), str(part_state), part_result))
        return Claim(token, parts)

    async def confirm(self, group_id: str, claim: Claim, publish_s: float) -> bool:
        seconds = max(self.claim_expires_s, int(publish_s) + 1)
        ok = await self.backend.redis.eval(
            _CONFIRM, [self.key(group_id, ".c"), self.key(group_id, ".s")],
            [claim.token, seconds])
        return bool(ok)

    async def done(self, group_id: str, claim: Claim) -> None:
        k = self.key
        done_s = max(self.claim_expires_s * 2, 300)
        await self.backend.redis.eval(
            _DONE, [k(group_id, ".c"), k(group_id, ".j"), k(group_id, ".t"),
                    k(group_id, ".s"), k(group_id, ".d")], [claim.token, done_s])

    async def failed(self, group_id: str, claim: Claim) -> None:
        await self.done(group_id, claim)

    async def save_group(self, group_id: str, encoded: bytes) -> None:
        ex = int(self.backend_expires() or 0)
        await self.backend.redis.run(("SET", self.key(group_id), encoded,
                                      *(("EX", ex) if ex else ())))

    def backend_expires(self) -> float | None:
        return self.group_expires_s or self.chord_expires_s

    async def restore_group(self, group_id: str) -> bytes | None:
        [raw] = await self.backend.redis.run(("GET", self.key(group_id)))
        return None if raw is None else bytes(raw)

    async def delete_group(self, group_id: str) -> None:
        await self.backend.redis.run(("DEL", self.key(group_id)))
