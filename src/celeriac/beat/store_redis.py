"""The beat store on Redis: a lease key (``SET NX PX``, renewed by a script only while
it is still ours; Redis's clock times it, not the hosts') and a hash of last-run values
changed by a compare-and-set script, all claims of a tick in one round trip. Keys sit
behind the broker's ``global_keyprefix``: ``_celeriac.beat.leader``,
``_celeriac.beat.state``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celeriac.beat.store import BeatStore, Claim
from celeriac.brokers.redis.connection import blocking_redis_client

_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# ARGV[1]: the new value of every claim; then name, expected ('' when absent) pairs
_CLAIM = """
local out = {}
local new = ARGV[1]
for i = 2, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if (cur or '') == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], new)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


class RedisStore(BeatStore):
    """See the module docstring."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        prefix = str(options.get("global_keyprefix", ""))
        self.leader_key = prefix + "_celeriac.beat.leader"
        self.state_key = prefix + "_celeriac.beat.state"
        options.setdefault("socket_timeout", 10.0)
        self._client = blocking_redis_client(url, options)
        self._lead = self._client.register_script(_LEAD)
        self._resign = self._client.register_script(_RESIGN)
        self._claim = self._client.register_script(_CLAIM)

    def lead(self, node: str, ttl_s: float) -> bool:
        ttl_ms = max(1, int(ttl_s * 1000))
        return bool(self._lead(keys=[self.leader_key], args=[node, ttl_ms]))

    def resign(self, node: str) -> None:
        self._resign(keys=[self.leader_key], args=[node])

    def load(self, names: Sequence[str]) -> dict[str, str | None]:
        if not names:
            return {}
        values = self._client.hmget(self.state_key, list(names))
        return {n: (v.decode() if isinstance(v, bytes) else v)
                for n, v in zip(names, values, strict=True)}

    def claim(self, claims: Sequence[Claim]) -> list[bool]:
        """One script call per distinct new value (a scheduler's tick has one). Values
        are never empty strings, so '' stands for 'absent'."""
        out: dict[int, bool] = {}
        by_new: dict[str, list[int]] = {}
        for i, (_, _, new) in enumerate(claims):
            by_new.setdefault(new, []).append(i)
        for new, indexes in by_new.items():
            args: list[Any] = [new]
            for i in indexes:
                name, expected, _ = claims[i]
                args += [name, expected or ""]
            answers = self._claim(keys=[self.state_key], args=args)
            out.update(zip(indexes, (bool(a) for a in answers), strict=True))
        return [out[i] for i in range(len(claims))]

    def close(self) -> None:
        self._client.close()
