"""Which event loop celeriac runs its own I/O on: uvloop where installed, else asyncio's.

uvloop (libuv) cuts the cost of each socket wake-up, which is most of a round trip with
an idle worker: measured on RabbitMQ, p50 ``delay()`` -> ``get()`` 1.16 -> 0.97 ms. The
worker's loop and the bridge loop (sync callers' async clients) use it;
``CELERIAC_EVENT_LOOP=asyncio`` keeps the standard loop (``uvloop`` insists on it, failing
when it is not installed). Tasks run on whichever loop the worker has; both implement
the asyncio API.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from celeriac.errors import ConfigurationError

T = TypeVar("T")
CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The constructor of the loop ``CELERIAC_EVENT_LOOP`` asks for (default: auto)."""
    choice = os.environ.get("CELERIAC_EVENT_LOOP", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ConfigurationError(
            f"CELERIAC_EVENT_LOOP={choice!r}: use one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigurationError(
                "CELERIAC_EVENT_LOOP=uvloop but uvloop is not installed "
                "(pip install uvloop)") from None
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def new_loop() -> asyncio.AbstractEventLoop:
    return loop_factory()()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
