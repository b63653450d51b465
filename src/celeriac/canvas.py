"""Signatures and chains: the ``callbacks``/``errbacks``/``chain`` fields of protocol v2.

A Signature is a dict (Celery's JSON form: task, args, kwargs, options, subtask_type,
immutable), so it travels in messages as is. Groups and chords come later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.result import AsyncResult


class Signature(dict[str, Any]):
    """A task call that can be sent later, linked, or chained."""

    @classmethod
    def of(cls, name: str, args: Any = (), kwargs: Any = None, *, app: Celery | None = None,
           immutable: bool = False, **options: Any) -> Signature:
        sig = cls(task=name, args=list(args), kwargs=dict(kwargs or {}), options=options,
                  subtask_type=None, immutable=immutable)
        sig._app = app
        return sig

    _app: Celery | None = None

    @property
    def app(self) -> Celery:
        from celeriac.app import current_app

        return self._app or current_app()

    def apply_async(self, args: Any = (), kwargs: Any = None, **options: Any) -> AsyncResult[Any]:
        """Send it; extra args go before the signature's own (unless immutable)."""
        all_args = list(self["args"]) if self.get("immutable") else [*args, *self["args"]]
        merged = {**self.get("options", {}), **options}
        return self.app.send_task(self["task"], all_args, {**self["kwargs"], **(kwargs or {})},
                                  **merged)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        return self.apply_async(args, kwargs)

    def link(self, callback: Signature) -> Signature:
        self.setdefault("options", {}).setdefault("link", []).append(dict(callback))
        return callback

    def link_error(self, errback: Signature) -> Signature:
        self.setdefault("options", {}).setdefault("link_error", []).append(dict(errback))
        return errback

    def __or__(self, other: Any) -> Any:
        """``a.s() | b.s()`` is ``chain(a.s(), b.s())``."""
        if isinstance(other, Signature):
            return chain(self, other)
        return super().__or__(other)


def signature(value: Any, app: Celery | None = None, **options: Any) -> Signature:
    """A Signature from a dict (e.g. one received in a message) or a task name."""
    if isinstance(value, str):
        return Signature.of(value, app=app, **options)
    sig = Signature(value)
    sig._app = app
    return sig


class chain:
    """``chain(a.s(1), b.s(), c.s())``: each step gets the previous one's result."""

    def __init__(self, *steps: Signature) -> None:
        self.steps = list(steps)

    def __or__(self, other: Signature) -> chain:
        return chain(*self.steps, other)

    def apply_async(self, args: Any = (), kwargs: Any = None, **options: Any) -> AsyncResult[Any]:
        first, rest = self.steps[0], self.steps[1:]
        # protocol v2 stores the rest of the chain reversed: workers pop from the end
        return first.apply_async(args, kwargs, chain=[dict(s) for s in reversed(rest)] or None,
                                 **options)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        return self.apply_async(args, kwargs)
