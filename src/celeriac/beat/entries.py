"""``beat_schedule`` entries as Celery reads them: ``task``, ``schedule`` (seconds, a
timedelta, ``crontab``, ``solar`` or any object with ``is_due``), ``args``, ``kwargs``,
``options`` and ``relative``. A bad entry is a ConfigurationError naming it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac.errors import ConfigurationError
from celeriac.schedules import maybe_schedule

if TYPE_CHECKING:
    from celeriac.app import Celery

_KEYS = {"task", "schedule", "args", "kwargs", "options", "relative"}


@dataclass(slots=True)
class Entry:
    """One periodic task. ``last_run`` is the value the broker holds (a UTC timestamp
    as text, None before the first run) and ``due_at`` when to look at it next."""

    name: str
    task: str
    schedule: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    last_run: str | None = None
    due_at: float = 0.0

    def last_run_at(self, default: float) -> dt.datetime:
        stamp = float(self.last_run) if self.last_run is not None else default
        return dt.datetime.fromtimestamp(stamp, dt.UTC)


def load_entries(app: Celery, schedule: Mapping[str, Any] | None = None) -> list[Entry]:
    """The app's ``beat_schedule`` as entries, checked; raises ConfigurationError naming
    the entry and what is wrong with it."""
    found = []
    for name, spec in (schedule if schedule is not None else app.conf.beat_schedule).items():
        try:
            found.append(_entry(app, str(name), spec))
        except ConfigurationError as exc:
            raise ConfigurationError(f"beat_schedule entry {name!r}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"beat_schedule entry {name!r}: {exc}") from None
    return found


def _entry(app: Celery, name: str, spec: Any) -> Entry:
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"must be a dict, not {type(spec).__name__}")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ConfigurationError(f"unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    task = spec.get("task")
    if not isinstance(task, str) or not task:
        raise ConfigurationError("'task' must name a task")
    if "schedule" not in spec:
        raise ConfigurationError("'schedule' is missing")
    sched = maybe_schedule(spec["schedule"], bool(spec.get("relative", False)), app=app)
    error = getattr(sched, "error", None)  # a crontab's invalid field (schedules.py)
    if isinstance(error, ConfigurationError):
        raise ConfigurationError(str(error))
    if not callable(getattr(sched, "is_due", None)):
        raise ConfigurationError(f"'schedule' {spec['schedule']!r} is not a schedule "
                                 "(seconds, a timedelta, crontab or solar)")
    args = spec.get("args") or ()
    kwargs = spec.get("kwargs") or {}
    options = spec.get("options") or {}
    if not isinstance(args, (list, tuple)):
        raise ConfigurationError("'args' must be a list or tuple")
    if not isinstance(kwargs, Mapping) or not isinstance(options, Mapping):
        raise ConfigurationError("'kwargs' and 'options' must be dicts")
    return Entry(name, task, sched, tuple(args), dict(kwargs), dict(options))
