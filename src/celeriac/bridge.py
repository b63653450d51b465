"""Run the async broker and backend clients from synchronous code.

``.delay()`` is called from Django views, scripts and threads. Starting an event loop per
call would be slow, so each process has one daemon thread running one loop; sync callers
hand it coroutines and wait for the answer. Connections live on that loop.

Fork-safe: a forked child must not touch its parent's sockets, so after a fork the
bridge (and everything registered with ``on_fork``) starts fresh in the child.

A broker that can publish from the caller's own thread (``BlockingProducer``: SQLite,
Redis, RabbitMQ) skips the loop altogether: handing a publish to the loop thread and waiting for
the answer costs two thread wake-ups, as much as the publish itself.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from celeriac.loops import new_loop

if TYPE_CHECKING:
    from celeriac.protocol import Message

T = TypeVar("T")


@runtime_checkable
class BlockingProducer(Protocol):
    """A broker that publishes from any thread without an event loop, thread-safely.
    A publish returns once written; where the broker lets replies or confirms be
    outstanding (Redis, RabbitMQ: ``confirm_window``), one it refused raises from a
    later call, from ``flush_blocking`` or at exit: never silently."""

    def publish_blocking(self, messages: Sequence[Message]) -> None: ...

    def delay_blocking(self, messages: Sequence[tuple[Message, float]]) -> None: ...

    def flush_blocking(self, timeout_s: float | None = None) -> None: ...

    def close_blocking(self) -> None:
        """``flush_blocking``, then close the sync connection (a later call reopens)."""

_fork_callbacks: list[Callable[[], None]] = []


def on_fork(callback: Callable[[], None]) -> None:
    """Call ``callback`` in a forked child, to drop state tied to the parent's sockets."""
    _fork_callbacks.append(callback)


class LoopThread:
    """One event loop in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                loop = new_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name="celeriac-io", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the loop thread and wait for its result."""
        if self._thread is not None and threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("blocking call made from the celeriac I/O thread itself")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout_s)

    @property
    def started(self) -> bool:
        return self._loop is not None

    def reset(self) -> None:
        """Forget the loop (used in a forked child, where the thread does not exist)."""
        self._loop = None
        self._thread = None
        self._lock = threading.Lock()


BRIDGE = LoopThread()


def _after_fork_in_child() -> None:
    BRIDGE.reset()
    for callback in _fork_callbacks:
        callback()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
