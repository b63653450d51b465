"""What ``@shared_task`` returns: the task of the *current* app, looked up at each use.

Celery returns a proxy here, so ``add.delay()`` sends through whichever app is current
when it is called, not the app that happened to exist when the module was imported.
Test suites depend on it: the pytest plugin's worker fixtures make their app current
(celeriac.contrib.testing.worker.setup_app_for_worker), and a shared task imported at
collection time must then send to that app's broker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SharedTask:
    """Stands for ``current_app().tasks[name]``; attribute access and calls go there."""

    __slots__ = ("_fun", "_name")

    def __init__(self, fun: Callable[..., Any], name: str | None) -> None:
        object.__setattr__(self, "_fun", fun)
        object.__setattr__(self, "_name", name)

    def _get_current_object(self) -> Any:
        """The task registered under this name on the current app (shared_task
        registers it with every app, those made later included)."""
        from celeriac.app.base import current_app

        app = current_app()
        return app.tasks[self._name or app.gen_task_name(self._fun)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get_current_object(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get_current_object(), name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get_current_object()(*args, **kwargs)

    @property  # type: ignore[misc]  # isinstance(add, Task) holds, as with Celery's proxy
    def __class__(self) -> type[Any]:
        return type(self._get_current_object())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SharedTask):
            other = other._get_current_object()
        return bool(self._get_current_object() == other)

    def __hash__(self) -> int:
        return hash(self._get_current_object())

    def __repr__(self) -> str:
        return repr(self._get_current_object())

    def __reduce__(self) -> Any:
        return self._get_current_object().__reduce__()
