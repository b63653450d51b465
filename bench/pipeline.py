"""The worker's own cost per task, without a broker: ``make bench-pipeline``.

One worker's consumer, executor and solo pool (the classes ``celeriac worker`` uses) run
N no-op tasks whose deliveries are decoded from a real envelope through the Redis
broker's decode path; acks are dropped. What is left is celeriac's Python per task:
decode, parse, checks, ``task.request``, the run, the outcome, the ack bookkeeping.

    python bench/pipeline.py 50000      # CPU microseconds per task (noisy on a busy VM)
    python bench/pipeline.py --count    # instructions per task, counted by callgrind
    python bench/pipeline.py --count --default   # the default worker's parent process
    python bench/pipeline.py --count --events    # the fast worker with task events on (-E)

``--default`` is the tutorial's worker instead of the fast one: the prefork pool with
two children, prefetch multiplier 4, ``-l info`` (the received/succeeded lines go to a
file). It counts the parent process only: the ceiling of the default worker's rate is
the parent's cost per task, as the children run in parallel on the other cores.

``--count`` runs this file under ``valgrind --tool=callgrind`` for 1,000 and for 4,000
tasks and prints the difference per task, so start-up is not counted. An instruction
count does not move with the machine's load (the same count twice, to within 1%), so it
can judge a change of a few percent on a VM whose speed drifts by 2x within an hour.

``--events``: the worker's event dispatcher is on, as with ``-E``: each task's
received/started/succeeded events are made, batched and encoded as the Redis broker
encodes a broadcast (kombu's envelope), then dropped instead of PUBLISHed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
os.environ.setdefault("BENCH_BROKER_URL", "memory://")

from aiormq.abc import ChannelFrame

from celeriac import loops
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.base import Delivery, Exchange
from celeriac.brokers.memory import MemoryBroker
from celeriac.brokers.redis import broker as redis_broker
from celeriac.protocol import Message, build_task_message, to_envelope, to_text_envelope
from celeriac.worker.acks import Acker, LeaseKeeper
from celeriac.worker.consumer import Consumer
from celeriac.worker.executor import Executor
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.solo import SoloPool

WINDOW = 64  # the benchmark's fast worker: --prefetch-multiplier 64


class ReplayBroker(MemoryBroker):
    """Serves ``n`` deliveries decoded from one envelope, as Redis's fetch would."""

    def __init__(self, envelope: bytes, n: int) -> None:
        super().__init__("memory://")
        self.envelope, self.left = envelope, n

    async def fetch(self, queues: Sequence[str], max_count: int, timeout_s: float
                    ) -> list[Delivery]:
        if self.left <= 0:
            await asyncio.sleep(timeout_s)
            return []
        count = min(max_count, self.left)
        self.left -= count
        return [redis_broker._delivery("celery", f"tag-{i}", self.envelope)
                for i in range(count)]

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        pass

    async def broadcast(self, exchange: Exchange, message: Message) -> None:
        to_text_envelope(message)  # what RedisFanout.broadcast PUBLISHes


def attach_events(app: object, broker: ReplayBroker, pool: SoloPool, executor: Executor,
                  consumer: Consumer) -> object:
    """The worker's EventDispatcher with task events on (as control/service.py does)."""
    from celeriac.control.revoked import RevokedStore
    from celeriac.control.state import WorkerState
    from celeriac.events.dispatcher import EventDispatcher

    state = WorkerState(app, "pipeline@bench", broker, pool, executor,  # type: ignore[arg-type]
                        consumer, RevokedStore(broker, 60.0), lambda: None)
    executor.events = state.events = EventDispatcher(state, True)
    return state.events


