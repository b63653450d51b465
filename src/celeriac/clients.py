"""Broker and result-backend clients, one pair per event loop.

Async connections belong to the loop that opened them, so an app keeps one connected
broker and backend per loop: the bridge loop serves sync callers, a worker's loop serves
the worker and its async tasks, an async web app's loop serves its ``adelay()`` calls.
After a fork the child starts with none (see ``celeriac.bridge.on_fork``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from celeriac.backends.base import ResultBackend
from celeriac.bridge import on_fork
from celeriac.brokers.base import Broker


@dataclass
class _LoopClients:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    broker: Broker | None = None
    backend: ResultBackend | None = None


class Clients:
    """Lazily connected broker/backend for the running loop."""

    def __init__(self, make_broker: Callable[[], Broker],
                 make_backend: Callable[[], ResultBackend]) -> None:
        self._make_broker = make_broker
        self._make_backend = make_backend
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )
        on_fork(self._by_loop.clear)

    def _slot(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        slot = self._by_loop.get(loop)
        if slot is None:
            slot = self._by_loop[loop] = _LoopClients()
        return slot

    async def broker(self) -> Broker:
        slot = self._slot()
        if slot.broker is None:
            async with slot.lock:
                if slot.broker is None:
                    broker = self._make_broker()
                    await broker.connect()
                    slot.broker = broker
        return slot.broker

    async def backend(self) -> ResultBackend:
        slot = self._slot()
        if slot.backend is None:
            async with slot.lock:
                if slot.backend is None:
                    backend = self._make_backend()
                    await backend.connect()
                    slot.backend = backend
        return slot.backend

    async def close(self) -> None:
        """Close this loop's clients."""
        loop = asyncio.get_running_loop()
        slot = self._by_loop.pop(loop, None)
        if slot is not None:
            if slot.broker is not None:
                await slot.broker.close()
            if slot.backend is not None:
                await slot.backend.close()

    def reset(self) -> None:
        """Forget every loop's clients (after the configuration changed)."""
        self._by_loop.clear()
