"""Consumer children that die young are not re-forked in a loop (pools/consumer_children.py):
a child that cannot start (a broker it cannot reach, a module that fails in it) is
replaced after a pause that doubles, not every WATCH_S."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace
from typing import Any

import pytest

from celeriac.worker import child_consumer
from celeriac.worker.pools import consumer_children
from celeriac.worker.pools.consumer_children import ConsumerChildren


class DiesAtOnce:
    """Stands in for ChildConsumer in the forked child: exits 1 at once."""

    def __init__(self, *_: Any) -> None:
        pass

    def main(self) -> int:
        return 1


class Broker:
    leased = False


async def test_children_that_die_young_are_forked_again_after_a_growing_pause(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(child_consumer, "ChildConsumer", DiesAtOnce)
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(consumer_children.os, "fork", counting_fork)

    async def broker() -> Broker:
        return Broker()

    worker = SimpleNamespace(app=SimpleNamespace(clients=SimpleNamespace(broker=broker)),
                             _cold=asyncio.Event())
    pool = ConsumerChildren(1, worker)  # type: ignore[arg-type]
    await pool.start()
    await asyncio.sleep(1.6)
    await pool.stop()
    # without the pause: a fork every WATCH_S (50 ms), ~30; with it: 0.1, 0.2, 0.4, 0.8 s
    assert 2 <= len(forks) <= 6, forks
    assert pool._backoff_s >= 0.4
