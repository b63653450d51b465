"""Celery's ``celery.utils.log``: module and task loggers, and the worker's task format.

``get_task_logger(__name__)`` gives a logger whose records go to the ``celery.task``
logger (Celery's name, so logging configurations written for Celery keep working). In a
worker that logger writes with ``worker_task_log_format``, which may name the running
task: ``%(task_name)s`` and ``%(task_id)s`` come from ``task.request`` when the record
is formatted ('???' outside a task). ``setup_task_logging`` is the worker's part;
``redirect_stdouts`` sends a task's ``print()`` to the log (worker_redirect_stdouts).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from celeriac.context import current_request

if TYPE_CHECKING:
    from celeriac.config import Config

#: level names to numbers and back, as Celery's
LOG_LEVELS: dict[Any, Any] = {**logging._nameToLevel, **logging._levelToName}
LOG_LEVELS["FATAL"] = logging.FATAL

#: Celery's logger names: the library's base, and the parent of every task logger
base_logger = logging.getLogger("celery")
task_logger = logging.getLogger("celery.task")
_RESERVED = frozenset({"celery", "celery.task"})


def mlevel(level: int | str | None) -> int | None:
    """A level name or number as a number (``'info'`` -> 20); ValueError if unknown."""
    if level is None or isinstance(level, int):
        return level
    number = logging.getLevelName(str(level).upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning, error "
                         f"or critical")
    return number


def get_logger(name: str) -> logging.Logger:
    """A logger by name (``logging.getLogger``)."""
    return logging.getLogger(name)


def get_task_logger(name: str) -> logging.Logger:
    """A logger for a tasks module whose records go through ``celery.task`` (and so
    carry the running task's name and id in the worker's task log format)."""
    if name in _RESERVED:
        raise RuntimeError(f"Logger name {name!r} is reserved!")
    logger = logging.getLogger(name)
    parent: logging.Logger | None = logger
    while parent is not None and parent is not task_logger:
        parent = parent.parent
    if parent is None:
        logger.parent = task_logger
    return logger


class TaskFormatter(logging.Formatter):
    """Fills ``task_name`` and ``task_id`` from the running task's request."""

    def format(self, record: logging.LogRecord) -> str:
        request = current_request.get()
        if request.id is not None:
            record.__dict__.update(task_name=request.task, task_id=request.id)
        else:
            record.__dict__.setdefault("task_name", "???")
            record.__dict__.setdefault("task_id", "???")
        return super().format(record)


def setup_task_logging(conf: Config, level: int | str | None) -> None:
    """The worker's task logger: the root logger's handlers (stderr, ``--logfile``),
    each copied with ``worker_task_log_format``; it does not propagate, so a task's line
    is written once. Left alone when ``worker_hijack_root_logger`` is off and the
    application configured ``celery.task`` itself."""
    if task_logger.handlers and not conf.worker_hijack_root_logger:
        return
    for old in list(task_logger.handlers):
        task_logger.removeHandler(old)
    formatter = TaskFormatter(conf.worker_task_log_format)
    for handler in logging.getLogger().handlers:
        twin = copy.copy(handler)  # same stream or file, and the same lock
        twin.setFormatter(formatter)
        task_logger.addHandler(twin)
    number = mlevel(level)
    if number is not None:
        task_logger.setLevel(number)
    task_logger.propagate = not task_logger.handlers


class LoggingProxy:
    """A file that writes to a logger, as Celery's: ``print()`` in a task becomes a log
    record of ``celery.redirected`` at the given level (one per non-blank write).
    Writes made while a handler is itself writing (a handler that resolves
    ``sys.stderr`` late) go to the original stream, not round again."""

    mode = "w"
    name: str | None = None
    closed = False

    def __init__(self, logger: logging.Logger, level: int, fallback: Any) -> None:
        self.logger, self.loglevel, self.original = logger, level, fallback
        self._busy = threading.local()

    def write(self, data: str | bytes) -> int:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if getattr(self._busy, "on", False):
            return int(self.original.write(data))
        text = data.strip()
        if text:
            self._busy.on = True
            try:
                self.logger.log(self.loglevel, text)
            finally:
                self._busy.on = False
        return len(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:  # faulthandler and subprocess look for one
        return int(self.original.fileno())


@contextlib.contextmanager
def redirect_stdouts(conf: Config) -> Iterator[None]:
    """``worker_redirect_stdouts`` (on by default, as Celery's): while the worker runs,
    sys.stdout and sys.stderr (also in the prefork children it forks) go to the
    ``celery.redirected`` logger at ``worker_redirect_stdouts_level``; restored after,
    so the CLI's own error line is written as it is."""
    if not conf.worker_redirect_stdouts:
        yield
        return
    level = mlevel(conf.worker_redirect_stdouts_level) or logging.WARNING
    logger = logging.getLogger("celery.redirected")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (s if isinstance(s, LoggingProxy) else
                              LoggingProxy(logger, level, s) for s in saved)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
