"""Periodic tasks: ``celeriac beat`` and ``worker -B``, any number of them, each run sent
once. entries.py reads ``beat_schedule``; scheduler.py is the loop; store.py is the
contract for the state kept in the broker, one store_<broker>.py per broker; service.py
is Celery's ``Service`` (beat in this thread).

Of Celery's ``celery.beat`` names, ``Service`` is here; ``Scheduler`` is celeriac's own
(not Celery's base class for custom schedulers: see docs/moving-from-celery.md);
``ScheduleEntry``, ``PersistentScheduler``, ``SchedulingError``, ``EmbeddedService``
and ``BeatPidbox`` are not."""

from __future__ import annotations

from celeriac.beat.entries import Entry, load_entries
from celeriac.beat.scheduler import Scheduler, run_threaded
from celeriac.beat.service import Service
from celeriac.beat.store import BeatStore

__all__ = ["BeatStore", "Entry", "Scheduler", "Service", "load_entries", "run_threaded"]
