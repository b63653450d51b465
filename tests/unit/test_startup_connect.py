"""worker/connect.py: which failures a starting worker waits out, and how it says so."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
import redis.exceptions as redis_errors

from celeriac import Celery
from celeriac.errors import BrokerConnectionError
from celeriac.worker.connect import (
    connect_on_startup,
    humanize_seconds,
    is_transient,
    reason,
    retry_intervals,
    retry_settings,
)


def wrapped(cause: BaseException, text: str = "cannot connect") -> BrokerConnectionError:
    try:
        raise BrokerConnectionError(text) from cause
    except BrokerConnectionError as exc:
        return exc


def test_intervals_and_wording_are_kombus() -> None:
    gen = retry_intervals()
    assert [next(gen) for _ in range(17)] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                              26, 28, 30, 30, 30]
    assert humanize_seconds(2) == "in 2.00 seconds"
    assert humanize_seconds(1) == "in 1.00 second"
    assert humanize_seconds(90) == "in 1.50 minutes"


def test_refused_timeouts_and_unknown_hosts_are_worth_waiting_for() -> None:
    refused = redis_errors.ConnectionError("Error 111 connecting to h:1. Connection refused.")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert is_transient(wrapped(refused))
    assert is_transient(wrapped(ConnectionRefusedError(111, "Connection refused")))
    assert is_transient(wrapped(socket.gaierror(-2, "Name or service not known")))
    assert is_transient(wrapped(TimeoutError()))
    assert is_transient(wrapped(redis_errors.BusyLoadingError("LOADING")))
    assert reason(wrapped(refused)) == "Error 111 connecting to h:1. Connection refused"


def test_wrong_passwords_and_local_problems_fail_at_once() -> None:
    assert not is_transient(wrapped(redis_errors.AuthenticationError("invalid password")))
    assert not is_transient(wrapped(redis_errors.ResponseError("NOAUTH")))
    assert not is_transient(wrapped(FileNotFoundError(2, "No such file")))
    assert not is_transient(BrokerConnectionError("no cause at all"))
    from aiormq.exceptions import ProbableAuthenticationError

    assert not is_transient(wrapped(ProbableAuthenticationError("ACCESS_REFUSED")))


def test_retries_log_each_attempt_then_give_up(caplog: pytest.LogCaptureFixture) -> None:
    slept: list[float] = []
    attempts = 0

    async def connect() -> str:
        nonlocal attempts
        attempts += 1
        raise wrapped(ConnectionRefusedError(111, "Connection refused"))

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    caplog.set_level(logging.ERROR, "celeriac.worker")
    with pytest.raises(BrokerConnectionError, match=r"gave up after 3 retries \("
                       r"broker_connection_max_retries=3\)"):
        asyncio.run(connect_on_startup(connect, "redis://:secret@h:1/0", retry=True,
                                       max_retries=3, sleep=sleep))
    assert attempts == 4 and slept == [2, 4, 6]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"consumer: Cannot connect to redis://:**@h:1/0: [Errno 111] Connection refused. "
        f"Trying again in {s}.00 seconds... ({n}/3)" for n, s in ((1, 2), (2, 4), (3, 6))]


def test_success_after_failures_and_no_retry_when_disabled() -> None:
    failures = [wrapped(ConnectionRefusedError(111, "refused"))] * 2

    async def connect() -> str:
        if failures:
            raise failures.pop()
        return "connected"

    async def sleep(seconds: float) -> None:
        pass

    assert asyncio.run(connect_on_startup(connect, "amqp://h//", retry=True, max_retries=None,
                                          sleep=sleep)) == "connected"
    failures.append(wrapped(ConnectionRefusedError(111, "refused")))
    with pytest.raises(BrokerConnectionError, match="cannot connect"):
        asyncio.run(connect_on_startup(connect, "amqp://h//", retry=False, max_retries=5,
                                       sleep=sleep))


def test_settings_as_celery_reads_them() -> None:
    app = Celery("t", set_as_current=False)
    assert retry_settings(app.conf) == (True, 100)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = None
    assert retry_settings(app.conf) == (False, None)
