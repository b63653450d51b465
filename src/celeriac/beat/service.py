"""Celery's ``celery.beat.Service``: beat in this thread until ``stop()``, the way
``celery beat`` and code that embeds beat run it. Here it runs celeriac's Scheduler
(scheduler.py: state in the broker, one sender among many); Celery's
``schedule_filename`` and ``scheduler_cls`` are accepted and not used, as ``celeriac
beat``'s ``-s`` and ``-S`` are (docs/moving-from-celery.md says why)."""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.beat.scheduler import Scheduler

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.beat")
#: the scheduler names that mean "the default one" (no notice for them)
DEFAULT_SCHEDULERS = frozenset({
    "celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler",
    "celery.beat:Scheduler", "celery.beat.Scheduler", "celeriac.beat:Scheduler",
    "celeriac.beat.Scheduler"})
SCHEDULER_NOTICE = ("beat: scheduler {!r} is accepted and not used: celeriac's scheduler "
                    "reads beat_schedule and keeps its state in the broker")


class Service:
    """See the module docstring."""

    def __init__(self, app: Celery, max_interval: float | None = None,
                 schedule_filename: str | None = None, scheduler_cls: Any = None) -> None:
        self.app = app
        self.max_interval = max_interval
        self.schedule_filename = schedule_filename
        if scheduler_cls and _name(scheduler_cls) not in DEFAULT_SCHEDULERS:
            logger.warning(SCHEDULER_NOTICE.format(_name(scheduler_cls)))
        self._stopped = threading.Event()

    @cached_property
    def scheduler(self) -> Scheduler:
        return self.get_scheduler()

    def get_scheduler(self, lazy: bool = False, **_: Any) -> Scheduler:
        return Scheduler(self.app, max_interval_s=self.max_interval)

    def start(self, embedded_process: bool = False) -> None:
        """Run until ``stop()`` (from a signal handler or another thread)."""
        signals.send(signals.beat_embedded_init if embedded_process else signals.beat_init,
                     self)
        try:
            self.scheduler.run()
        finally:
            self._stopped.set()

    def sync(self) -> None:
        """Nothing to write: every run's state is in the broker as it happens."""

    def stop(self, wait: bool = False) -> None:
        self.scheduler.stop()
        if wait:
            self._stopped.wait()


def _name(scheduler_cls: Any) -> str:
    if isinstance(scheduler_cls, str):
        return scheduler_cls
    return f"{scheduler_cls.__module__}.{scheduler_cls.__qualname__}"
