"""``cancel_and_wait``: how a ``stop()`` ends its background asyncio tasks (the control
mailbox, the revoked-id reload, the event sender's timers, the autoscaler, the metrics
poller, the ``celeriac events`` reader)."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (None skipped), then wait for each to end, so none runs on after
    ``stop()`` returns. The CancelledError they end with is swallowed; another error one
    ended with before it was cancelled is raised."""
    live = [task for task in tasks if task is not None]
    for task in live:
        task.cancel()
    for task in live:
        try:
            await task
        except asyncio.CancelledError:
            pass
