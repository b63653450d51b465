"""Small helpers shared by several parts of celeriac (signals: dispatch.py; ending
background asyncio tasks: aio.py), and Celery's ``celery.utils.uuid``."""

from __future__ import annotations

import uuid as _uuid

__all__ = ["uuid"]


def uuid() -> str:
    """A new task id (Celery's ``celery.uuid`` and ``celery.utils.uuid``)."""
    return str(_uuid.uuid4())