class AMQPReplay(MemoryBroker):
    """Serves ``n`` deliveries through RabbitMQ's consuming path: the frames RabbitMQ
    sends for them (basic.deliver, content header, body) split by ``BulkFrameReceiver``,
    decoded by ``Inbox``; acks go through ``Inbox.ack`` and are marshalled, not sent.
    Not counted: the socket read and aiormq's reader loop around the split."""

    refill_early = True
    leased = False

    def __init__(self, message: Message, n: int) -> None:
        super().__init__("memory://")
        from pamqp import commands as spec
        from pamqp import frame as pframe

        from celeriac.brokers.amqp.inbox import Inbox
        from celeriac.brokers.amqp.reader import BulkFrameReceiver
        from celeriac.brokers.amqp.topology import Topology
        from celeriac.brokers.amqp.wire import encode_header

        self.left, self.tag = n, 0
        consumer_tag = "celeriac.0123456789ab.celery"
        deliver = pframe.marshal(spec.Basic.Deliver(consumer_tag, 1, False, "", "celery"), 1)
        # the delivery tag: before the redelivered flag, the empty exchange and the key
        self.tag_at = deliver.rindex(b"celery") - 3 - 8
        header = encode_header(message, len(message.body))
        self.template = bytearray(
            deliver + b"\x02\x00\x01" + len(header).to_bytes(4, "big") + header + b"\xce"
            + b"\x03\x00\x01" + len(message.body).to_bytes(4, "big") + message.body + b"\xce")
        self.receiver = BulkFrameReceiver(None)
        self.receiver.started = True
        inbox = self.inbox = Inbox(None, Topology(None, {}), prefetch=None,  # type: ignore[arg-type]
                                   consumer_timeout_ms=None)
        inbox._consuming[consumer_tag] = "celery"
        inbox.channel = _Channel()  # type: ignore[assignment]
        inbox.epoch = 1

        async def send(frames: list[Any]) -> None:
            ChannelFrame.marshall(channel_number=1, frames=frames)
        inbox._send = send  # type: ignore[method-assign]

    async def fetch(self, queues: Sequence[str], max_count: int, timeout_s: float
                    ) -> list[Delivery]:
        if self.left <= 0:
            await asyncio.sleep(timeout_s)
            return []
        count = min(max_count, self.left)
        self.left -= count
        template, at, chunks = self.template, self.tag_at, []
        for _ in range(count):
            self.tag += 1
            template[at:at + 8] = self.tag.to_bytes(8, "big")
            chunks.append(bytes(template))
        receiver = self.receiver
        receiver._buf += b"".join(chunks)
        receiver._split()
        on_delivered, ready = self.inbox._on_delivered, receiver._ready
        while ready:
            on_delivered(ready.popleft()[2])  # the run of Deliveries
        return self.inbox._pop(queues, max_count)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        await self.inbox.ack(deliveries)


class _Channel:
    is_closed = False
    number = 1


async def run(n: int, default: bool = False, events: bool = False,
              amqp: bool = False) -> float:
    """CPU seconds for ``n`` tasks through the worker's pipeline (this process only)."""
    from celeriac_app import app  # the benchmark's app: bench.noop, ignore_result

    message = build_task_message("bench.noop", (), queue="celery", ignore_result=True)
    broker: MemoryBroker = AMQPReplay(message, n) if amqp else \
        ReplayBroker(to_envelope(message), n)
    pool: Pool = SoloPool()
    capacity, window = 1, WINDOW
    if default:
        from celeriac.worker.banner import setup_logging
        from celeriac.worker.pools.prefork import PreforkPool

        setup_logging("info", app.conf.worker_log_format)
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (for the process's life)
        pool = PreforkPool(2)
        capacity, window = 2, 2 * 4
    await pool.start()
    # held as on Redis, not started (RabbitMQ holds none)
    leases = LeaseKeeper(lambda: broker, broker.lease_s, needed=not amqp)
    executor = Executor(app, broker, MemoryBackend("memory://"), pool, Acker(broker),
                        "pipeline@bench")
    consumer = Consumer(broker, executor, leases, ["celery"], capacity, window)
    dispatcher = attach_events(app, broker, pool, executor, consumer) if events else None
    if dispatcher is not None:
        await dispatcher.start()  # type: ignore[attr-defined]
    done = asyncio.get_running_loop().create_future()
    process = executor.process

    async def counted(delivery: Delivery) -> None:
        await process(delivery)
        if executor.processed >= n and not done.done():
            done.set_result(None)

    executor.process = counted  # type: ignore[method-assign]
    began = time.process_time()
    consuming = asyncio.ensure_future(consumer.run())
    await done
    seconds = time.process_time() - began
    consumer.stop_fetching()
    consuming.cancel()
    if dispatcher is not None:
        await dispatcher.stop()  # type: ignore[attr-defined]
    assert executor.processed == n, (executor.processed, n)
    if default:
        await pool.stop()
    return seconds


def instructions(n: int, extra: Sequence[str] = ()) -> int:
    """Instructions callgrind counts for a whole run of ``n`` tasks (this process, not
    the children it forks)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out.%p",
             sys.executable, __file__, str(n), *extra], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        _, stderr = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"callgrind run failed:\n{stderr[-2000:]}")
    found = re.search(rf"=={proc.pid}== Collected : (\d+)", stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count:\n{stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str]) -> None:
    default, events, amqp = "--default" in argv, "--events" in argv, "--amqp" in argv
    argv = [a for a in argv if a not in ("--default", "--events", "--amqp")]
    extra = [*(["--default"] if default else []), *(["--events"] if events else []),
             *(["--amqp"] if amqp else [])]
    what = (", the default worker parent" if default else "") + \
        (", with task events (-E)" if events else "") + \
        (", RabbitMQ's decode and ack path" if amqp else "")
    if argv[:1] == ["--count"]:
        small, large = 1000, 4000
        per_task = (instructions(large, extra) - instructions(small, extra)) / (large - small)
        print(f"{per_task:,.0f} instructions per task (callgrind, {large - small:,} tasks"
              f"{what})")
        return
    n = int(argv[0]) if argv else 50_000
    seconds = loops.run(run(n, default, events, amqp))
    print(f"{n:,} tasks{what}: {1e6 * seconds / n:.1f} us of CPU per task")


if __name__ == "__main__":
    main(sys.argv[1:])
