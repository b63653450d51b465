"""The worker's first connection to its broker and result backend, retried as Celery's.

A worker started before its broker (containers, systemd ordering) waits for it:
with ``broker_connection_retry_on_startup`` (default on) each refused attempt logs one
line in Celery's words and spacing,

    consumer: Cannot connect to redis://:**@host:6379/0: Error 111 connecting to
    host:6379. Connection refused. Trying again in 2.00 seconds... (1/100)

sleeping 2, 4, 6 ... 30, 30 ... seconds as kombu's ``ensure_connection`` does, until
``broker_connection_max_retries`` retries have failed (None: forever; 0: no retry).
Only failures that waiting can cure are retried: refused or reset connections,
timeouts (``broker_connection_timeout`` bounds each attempt), unknown host names (a
container's DNS name appears with the container), Redis still loading its data. A wrong
password, a missing vhost, TLS errors or an unknown scheme fail at once. One-shot CLI
commands do not come here: they fail on the first refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from celeriac.brokers.base import mask_url
from celeriac.errors import BrokerConnectionError

logger = logging.getLogger("celeriac.worker")

T = TypeVar("T")

#: kombu's Connection.ensure_connection schedule: start 2 s, add 2 s, at most 30 s
INTERVAL_START_S, INTERVAL_STEP_S, INTERVAL_MAX_S = 2.0, 2.0, 30.0


def retry_intervals(start_s: float = INTERVAL_START_S, step_s: float = INTERVAL_STEP_S,
                    max_s: float = INTERVAL_MAX_S) -> Iterator[float]:
    """2, 4, 6, ... 30, 30, 30, ... seconds."""
    interval = start_s
    while True:
        yield min(interval, max_s)
        interval += step_s


def humanize_seconds(seconds: float) -> str:
    """Celery's wording for a wait: 'in 2.00 seconds', 'in 1.00 second', 'now'."""
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0),
                       ("second", 1.0)):
        if seconds >= size:
            amount = seconds / size
            return f"in {amount:.2f} {unit}{'' if amount == 1 else 's'}"
    return "now"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _library_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(errors that mean 'refused for good', errors that mean 'not there yet') from the
    client libraries that are installed."""
    fatal: list[type[BaseException]] = []
    transient: list[type[BaseException]] = []
    try:
        from redis import exceptions as redis_errors
    except ImportError:
        pass
    else:
        fatal += [redis_errors.AuthenticationError, redis_errors.AuthorizationError,
                  redis_errors.ResponseError]
        transient += [redis_errors.ConnectionError, redis_errors.TimeoutError]
    try:
        from aiormq import exceptions as amqp_errors

        from celeriac.brokers.amqp.link import ConnectionLost
    except ImportError:
        pass
    else:
        fatal += [amqp_errors.ProbableAuthenticationError, amqp_errors.AuthenticationError]
        transient += [ConnectionLost]
    return tuple(fatal), tuple(transient)


def is_transient(exc: BaseException) -> bool:
    """True when the server may simply not be up yet (worth waiting for)."""
    fatal, transient = _library_errors()
    chain = list(_chain(exc))
    if any(isinstance(e, fatal) for e in chain):
        return False
    return any(isinstance(e, (*transient, ConnectionError, TimeoutError, socket.gaierror))
               for e in chain)


def reason(exc: BaseException) -> str:
    """What went wrong, without our own wrapping (the URL is said separately): the
    client library's message (redis-py's 'Error 111 connecting to h:p. Connection
    refused.'), else the operating system's ('[Errno 111] Connection refused')."""
    chain = list(_chain(exc))
    for e in chain:
        if type(e).__module__.startswith("redis"):
            return str(e).rstrip(".")
    for e in reversed(chain):
        if isinstance(e, OSError) and str(e):
            return str(e).rstrip(".")
    return str(exc).rstrip(".")


async def connect_on_startup(connect: Callable[[], Awaitable[T]], url: str, *, retry: bool,
                             max_retries: int | None,
                             sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> T:
    """``await connect()``, retried while the server is not there (see the module
    docstring); raises BrokerConnectionError saying how long it tried."""
    intervals = retry_intervals()
    retries = 0
    masked = mask_url(url)
    while True:
        try:
            with _quiet_client_logs():
                return await connect()
        except BrokerConnectionError as exc:
            if not retry or not is_transient(exc):
                raise
            if max_retries is not None and retries >= max_retries:
                raise BrokerConnectionError(
                    f"cannot connect to {masked}: {reason(exc)}; gave up after {retries} "
                    f"retr{'y' if retries == 1 else 'ies'} (broker_connection_max_retries="
                    f"{max_retries})") from exc
            retries += 1
            wait_s = next(intervals)
            logger.error("consumer: Cannot connect to %s: %s. Trying again %s... (%d/%s)",
                         masked, reason(exc), humanize_seconds(wait_s), retries, max_retries)
            await sleep(wait_s)


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _quiet_client_logs() -> Iterator[None]:
    """aiormq logs each refused connection itself ('error when creating transport');
    our line per attempt says it already, with the URL and what happens next."""
    quiet = _DropRecords()
    client_logger = logging.getLogger("aiormq.connection")
    client_logger.addFilter(quiet)
    try:
        yield
    finally:
        client_logger.removeFilter(quiet)


def retry_settings(conf: Any) -> tuple[bool, int | None]:
    """(retry at start-up?, max retries) from ``broker_connection_retry_on_startup``
    (None counts as on: Celery would read ``broker_connection_retry`` there, which
    celeriac does not act on: a lost connection is always reconnected) and
    ``broker_connection_max_retries``."""
    on_startup = conf.broker_connection_retry_on_startup
    retry = True if on_startup is None else bool(on_startup)
    max_retries = conf.broker_connection_max_retries
    return retry, (None if max_retries is None else int(max_retries))


__all__ = ["connect_on_startup", "humanize_seconds", "is_transient", "reason",
           "retry_intervals", "retry_settings"]
