"""RabbitMQ's CPU per consumed message, as a consumer's settings change.

    python bench/amqp_drain.py URL N PREFETCH EVERY [--gappy]

Drains N messages already in the queue ``celery`` of URL's vhost (fill it first, e.g.
``bench/client.py celeriac publish --mode bulk``) with celeriac's AMQP inbox and nothing
else: basic.qos PREFETCH, an ack every EVERY deliveries, in order (one
``basic.ack(multiple=True)``) or, with ``--gappy``, the second half of each EVERY
acked one by one before the first half. Prints the rate and the CPU per message of
``beam.smp`` and of this process (docs/benchmarks.md, the default worker on RabbitMQ).
"""

from __future__ import annotations

import sys
import time

from cpu_split import broker_pid, cpu_s

from celeriac import loops
from celeriac.brokers.amqp.broker import AMQPBroker
from celeriac.brokers.base import Delivery


async def drain(url: str, n: int, prefetch: int, every: int, gappy: bool) -> str:
    broker = AMQPBroker(url, {"prefetch_count": prefetch})
    await broker.connect()
    beam = broker_pid("amqp")
    assert beam is not None, "no beam.smp on this machine"
    pending: list[Delivery] = await broker.fetch(["celery"], prefetch, 5.0)
    got = len(pending)
    began, beam_s, own_s = time.monotonic(), cpu_s(beam), time.process_time()
    while got < n:
        fetched = await broker.fetch(["celery"], prefetch, 2.0)
        if not fetched:
            break
        got += len(fetched)
        pending += fetched
        while len(pending) >= every:
            chunk, pending = pending[:every], pending[every:]
            if gappy:  # the later half first: single acks behind a gap
                await broker.ack(chunk[every // 2:])
                await broker.ack(chunk[:every // 2])
            else:
                await broker.ack(chunk)
    await broker.ack(pending)
    seconds = time.monotonic() - began
    beam_s, own_s = cpu_s(beam) - beam_s, time.process_time() - own_s
    await broker.close()
    return (f"prefetch {prefetch}, ack every {every}{' (gappy)' if gappy else ''}: {got:,} "
            f"in {seconds:.2f}s, {got / seconds:,.0f}/s; beam.smp {beam_s / got * 1e6:.1f} "
            f"us, this process {own_s / got * 1e6:.1f} us a message")


def main() -> None:
    url, n, prefetch, every = sys.argv[1], *map(int, sys.argv[2:5])
    print(loops.run(drain(url, n, prefetch, every, "--gappy" in sys.argv)))


if __name__ == "__main__":
    main()
