"""Signals with Celery's API (``celery.utils.dispatch.Signal``): ``connect`` (also as a
decorator, bare or with ``sender=``/``weak=``/``dispatch_uid=``), ``disconnect`` and
``send``. A receiver that raises is logged and the others still run, as Celery does.
The app's hooks (``on_after_configure``, ``on_after_finalize``) are Signals; a later
``celeriac.signals`` module is meant to reuse this class.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("celeriac.signals")

Receiver = Callable[..., Any]
#: (receiver's id key, sender's id) -> one connection
_Key = tuple[Any, int]


def _ref(receiver: Receiver, weak: bool) -> Callable[[], Receiver | None]:
    """A callable that returns the receiver, or None once it was collected."""
    if not weak:
        return lambda: receiver
    if hasattr(receiver, "__self__") and hasattr(receiver, "__func__"):
        return weakref.WeakMethod(receiver)
    try:
        return weakref.ref(receiver)
    except TypeError:  # builtins and some callables cannot be weakly referenced
        return lambda: receiver


def _id(value: Any) -> Any:
    if hasattr(value, "__self__") and hasattr(value, "__func__"):
        return (id(value.__self__), id(value.__func__))
    return id(value)


class Signal:
    """A hook receivers connect to and senders fire. See the module docstring."""

    def __init__(self, name: str | None = None, providing_args: Any = None,
                 use_caching: bool = False) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._receivers: list[tuple[_Key, Callable[[], Receiver | None], Any]] = []

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    def connect(self, receiver: Receiver | None = None, sender: Any = None,
                weak: bool = True, dispatch_uid: Any = None) -> Any:
        """Connect ``receiver``; with no receiver, return a decorator that does.
        ``sender``: only sends from that object (compared by identity). A receiver
        connected twice with the same sender (or ``dispatch_uid``) is called once."""

        def register(fun: Receiver) -> Receiver:
            key: _Key = (dispatch_uid if dispatch_uid is not None else _id(fun), id(sender))
            with self._lock:
                self._prune()
                if all(k != key for k, _, _ in self._receivers):
                    self._receivers.append((key, _ref(fun, weak), sender))
            return fun

        if receiver is None:
            return register
        return register(receiver)

    def disconnect(self, receiver: Receiver | None = None, sender: Any = None,
                   dispatch_uid: Any = None) -> bool:
        """Disconnect one connection; True when there was one."""
        key: _Key = (dispatch_uid if dispatch_uid is not None else _id(receiver), id(sender))
        with self._lock:
            before = len(self._receivers)
            self._receivers = [r for r in self._receivers if r[0] != key]
            return len(self._receivers) != before

    def _prune(self) -> None:
        self._receivers = [r for r in self._receivers if r[1]() is not None]

    def _live(self, sender: Any) -> list[Receiver]:
        with self._lock:
            self._prune()
            found = []
            for _key, ref, wanted in self._receivers:
                if wanted is None or wanted is sender:
                    fun = ref()
                    if fun is not None:
                        found.append(fun)
            return found

    @property
    def receivers(self) -> list[Receiver]:
        """The live receivers, in connection order."""
        return [r for r in (ref() for _, ref, _ in self._receivers) if r is not None]

    def has_listeners(self, sender: Any = None) -> bool:
        return bool(self._live(sender))

    def send(self, sender: Any, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver for this sender with ``signal=``, ``sender=`` and
        ``named``; returns (receiver, result or the exception it raised) pairs."""
        results: list[tuple[Receiver, Any]] = []
        for fun in self._live(sender):
            try:
                results.append((fun, fun(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("Signal handler %r raised: %r", fun, exc)
                results.append((fun, exc))
        return results

    send_robust = send
