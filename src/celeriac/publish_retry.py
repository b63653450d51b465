"""How long a send keeps trying to reach the broker: Celery's ``task_publish_retry`` and
``task_publish_retry_policy`` (and ``apply_async(retry=, retry_policy=)``).

celeriac's brokers already ride out a lost connection: a send reconnects with backoff
until a deadline (the ``retry_timeout`` transport option, 30 s) and re-sends what the
broker had not answered. A policy sets that deadline for the sends it covers: the sum of
the pauses Celery would make (``interval_start``, then ``interval_step`` more each time,
at most ``interval_max``, ``max_retries`` times; Celery's defaults add up to 0.4 s;
``max_retries=None``: no end). ``task_publish_retry=False`` (or ``retry=False``): one
attempt. The attempts inside the window follow the broker's backoff (50 ms, doubling,
capped), not the policy's own pauses. Then the send raises ``BrokerConnectionError``
(an ``OperationalError``).

The deadline travels in a ContextVar set around the send (``covering``), read where the
brokers compute theirs (``deadline``): the sync producers on the caller's thread, the
async brokers inside the publishing task.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: Celery's default policy (celery/app/defaults.py, kombu's ensure)
CELERY_DEFAULT: Mapping[str, Any] = {
    "max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}

#: seconds the send in progress may keep trying, None: the broker's own retry_timeout
_window_s: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "celeriac_publish_window_s", default=None)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Celery's retry policy fields."""

    max_retries: int | None = 3
    interval_start: float = 0.0
    interval_step: float = 0.2
    interval_max: float = 0.2

    @classmethod
    def from_mapping(cls, policy: Mapping[str, Any]) -> RetryPolicy:
        """Celery's dict; missing keys take Celery's defaults, unknown keys are ignored
        (Celery's ``retry_errors`` among them: every connection error is retried)."""
        merged = {**CELERY_DEFAULT, **policy}
        retries = merged["max_retries"]
        return cls(None if retries is None else int(retries),
                   float(merged["interval_start"]), float(merged["interval_step"]),
                   float(merged["interval_max"]))

    def window_s(self) -> float:
        """Seconds Celery's retries would wait in all (inf with no max_retries)."""
        if self.max_retries is None:
            return math.inf
        return sum(min(self.interval_start + i * self.interval_step, self.interval_max)
                   for i in range(self.max_retries))


def window_for(retry: Any, policy: Any) -> float | None:
    """The window a send gets: 0 when retry is off, the policy's when one is given,
    None (the broker's retry_timeout) when neither says."""
    if retry is not None and not retry:
        return 0.0
    if policy is None:
        return None
    return RetryPolicy.from_mapping(policy).window_s()


@contextmanager
def covering(window_s: float | None) -> Iterator[None]:
    """Sends inside the block keep trying for ``window_s`` (None: the broker's default)."""
    if window_s is None and _window_s.get() is None:
        yield
        return
    token = _window_s.set(window_s)
    try:
        yield
    finally:
        _window_s.reset(token)


def deadline(default_s: float) -> float:
    """The monotonic time a send gives up at: its policy's window, else ``default_s``."""
    window = _window_s.get()
    return time.monotonic() + (default_s if window is None else window)
