"""The start-up banner and log format Celery users know, with passwords masked."""

from __future__ import annotations

import datetime as dt
import logging
import platform
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from celeriac import signals
from celeriac.brokers.base import mask_url
from celeriac.worker.log_lines import (
    CachedTimeFormatter,
    TurnHandler,
    fast_info,
    lean_records,
)

if TYPE_CHECKING:
    from celeriac.app import Celery

_ART = [
    " -------------- ",
    "--- ***** ----- ",
    "-- ******* ---- ",
    "- *** --- * --- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- *** --- * --- ",
    "-- ******* ---- ",
    "--- ***** ----- ",
    " -------------- ",
]


def banner(app: Celery, hostname: str, version: str, pool: str, queues: Sequence[str],
           results: str | None, events: bool) -> str:
    """The text printed when a worker starts."""
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    right = [
        f"{hostname} v{version} (celeriac)",
        "",
        f"{platform.platform()} {now}",
        "",
        "[config]",
        f".> app:         {app.main}:{id(app):#x}",
        f".> transport:   {mask_url(app.broker_url)}",
        f".> results:     {mask_url(results) if results else 'disabled://'}",
        f".> concurrency: {pool}",
        ".> task events: " + ("ON" if events else "OFF (enable -E to monitor tasks in this "
                                                   "worker)"),
        "",
        "[queues]",
    ]
    lines = [left + text for left, text in zip(_ART, right, strict=True)]
    lines += [" " * 16 + f".> {q:<16} exchange={q}(direct) key={q}" for q in queues]
    tasks = sorted(name for name in app.tasks if not name.startswith("celery."))
    lines += ["", "[tasks]"] + [f"  . {name}" for name in tasks] + [""]
    return "\n".join(lines)


def setup_logging(level: str, fmt: str, *other_formats: str, logfile: str | None = None
                  ) -> None:
    """Log to stderr in Celery's format at the given level (``-l info``), a loop turn's
    lines in one write (log_lines.py); ``other_formats``: those tasks log with. As in
    Celery, a receiver of the ``setup_logging`` signal replaces this set-up entirely, and
    ``after_setup_logger`` / ``after_setup_task_logger`` receivers may adjust it."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning, error "
                         f"or critical")
    if signals.listened(signals.setup_logging):
        signals.setup_logging.send(None, loglevel=numeric, logfile=logfile, format=fmt,
                                   colorize=False)
        return
    _own_logging(numeric, fmt, other_formats)
    for signal, logger in ((signals.after_setup_logger, logging.getLogger()),
                           (signals.after_setup_task_logger,
                            logging.getLogger("celery.task"))):
        signals.send(signal, None, logger=logger, loglevel=numeric, logfile=logfile,
                     format=fmt, colorize=False)


def _own_logging(numeric: int, fmt: str, other_formats: tuple[str, ...]) -> None:
    handler = TurnHandler(sys.stderr)
    handler.setFormatter(CachedTimeFormatter(fmt))
    lean_records(fmt, *other_formats)
    fast_info(logging.getLogger("celeriac.worker"), handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
