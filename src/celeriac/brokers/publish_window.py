"""What the Redis and RabbitMQ sync publishers share (redis_blocking.py,
amqp_blocking.py): the report of publishes the broker refused after the call returned,
and the flush at interpreter exit, so no refusal passes silently."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from celeriac.errors import UnconfirmedPublish

log = logging.getLogger("celeriac.brokers")


def refused(broker: str, failed: Sequence[tuple[Sequence[str], str]], sent: bool
            ) -> UnconfirmedPublish:
    """The error for ``failed`` ((task ids, why) per refused publish)."""
    ids = [task_id for task_ids, _ in failed for task_id in task_ids]
    this = "this call's messages were sent" if sent else "this call sent nothing"
    return UnconfirmedPublish(
        f"{broker} did not take {len(ids)} message(s) (task ids {', '.join(ids[:10])}): "
        f"{failed[0][1]}; {this}", ids)


def flush_at_exit(flush: Callable[[], None], unsettled: bool, pid: int, broker: str) -> None:
    """Wait for the outstanding answers at exit; log a refusal at ERROR and re-raise it.
    Nothing to do in a forked child (the parent's publishes are the parent's)."""
    if os.getpid() != pid or not unsettled:
        return
    try:
        flush()
    except Exception:
        log.error("celeriac: published tasks were not taken by %s at exit", broker,
                  exc_info=True)
        raise
