"""An application's own remote control commands, registered as Celery's are.

``@control_command(...)`` and ``@inspect_command(...)`` (Celery's
``celery.worker.control``; celeriac exports them under the same path) put a function
in the worker's command table (commands.py) with Celery's metadata, so a worker that
imported the module answers it and ``celeriac control|inspect NAME ARG...`` converts
its positional arguments by ``args``/``variadic``, as ``celery control`` does::

    @control_command(args=[("n", int)], signature="[N=1]")
    def increase_prefetch_count(state, n=1):
        state.consumer.qos.increment_eventually(n)
        return {"ok": "prefetch count incremented"}

The function gets Celery's ``state`` (``CommandState``: ``app``, ``hostname``,
``consumer``; ``worker`` is celeriac's own view of the worker, control/state.py) and
the request's arguments as keywords. It may be ``def`` or ``async def``; a ``def`` runs
on the worker's event loop, as Celery runs it on its consumer's, so a slow one holds
the worker up while it runs. What it returns is the reply (JSON).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.control.commands import (
    COMMANDS,
    META,
    ArgSpec,
    Command,
    CommandInfo,
    add_command,
    nok,
    ok,
)

if TYPE_CHECKING:
    from celeriac.control.state import WorkerState

__all__ = ["CommandState", "Panel", "control_command", "controller_info_t",
           "inspect_command", "nok", "ok"]

#: Celery's name for the metadata tuple
controller_info_t = CommandInfo


class CommandState:
    """Celery's ``state`` argument: an AttributeDict of app, hostname, consumer and
    tset there; here the same names (``consumer`` is worker/consumer_view.py's view of
    Celery's Consumer) and ``worker``, celeriac's WorkerState."""

    def __init__(self, worker_state: WorkerState) -> None:
        self.worker = worker_state
        self.app = worker_state.app
        self.hostname = worker_state.hostname
        self.tset = set  # Celery: set, or pass1 with its event loop; callers copy with it

    @property
    def consumer(self) -> Any:
        view = getattr(self.worker.worker, "consumer_view", None)
        if view is None:
            raise AttributeError("state.consumer: this command runs outside a worker "
                                 "(no consumer to show)")
        return view

    def __repr__(self) -> str:
        return f"<CommandState: {self.hostname}>"


class Panel:
    """Celery's registry of remote control commands. ``data`` is the worker's command
    table (name -> handler; an application's function is each handler's
    ``__wrapped__``) and ``meta`` name -> ``controller_info_t``; both hold the built-in
    commands too, as Celery's do."""

    data = COMMANDS
    meta = META

    @classmethod
    def register(cls, *args: Any, **kwargs: Any) -> Any:
        """``Panel.register(fun, **options)`` or ``@Panel.register(**options)``."""
        if args:
            return cls._register(**kwargs)(*args)
        return cls._register(**kwargs)

    @classmethod
    def _register(cls, name: str | None = None, alias: str | None = None,
                  type: str = "control", visible: bool = True,
                  default_timeout: float = 1.0, help: str | None = None,
                  signature: str | None = None, args: Sequence[ArgSpec] | None = None,
                  variadic: str | None = None) -> Callable[[Any], Any]:
        if type not in ("control", "inspect"):
            raise ValueError(f"type must be 'control' or 'inspect', not {type!r}")

        def inner(fun: Any) -> Any:
            control_name = name or fun.__name__
            help_text = help or (fun.__doc__ or "").strip().split("\n")[0]
            info = CommandInfo(alias, type, visible, default_timeout, help_text, signature,
                               list(args) if args else None, variadic)
            add_command(control_name, _handler(fun), info)
            return fun
        return inner


def control_command(**kwargs: Any) -> Callable[[Any], Any]:
    """Register a command that changes the worker (``celeriac control NAME``)."""
    return Panel.register(type="control", **kwargs)  # type: ignore[no-any-return]


def inspect_command(**kwargs: Any) -> Callable[[Any], Any]:
    """Register a command that only reads (``celeriac inspect NAME``)."""
    return Panel.register(type="inspect", **kwargs)  # type: ignore[no-any-return]


def _handler(fun: Callable[..., Any]) -> Command:
    """The worker's handler for an application's function: Celery's state in, the
    function's return value (awaited when it is a coroutine) out."""

    @functools.wraps(fun)
    async def handle(worker_state: WorkerState, **arguments: Any) -> Any:
        reply = fun(CommandState(worker_state), **arguments)
        if inspect.isawaitable(reply):
            reply = await reply
        return reply

    return handle
