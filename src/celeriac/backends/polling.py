"""``wait`` for backends with no push channel: poll with a capped backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from celeriac import states
from celeriac.backends.base import Meta


async def poll_until_ready(
    get: Callable[[str], Awaitable[Meta | None]],
    task_id: str,
    timeout_s: float | None,
    max_pause_s: float = 0.05,
) -> Meta | None:
    """Call ``get`` until the task is READY or the timeout passes (None: forever)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pause_s = 0.0005
    while True:
        meta = await get(task_id)
        if meta is not None and meta.get("status") in states.READY_STATES:
            return meta
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            pause_s = min(pause_s, remaining)
        await asyncio.sleep(pause_s)
        pause_s = min(pause_s * 2, max_pause_s)
