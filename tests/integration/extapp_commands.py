"""Custom remote control commands, as Celery's documentation writes them, in a module
the worker imports (extapp's ``imports``) and the app module does not."""

from __future__ import annotations

from typing import Any

from taskapp import record

from celeriac.worker.control import control_command, inspect_command


@control_command(args=[("n", int)], signature="[N=1]")
def increase_prefetch_count(state: Any, n: int = 1) -> dict[str, Any]:
    """Increase the prefetch window by N."""
    state.consumer.qos.increment_eventually(n)
    return {"ok": "prefetch count incremented"}


@inspect_command()
def current_prefetch_count(state: Any) -> dict[str, Any]:
    """The prefetch window asked for."""
    return {"prefetch_count": state.consumer.qos.value}


@control_command(args=[("tag", str)], variadic="words", signature="<tag> [word...]")
def note(state: Any, tag: str, words: Any = ()) -> dict[str, Any]:
    """Record a note in the test's record file."""
    record(f"note {tag} {' '.join(words)} {state.hostname} {state.app.main}")
    return {"ok": f"noted {tag}"}
