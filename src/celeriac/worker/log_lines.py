"""The worker's log output at thousands of lines a second (``-l info`` logs two per task).

``TurnHandler`` writes the lines logged in one turn of the worker's event loop with one
``write`` (at most ``CHUNK`` bytes each, so lines from prefork children sharing the pipe
never split one another), instead of a write and a flush per line. Nothing is dropped
or reordered: lines leave in the order they were logged, at the end of the turn, and at
once when logged off the loop (another thread, a child process, no running loop), at
WARNING and above, or when the chunk is full. A forked child forgets the lines its
parent had not written yet (the parent writes them).

``CachedTimeFormatter`` formats ``%(asctime)s`` from a per-second cache: ``strftime``
per line was a tenth of a line's cost. ``lean_records`` turns off what a LogRecord
gathers that the format does not print (the caller's frame, thread, pid), the
optimizations the logging HOWTO lists.

``fast_info`` gives the worker's logger an ``info`` that writes the line itself, the
same text, when logging's machinery would only have led to this handler: no filters,
no other handler on the way, a format of fields it knows (Celery's is). Otherwise, and
for every other level, logging runs as usual. It was a third of the default worker's
own cost per task (two lines per task, a LogRecord and a format each).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
import weakref
from typing import TextIO

#: the most bytes one write carries (PIPE_BUF: a pipe write up to this size is atomic)
CHUNK = 4096

_handlers: weakref.WeakSet[TurnHandler] = weakref.WeakSet()


class TurnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """See the module docstring."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._size = 0
        self._scheduled = False
        self._defer = True  #: False in a forked child: it writes through
        self._main = threading.main_thread()
        self._main_ident = self._main.ident
        _handlers.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        loop = None
        if self._defer and record.levelno < logging.WARNING \
                and threading.current_thread() is self._main:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        self._add(line, loop)

    def emit_line(self, line: str) -> None:
        """``emit`` for a line already formatted (INFO, from ``fast_info``)."""
        loop = None
        if self._defer and threading.get_ident() == self._main_ident:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        self.acquire()
        try:
            self._add(line, loop)
        finally:
            self.release()

    def _add(self, line: str, loop: asyncio.AbstractEventLoop | None) -> None:
        """Queue a line (the handler's lock held): written at the end of ``loop``'s turn,
        at once without a loop, and what is queued first when the chunk would overflow."""
        if self._size + len(line) > CHUNK:
            self._write_out()
        self._lines.append(line)
        self._size += len(line)
        if loop is None:
            self._write_out()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._end_of_turn)

    def _end_of_turn(self) -> None:
        self.acquire()
        try:
            self._scheduled = False
            self._write_out()
        finally:
            self.release()

    def _write_out(self) -> None:
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines, self._size = [], 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            pass  # as StreamHandler: a closed stream must not take the worker down

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_out()
        finally:
            self.release()
        super().flush()

    def _forget(self) -> None:
        self._lines, self._size, self._scheduled, self._defer = [], 0, False, False


def _after_fork_in_child() -> None:
    for handler in list(_handlers):
        handler._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


def defer_lines() -> None:
    """In a forked child that runs an event loop of its own (a consumer child): buffer
    lines per loop turn again, as in the parent."""
    for handler in list(_handlers):
        handler._defer = True
        handler._main_ident = threading.get_ident()


class CachedTimeFormatter(logging.Formatter):
    """``logging.Formatter`` with ``%(asctime)s`` built once per second."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt or self.datefmt:
            return super().formatTime(record, datefmt)
        return self.asctime_of(record.created, record.msecs)

    def asctime_of(self, created: float, msecs: float | None = None) -> str:
        second = int(created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        if msecs is None:
            msecs = (created - second) * 1000
        return f"{self._text},{int(msecs):03d}"  # default_msec_format's "%s,%03d"


_CALLER_FIELDS = ("%(pathname)", "%(filename)", "%(module)", "%(lineno)", "%(funcName)")


def lean_records(*formats: str) -> None:
    """Stop LogRecords gathering what none of ``formats`` prints (process-wide)."""
    def used(*fields: str) -> bool:
        return any(f in fmt for fmt in formats for f in fields)

    if not used(*_CALLER_FIELDS):
        logging._srcfile = None  # the HOWTO's switch
    if not used("%(thread)", "%(threadName)"):
        logging.logThreads = False
    if not used("%(process)"):
        logging.logProcesses = False


#: record fields the fast path fills; a format using others takes the usual path
_FAST_FIELDS = frozenset({"asctime", "levelname", "levelno", "processName", "message",
                          "name"})


def fast_info(logger: logging.Logger, handler: TurnHandler) -> None:
    """Give ``logger`` the fast ``info`` described in the module docstring."""
    formatter = handler.formatter
    if type(formatter) is not CachedTimeFormatter \
            or type(formatter._style) is not logging.PercentStyle:
        return
    fmt = formatter._fmt or ""
    if not set(re.findall(r"%\((\w+)\)", fmt)) <= _FAST_FIELDS:
        return
    slow = type(logger).info.__get__(logger)  # the class's, even if installed before
    root = logging.getLogger()
    chain = []
    node: logging.Logger | None = logger
    while node is not None and node is not root:
        chain.append(node)
        node = node.parent
    terminator = handler.terminator
    # a line is head + message + tail; head and tail change with the millisecond (the
    # time) and the process name only, so they are formatted once for all the lines
    # of a millisecond, when the format prints the message once, as it is
    split = fmt.count("%(message)s") == 1 and "%(message)" not in fmt.replace(
        "%(message)s", "")
    last: list[object] = [None, "", ""]  #: (second, msec, process name), head, tail

    def info(msg: object, *args: object, **kwargs: object) -> None:
        if kwargs or not _only_to(handler, root, chain) or not logger.isEnabledFor(20):
            slow(msg, *args, **kwargs)
            return
        try:
            message = str(msg) % args if args else str(msg)
        except Exception:
            slow(msg, *args)
            return
        now = time.time()
        mp = sys.modules.get("multiprocessing")
        process = mp.current_process().name if mp else "MainProcess"
        if not split:
            handler.emit_line(fmt % _fields(formatter.asctime_of(now), process, message,
                                            logger.name) + terminator)
            return
        second = int(now)
        key = (second, int((now - second) * 1000), process)
        if key != last[0]:
            head, _, tail = (fmt % _fields(formatter.asctime_of(now), process, _MARK,
                                           logger.name)).partition(_MARK)
            last[:] = [key, head, tail + terminator]
        handler.emit_line(f"{last[1]}{message}{last[2]}")

    logger.info = info  # type: ignore[method-assign]


#: stands for the message while a line's head and tail are formatted
_MARK = "\x00celeriac-message\x00"


def _fields(asctime: str, process: str, message: str, name: str) -> dict[str, object]:
    return {"asctime": asctime, "levelname": "INFO", "levelno": 20, "processName": process,
            "message": message, "name": name}


def _only_to(handler: TurnHandler, root: logging.Logger, chain: list[logging.Logger]) -> bool:
    """Logging would hand an INFO record of the first logger in ``chain`` to ``handler``
    alone, unfiltered."""
    if root.handlers != [handler] or root.filters or handler.filters \
            or handler.level > 20 or logging.root.manager.disable >= 20:
        return False
    for node in chain:
        if node.handlers or node.filters or not node.propagate or node.disabled:
            return False
    return True
