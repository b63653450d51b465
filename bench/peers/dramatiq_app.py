"""Dramatiq's side of the benchmark (runs in .bench-envs/dramatiq): the same tasks as
celeriac_app.py, as actors. Results (for the round trip only) go to Redis db
BENCH_REDIS_URL: Dramatiq has no result store on RabbitMQ. Bulk publishing is
``dramatiq.group(...).run()``, which enqueues its messages one by one (Dramatiq has no
batch enqueue)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import dramatiq
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

CHUNK = 1000
URL = os.environ["BENCH_BROKER_URL"]

if URL.startswith("amqp"):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=URL)
else:
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=URL)
backend = RedisBackend(url=os.environ["BENCH_REDIS_URL"])
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench.noop")
def noop() -> None:
    return None


@dramatiq.actor(actor_name="bench.noop_result", store_results=True)
def noop_result() -> None:
    return None


@dramatiq.actor(actor_name="bench.mark")
def mark(path: str) -> None:
    with open(path, "w") as f:
        f.write(repr(time.time()))


def send_mark(path: str) -> None:
    mark.send(path)


def delay_noop() -> None:
    noop.send()


def bulk_noop(n: int, progress: Callable[[int], None]) -> None:
    sent = 0
    while sent < n:
        size = min(CHUNK, n - sent)
        dramatiq.group(noop.message() for _ in range(size)).run()
        sent += size
        progress(sent)


def roundtrip() -> None:
    noop_result.send().get_result(backend=backend, block=True, timeout=10_000)


def close() -> None:
    broker.close()
