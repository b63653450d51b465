"""The consumer's refill rule: brokers that push (RabbitMQ) refill at half the window,
yet a free runner never waits while the broker holds work for it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from celeriac import Celery
from celeriac.brokers.base import Delivery
from celeriac.brokers.memory import MemoryBroker
from celeriac.worker.consumer import Consumer
from celeriac.worker.pools.solo import SoloPool
from tests.messages import task


class PushingBroker(MemoryBroker):
    refill_early = True


class Leases:
    def hold_all(self, deliveries: list[Delivery]) -> None: ...
    def release(self, deliveries: list[Delivery]) -> None: ...


class GatedExecutor:
    """Each delivery 'runs' until the test lets it finish."""

    def __init__(self) -> None:
        self.app = Celery("refill", broker="memory://", set_as_current=False)
        self.running: dict[str, asyncio.Event] = {}
        self.finished = 0
        self.pool = SoloPool()  # the consumer reads its window and runner count

    async def process(self, delivery: Delivery) -> None:
        gate = self.running[delivery.message.task_id] = asyncio.Event()
        await gate.wait()
        del self.running[delivery.message.task_id]
        self.finished += 1


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def consumer_for(broker: Any, executor: GatedExecutor, capacity: int, window: int
                 ) -> Consumer:
    return Consumer(broker, executor, Leases(), ["q"], capacity, window)  # type: ignore[arg-type]


async def test_a_free_runner_gets_the_next_task_at_once_with_a_window_of_one_each() -> None:
    broker = PushingBroker(f"memory://{uuid.uuid4().hex}")
    await broker.connect()
    await broker.publish([task("q") for _ in range(12)])
    executor = GatedExecutor()
    consumer = consumer_for(broker, executor, capacity=4, window=4)  # prefetch multiplier 1
    running = asyncio.create_task(consumer.run())
    await settle()
    assert len(executor.running) == 4
    next(iter(executor.running.values())).set()  # one task ends: its runner is free
    await settle()
    assert executor.finished == 1 and len(executor.running) == 4
    consumer.stop_fetching()
    for gate in list(executor.running.values()):
        gate.set()
    await settle()
    for gate in list(executor.running.values()):
        gate.set()
    await asyncio.wait_for(running, 5)
    await broker.close()


def test_refill_sizes() -> None:
    executor = GatedExecutor()
    sizes = {(window, capacity): consumer_for(PushingBroker(), executor, capacity, window).refill
             for window, capacity in [(64, 1), (8, 2), (4, 4), (1, 1), (3, 1)]}
    assert sizes == {(64, 1): 32, (8, 2): 4, (4, 4): 1, (1, 1): 1, (3, 1): 1}
    assert consumer_for(MemoryBroker(), executor, 1, 64).refill == 1  # fetches at once


def test_a_pool_that_queues_calls_fetches_a_quarter_window_at_a_time() -> None:
    """prefork finishes calls one loop turn at a time: fetching at every free slot cost
    a broker round trip per task (Redis, SQLite)."""
    from celeriac.worker.pools.prefork import PreforkPool

    executor = GatedExecutor()
    executor.pool = PreforkPool(2)  # type: ignore[assignment]  # not started: no children
    consumer = consumer_for(MemoryBroker(), executor, 2, 128)
    assert consumer.refill == 32
    consumer._set_window(2)  # long tasks: one per child, fetch at every free slot
    assert consumer.refill == 1


async def test_stopping_on_memory_cancels_the_waiting_fetch_which_took_nothing() -> None:
    """Test workers stop at once on memory:// (not after the fetch's wait runs out), and
    a message published just after is still on the queue for the next consumer."""
    broker = MemoryBroker(f"memory://{uuid.uuid4().hex}")
    await broker.connect()
    consumer = consumer_for(broker, GatedExecutor(), capacity=1, window=1)
    running = asyncio.create_task(consumer.run())
    await settle()
    assert consumer._fetching is not None and not running.done()  # waiting in fetch
    consumer.stop_fetching()
    await settle()
    assert running.done()
    await broker.publish([task("q")])
    assert len(await broker.fetch(["q"], 10, 0)) == 1


async def test_a_broker_whose_fetch_may_have_taken_keeps_it_running_on_stop() -> None:
    class Claiming(MemoryBroker):
        fetch_cancel_safe = False

    broker = Claiming(f"memory://{uuid.uuid4().hex}")
    await broker.connect()
    consumer = consumer_for(broker, GatedExecutor(), capacity=1, window=1)
    running = asyncio.create_task(consumer.run())
    await settle()
    consumer.stop_fetching()
    await settle()
    assert not running.done()  # the fetch finishes on its own (FETCH_WAIT_S)
    await broker.publish([task("q")])  # taken by that fetch, given back by the runners
    await running
    await settle()
    assert len(await broker.fetch(["q"], 10, 0)) == 1
