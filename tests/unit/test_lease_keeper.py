"""The lease keeper: holds what the worker has fetched, renews it on brokers with leases,
and stays out of the way (no thread, no connection) on brokers without (RabbitMQ)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from celeriac.brokers.amqp.broker import AMQPBroker
from celeriac.brokers.base import Broker, Delivery
from celeriac.brokers.memory import MemoryBroker
from celeriac.protocol import build_task_message
from celeriac.worker.acks import LeaseKeeper


def delivery(n: int) -> Delivery:
    return Delivery(build_task_message("t", (n,)), "celery", n, False)


def test_brokers_say_whether_they_lease() -> None:
    assert MemoryBroker.leased is True
    assert AMQPBroker.leased is False


def test_without_leases_nothing_is_held_and_no_connection_opened() -> None:
    made: list[Broker] = []

    def make_broker() -> Broker:
        made.append(MemoryBroker("memory://"))
        return made[-1]

    keeper = LeaseKeeper(make_broker, lease_s=0.6, needed=False)
    keeper.start()
    keeper.hold_all([delivery(1)])
    time.sleep(0.3)
    keeper.stop()
    assert keeper.held() == []
    assert made == []


class CountingBroker(MemoryBroker):
    def __init__(self) -> None:
        super().__init__("memory://")
        self.extended: list[int] = []

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        self.extended.extend(d.tag for d in deliveries)


def test_with_leases_held_deliveries_are_renewed_until_released() -> None:
    broker = CountingBroker()
    keeper = LeaseKeeper(lambda: broker, lease_s=0.6)  # renews every 0.2 s
    first, second = delivery(1), delivery(2)
    keeper.hold_all([first, second])
    keeper.release([second])
    assert keeper.held() == [first]
    keeper.start()
    deadline = time.monotonic() + 5
    while not broker.extended and time.monotonic() < deadline:
        time.sleep(0.05)
    keeper.stop()
    assert broker.extended and set(broker.extended) == {1}
