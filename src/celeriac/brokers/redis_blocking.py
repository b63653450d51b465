"""Redis commands from a sync caller's own thread: ``.delay()`` without the event loop.

A sync ``.delay()`` that hands its publish to the bridge loop pays two thread wake-ups
(caller -> loop -> caller), about as much as the Redis round trip itself. A publish
needs no loop: ``BlockingLane`` pipelines the same commands on a blocking redis-py
connection taken from a thread-safe, fork-safe pool (redis-py checks the pid), so each
thread publishes on a connection of its own and returns once Redis replied, exactly as
durable as the loop's publish. Retries and the loss/recovery log lines are
``RedisConnection.run_blocking``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError


class BlockingLane:
    """Pipelined commands on a pooled blocking connection; see the module docstring."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pool = client.connection_pool

    def execute(self, *commands: Sequence[Any]) -> list[Any]:
        """Send the commands in one write; their replies, raising the first error."""
        pool = self._pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except ResponseError as exc:  # the reply was read: the line stays in step
                    replies.append(exc)
        except BaseException:
            conn.disconnect()  # a half-read reply must never reach the next caller
            raise
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    def close(self) -> None:
        self._client.close()
