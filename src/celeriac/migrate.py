"""Move waiting task messages from one broker to another (``celeriac migrate``).

Celery's ``celery migrate SOURCE DESTINATION``: messages ready in the source's queues are
published to the same-named queues of the destination, message by message as they
were (headers, body, properties: a Celery worker on the destination runs them as
well). With ``ack`` (``-a``) each is acked on the source once the destination has it,
so it is moved; without, every message taken is put back on the source at the end, so
it is copied (Celery's default too: its consumer closes without acking). ``tasks``
(``-T``) moves only those task names; the others go back to the source at the end.

Order of each step, so a crash loses nothing: publish to the destination (which
returns once the destination has the batch), then ack on the source. A crash between
the two leaves a message in both (the source's lease expires and redelivers it):
duplicated, never lost. Messages waiting on a countdown (the delay store) are not
ready and stay where they are, as in Celery.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence

from celeriac.brokers.base import DEFAULT_LEASE_S, Broker, Delivery

#: messages taken from the source per round trip
BATCH = 100


@dataclasses.dataclass
class Migrated:
    """What a migration did."""

    moved: int = 0  #: published to the destination (and acked on the source with ack)
    returned: int = 0  #: put back on the source (copies, skipped names, unreadable)


OnMessage = Callable[[int, Delivery], None]


async def migrate_tasks(source: Broker, dest: Broker, queues: Sequence[str], *,
                        limit: int | None = None, timeout_s: float = 1.0,
                        ack: bool = False, tasks: Collection[str] | None = None,
                        forever: bool = False, on_message: OnMessage | None = None,
                        ) -> Migrated:
    """Migrate until the queues have been empty for ``timeout_s`` (or ``limit`` messages;
    ``forever``: until cancelled). Both brokers must be connected."""
    done = Migrated()
    held: list[Delivery] = []  # taken, to go back to the source at the end
    renewed_at = time.monotonic()
    try:
        while limit is None or done.moved < limit:
            want = BATCH if limit is None else min(BATCH, limit - done.moved)
            got = await source.fetch(queues, want, timeout_s)
            if not got:
                if forever:
                    continue
                break
            wanted = [d for d in got if d.envelope_error is None
                      and (tasks is None or d.message.task_name in tasks)]
            if len(wanted) < len(got):
                held.extend(d for d in got if d.envelope_error is not None
                            or (tasks is not None and d.message.task_name not in tasks))
            if wanted:
                await dest.publish([dataclasses.replace(d.message, exchange="",
                                                        routing_key=d.queue)
                                    for d in wanted])
                for delivery in wanted:
                    done.moved += 1
                    if on_message is not None:
                        on_message(done.moved, delivery)
                if ack:
                    await source.ack(wanted)
                else:
                    held.extend(wanted)
            if held and time.monotonic() - renewed_at > DEFAULT_LEASE_S / 3:
                await source.extend(held)  # not redelivered while we hold them
                renewed_at = time.monotonic()
    finally:
        if held:
            await source.requeue(held)
            done.returned = len(held)
    return done
