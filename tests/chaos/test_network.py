"""Broker link faults through ``FaultProxy``: cut, delayed, partitioned, half-open.

The worker and the publishing client both reach the broker through the proxy. The
client publishes a steady stream while the fault is injected; a task counts as sent
only once its ``publish`` returned (published and acknowledged). Then every sent task
must finish: none lost, duplicates reported.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celeriac.protocol import build_task_message
from tests.chaos.conftest import make_scenario
from tests.chaos.harness import Scenario, tags
from tests.chaos.proxy import FaultProxy
from tests.conftest import soak_selected

UPSTREAM_PORTS = {"redis": 6379, "amqp": 5672}
#: a socket timeout is what gets a Redis client out of a half-open link: without one
#: (redis-py's default) a read on a silent connection waits forever (see
#: docs/reliability.md); every other fault here recovers without it.
WORKER_ENV = {"CHAOS_LEASE_S": "3", "CHAOS_SOCKET_TIMEOUT_S": "5"}


class Link:
    """A scenario whose broker URL goes through a proxy."""

    def __init__(self, scenario: Scenario, proxy: FaultProxy, url: str) -> None:
        self.s, self.proxy, self.url = scenario, proxy, url

    def stream(self, sent_tags: list[str], pause_s: float = 0.01, batch: int = 5
               ) -> tuple[threading.Thread, list[str], list[str]]:
        """Publish in a background thread; returns (thread, acknowledged, failed)."""
        acked: list[str] = []
        failed: list[str] = []

        async def run() -> None:
            broker = self.s.broker(self.url, retry_timeout=30.0, socket_timeout=5.0)
            await broker.connect()
            for i in range(0, len(sent_tags), batch):
                chunk = sent_tags[i:i + batch]
                try:
                    await broker.publish([build_task_message(
                        "chaos.work", (tag, 0.005), queue=self.s.queue, ignore_result=True)
                        for tag in chunk])
                except Exception:
                    failed.extend(chunk)
                else:
                    acked.extend(chunk)
                await asyncio.sleep(pause_s)
            await broker.close()

        thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
        thread.start()
        return thread, acked, failed


@pytest.fixture(params=list(UPSTREAM_PORTS))
def link(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Link]:
    for scenario in make_scenario(tmp_path, request.param):
        proxy = FaultProxy(UPSTREAM_PORTS[request.param])
        url = scenario.broker_url.replace(f":{UPSTREAM_PORTS[request.param]}",
                                          f":{proxy.port}")
        try:
            yield Link(scenario, proxy, url)
        finally:
            proxy.close()


def run_fault(link: Link, name: str, inject: Callable[[FaultProxy], None], n: int = 300,
              breaks_links: bool = True) -> None:
    """Stream ``n`` tasks through the proxy while ``inject`` runs; every acknowledged
    one must complete. ``breaks_links``: the fault kills the open connections, so the
    clients must have opened new ones (a healed partition needs none: bytes were held)."""
    s = link.s
    worker = s.worker("-P", "threads", "-c", "4", broker_url=link.url, **WORKER_ENV)
    sent = tags(name.split()[0], n)
    thread, acked, _failed = link.stream(sent)
    inject(link.proxy)
    thread.join(60)
    assert not thread.is_alive(), "the publisher never finished"
    s.wait_done(acked, timeout_s=60)
    row = s.tally(name, acked)
    assert row.lost == 0 and row.completed == len(acked)
    assert len(acked) >= n // 2, f"too few publishes acknowledged ({len(acked)})"
    assert worker.proc.poll() is None
    broken_at = link.proxy.broken_at
    if breaks_links:
        assert broken_at is not None and link.proxy.connections > broken_at, \
            "no connection was opened after the fault broke the open ones"
    assert worker.stop() == 0


def cut_three_times(proxy: FaultProxy) -> None:
    for _ in range(3):
        time.sleep(0.6)
        proxy.cut()


def slow_then_fast(proxy: FaultProxy) -> None:
    time.sleep(0.4)
    proxy.delay(0.15)
    time.sleep(2.0)
    proxy.heal()
    proxy.cut()  # and a cut while replies were still in the slow lane


def partition(proxy: FaultProxy) -> None:
    time.sleep(0.5)
    proxy.blackhole()
    time.sleep(3.0)
    proxy.heal()


def half_open(proxy: FaultProxy) -> None:
    time.sleep(0.5)
    proxy.silence_existing()


def test_connection_cut_mid_stream(link: Link) -> None:
    run_fault(link, "connection reset x3", cut_three_times)


def test_connection_delayed_mid_stream(link: Link) -> None:
    run_fault(link, "150 ms latency for 2 s, then reset", slow_then_fast)


def test_partition_heals(link: Link) -> None:
    run_fault(link, "black hole 3 s (partition)", partition, breaks_links=False)


def test_half_open_connections(link: Link, request: pytest.FixtureRequest) -> None:
    if link.s.broker_name == "rabbitmq" and not soak_selected(request.config):
        pytest.skip("RabbitMQ on a half-open link waits for the AMQP heartbeat (minutes): "
                    "run with -m soak")
    run_fault(link, "black hole on open links (half-open)", half_open)
