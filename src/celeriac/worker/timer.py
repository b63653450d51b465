"""``worker.timer``: Celery's worker timer (kombu's Timer) on the worker's event loop.

Bootsteps use it to run something every so often (a liveness file touched every
second): ``call_repeatedly(secs, fun, args)``, ``call_after(secs, fun, args)``,
``call_at(eta, fun, args)``; each returns an entry with ``cancel()``. The functions
run on the worker's loop, as Celery's run on its hub: keep them short. One that raises
is logged and, when repeating, keeps its schedule. Safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("celeriac.worker")


class Entry:
    """One scheduled call; ``cancel()`` stops it (and its repeats)."""

    def __init__(self, fun: Callable[..., Any], args: Sequence[Any],
                 kwargs: dict[str, Any] | None, interval_s: float | None) -> None:
        self.fun, self.args, self.kwargs = fun, tuple(args), dict(kwargs or {})
        self.interval_s = interval_s
        self.canceled = False
        self._handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        self.canceled = True
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    def __call__(self) -> None:
        try:
            self.fun(*self.args, **self.kwargs)
        except Exception as exc:
            logger.error("Error in timer: %r", exc, exc_info=True)


class Timer:
    """See the module docstring. ``bind(loop)`` before the first call."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._entries: set[Entry] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call_after(self, secs: float, fun: Callable[..., Any], args: Sequence[Any] = (),
                   kwargs: dict[str, Any] | None = None, priority: int = 0) -> Entry:
        return self._add(Entry(fun, args, kwargs, None), float(secs))

    def call_at(self, eta: dt.datetime | float, fun: Callable[..., Any],
                args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
                priority: int = 0) -> Entry:
        when = eta.timestamp() if isinstance(eta, dt.datetime) else float(eta)
        return self._add(Entry(fun, args, kwargs, None), max(0.0, when - time.time()))

    def call_repeatedly(self, secs: float, fun: Callable[..., Any],
                        args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
                        priority: int = 0) -> Entry:
        return self._add(Entry(fun, args, kwargs, float(secs)), float(secs))

    def clear(self) -> None:
        """Cancel every entry (the worker's shutdown)."""
        for entry in list(self._entries):
            entry.cancel()
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    # -- scheduling ---------------------------------------------------------------------
    def _add(self, entry: Entry, delay_s: float) -> Entry:
        loop = self._loop
        if loop is None:
            raise RuntimeError("worker.timer is usable once the worker runs (in a "
                               "bootstep's start(), not its __init__)")
        self._entries.add(entry)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._arm(entry, delay_s)
        else:
            loop.call_soon_threadsafe(self._arm, entry, delay_s)
        return entry

    def _arm(self, entry: Entry, delay_s: float) -> None:
        if entry.canceled or self._loop is None:
            self._entries.discard(entry)
            return
        entry._handle = self._loop.call_later(max(0.0, delay_s), self._fire, entry)

    def _fire(self, entry: Entry) -> None:
        entry._handle = None
        if entry.canceled:
            self._entries.discard(entry)
            return
        started = time.monotonic()
        entry()
        if entry.interval_s is None or entry.canceled:
            self._entries.discard(entry)
            return
        # the next run counts from this one's start, as kombu's call_repeatedly
        self._arm(entry, entry.interval_s - (time.monotonic() - started))
