"""The events relay: a process beside the worker that sends its task events (-E).

Why: making Celery's three event dicts per task and encoding them costs the worker's
event loop about a fifth of its time per no-op task, and the loop is the worker's
bottleneck. With the relay the loop records each task's events as one tuple of plain
values (task_batch.py) and, once per batch, writes the batch to the relay's stdin with
``marshal``; the relay builds the events, encodes them and PUBLISHes them on a
connection of its own, on another core. ``make bench``'s events row and
``bench/pipeline.py --count --events`` measure what is left in the worker.

The pipe: frames of a 4-byte big-endian length and a payload. The first frame is the
settings (pickle: broker URL and options, exchange, hostname); each next one is
``marshal.dumps((same, entries))`` with ``same`` the JSON of hostname, utcoffset and pid
(the worker's; it may change, a DST switch). An empty frame, or the end of the pipe (the
worker died), ends it: the relay sends what it has read and exits.

What can go wrong, and what happens:
- the relay cannot start, or exits (its broker is unreachable, it is killed): the next
  write fails, the worker logs it once and sends its events itself from then on, that
  batch included;
- a batch holds a value ``marshal`` cannot write (an AMQP header of a type it lacks):
  that batch is sent by the worker itself;
- the broker is the in-memory one (``memory://``), or ``worker_events_relay`` is off: no
  relay; the worker sends its events itself, as before.

The relay runs at nice 5: when the cores are busy, the worker's tasks go first and the
events wait (they are batched for 0.1 s anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import pickle
import signal
import sys
from typing import Any

import orjson

logger = logging.getLogger("celeriac.events")
_END = (0).to_bytes(4, "big")


class Relay:
    """The worker's end: the relay process and the pipe to it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdin = proc.stdin

    @classmethod
    async def start(cls, settings: dict[str, Any]) -> Relay:
        head = pickle.dumps(settings)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "celeriac.events.relay", stdin=asyncio.subprocess.PIPE)
        relay = cls(proc)
        assert relay.stdin is not None
        relay.stdin.write(len(head).to_bytes(4, "big") + head)
        return relay

    async def send(self, payload: bytes) -> bool:
        """Write one frame; False when the relay is gone (the caller sends it instead)."""
        stdin = self.stdin
        assert stdin is not None
        try:
            stdin.writelines((len(payload).to_bytes(4, "big"), payload))
            await stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            logger.warning("the events relay (pid %s) is gone (%s): the worker sends its "
                           "task events itself from now on", self.proc.pid, exc)
            return False
        return True

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Let the relay send what it has and exit; kill it after ``timeout_s``."""
        stdin = self.stdin
        assert stdin is not None
        try:
            stdin.write(_END)
            await stdin.drain()
            stdin.close()
        except (ConnectionError, RuntimeError):
            pass
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            logger.warning("the events relay did not exit in %.0f s: killed", timeout_s)
            self.proc.kill()
            await self.proc.wait()


def encode_batch(same: bytes, entries: list[tuple[Any, ...]]) -> bytes | None:
    """The frame for a batch, or None when a value in it has no marshal form."""
    try:
        return marshal.dumps((same, entries), 3)  # 3: the fastest here (refs, no short forms)
    except ValueError:
        return None


# -- the relay process ---------------------------------------------------------------------
async def _frame(reader: asyncio.StreamReader) -> bytes:
    try:
        size = int.from_bytes(await reader.readexactly(4), "big")
        return await reader.readexactly(size) if size else b""
    except asyncio.IncompleteReadError:
        return b""


async def _relay() -> None:
    from celeriac.brokers import create_broker, mask_url
    from celeriac.events.event import event_exchange, raw_event_message
    from celeriac.events.task_batch import build_events

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    settings = pickle.loads(await _frame(reader))
    broker = create_broker(settings["url"], settings["options"])
    try:
        await broker.connect()
    except Exception as exc:
        logger.error("the events relay could not connect to %s: %s",
                     mask_url(settings["url"]), exc)
        raise SystemExit(1) from exc
    exchange, hostname = event_exchange(settings["exchange"]), settings["hostname"]
    try:
        while frame := await _frame(reader):
            same, entries = marshal.loads(frame)
            body = orjson.dumps(build_events(entries, orjson.Fragment(same)), default=repr)
            try:
                await broker.broadcast(exchange,
                                       raw_event_message(body, "task.multi", hostname))
            except Exception as exc:
                logger.warning("sending events failed: %s", exc)
    finally:
        await broker.close()


def main() -> None:
    """``python -m celeriac.events.relay``, started by the worker (see Relay.start)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's: it stops us
    with contextlib.suppress(OSError):  # events wait a little, the worker's tasks do not
        os.nice(5)
    logging.basicConfig(level=logging.WARNING,
                        format="[%(asctime)s: %(levelname)s/events-relay] %(message)s")
    from celeriac import loops

    loops.run(_relay())


if __name__ == "__main__":
    main()
