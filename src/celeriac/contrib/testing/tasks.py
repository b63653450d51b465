"""The task ``start_worker`` sends to check that its worker consumes.

Registered as ``celery.ping``, Celery's name: the name travels in the message, and a
Celery worker sharing the broker knows that one (as ``celery.chord`` and the other
built-ins keep theirs, celeriac/builtins.py).
"""

from __future__ import annotations

from celeriac.app import shared_task


@shared_task(name="celery.ping")  # type: ignore[untyped-decorator]  # shared_task: Any
def ping() -> str:
    """Answer ``'pong'``."""
    return "pong"
