"""Celery's ``celery.exceptions`` names, for ``from celeriac.exceptions import ...``.

The classes live in ``celeriac.errors``; this module only re-exports them.
"""

from __future__ import annotations

from celeriac.errors import (
    ChordError,
    Ignore,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    Retry,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    TimeoutError,
)

__all__ = ["ChordError", "Ignore", "ImproperlyConfigured", "MaxRetriesExceededError",
           "Retry", "SoftTimeLimitExceeded", "TimeLimitExceeded", "TimeoutError"]
