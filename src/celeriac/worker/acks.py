"""Batched acks, and the lease keeper that stops running tasks from being redelivered.

Acker: deliveries finished in one turn of the loop are acked in one broker call; those
received with a future eta are parked in the broker's delay store the same way.
LeaseKeeper: every third of the broker's lease it renews the leases of all deliveries
the worker holds. It runs on a thread of its own with its own broker client, so a sync
task that blocks the worker's loop (solo pool) still has its lease renewed. On a broker
without leases (``Broker.leased`` False: RabbitMQ) it holds nothing and starts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from celeriac import loops
from celeriac.brokers.base import Broker, Delivery

logger = logging.getLogger("celeriac.worker")


class Acker:
    """Collects finished deliveries and acks them in batches (and parks, the same way,
    deliveries whose eta is still ahead: ``Broker.park``)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._pending: list[Delivery] = []
        self._parking: list[tuple[Delivery, float]] = []
        self._flushing: asyncio.Task[None] | None = None

    @property
    def pending(self) -> bool:
        """Finished deliveries not acked yet."""
        return bool(self._pending)

    def ack(self, delivery: Delivery) -> None:
        self._pending.append(delivery)
        self._flush_later()

    def park(self, delivery: Delivery, due: float) -> None:
        """Hand the delivery back to the broker's delay store until ``due`` (unix s)."""
        self._parking.append((delivery, due))
        self._flush_later()

    def _flush_later(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(0)  # let the other deliveries finishing this turn join
        await self.flush()

    async def flush(self) -> None:
        while self._pending or self._parking:
            if self._parking:
                parked, self._parking = self._parking, []
                try:
                    await self._broker.park(parked)
                except Exception:
                    # still in flight: redelivered after the lease and parked again then
                    logger.exception("parking %d deliveries with a future eta failed; they "
                                     "will be redelivered", len(parked))
            if self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._broker.ack(batch)
                except Exception:
                    # The lease keeper stops renewing them, so the broker redelivers them:
                    # at-least-once, never lost.
                    logger.exception("ack of %d deliveries failed; they will be redelivered",
                                     len(batch))


class LeaseKeeper:
    """Renews leases of held deliveries from a thread of its own (see module docstring)."""

    def __init__(self, make_broker: Callable[[], Broker], lease_s: float,
                 needed: bool = True) -> None:
        self._make_broker = make_broker
        self.needed = needed
        self.interval_s = max(0.2, lease_s / 3)
        self._held: dict[int, Delivery] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold_all(self, deliveries: list[Delivery]) -> None:
        if self.needed:
            with self._lock:
                for delivery in deliveries:
                    self._held[id(delivery)] = delivery

    def release(self, deliveries: list[Delivery]) -> None:
        if self.needed:
            with self._lock:
                for delivery in deliveries:
                    self._held.pop(id(delivery), None)

    def held(self) -> list[Delivery]:
        with self._lock:
            return list(self._held.values())

    def start(self) -> None:
        if not self.needed:
            return
        self._thread = threading.Thread(target=self._run, name="celeriac-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        loops.run(self._renew_forever())

    async def _renew_forever(self) -> None:
        broker = self._make_broker()
        try:
            await broker.connect()
            while not self._stop.wait(self.interval_s):
                held = self.held()
                if held:
                    try:
                        await broker.extend(held)
                    except Exception as exc:  # the next round tries again
                        logger.warning("renewing %d leases failed: %s", len(held), exc)
        except Exception as exc:
            logger.error("lease keeper stopped: %s", exc)
        finally:
            await _close_quietly(broker)


async def _close_quietly(broker: Any) -> None:
    try:
        await broker.close()
    except Exception:
        pass
