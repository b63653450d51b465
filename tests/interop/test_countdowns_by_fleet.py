"""Countdown, eta and retry from a celeriac client, default settings on both sides, on
each shape a migrating fleet takes: Celery workers only, celeriac workers only, both.

Each task must run when due and exactly once. On Redis a celeriac client sends due-later
messages to the queue with Celery's eta header (``Broker.shared_delay_store`` is False
there): a Celery worker holds them as Celery does, a celeriac worker parks them in the
delay store atomically (``Broker.park``). On RabbitMQ the delay levels deliver to the
queue whoever consumes it.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.interop.conftest import Fleet

SHAPES = ["celery-only", "celeriac-only", "mixed"]


def _start(fleet: Fleet, shape: str) -> None:
    if shape in ("celery-only", "mixed"):
        fleet.celery_worker()
    if shape in ("celeriac-only", "mixed"):
        fleet.celeriac_worker()


@pytest.mark.parametrize("shape", SHAPES)
def test_countdown_eta_and_retry_run_once_when_due(fleet: Fleet, shape: str) -> None:
    _start(fleet, shape)
    client = fleet.celeriac_client()  # default settings
    sent = time.monotonic()
    by_countdown = client.send_task("interop.add", (1, 2), countdown=2)
    eta = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    by_eta = client.send_task("interop.add", (3, 4), eta=eta)
    retried = client.send_task("interop.flaky", ("r1", 1))  # fails once, retries in 1 s
    assert by_countdown.get(timeout=30) == 3
    assert by_eta.get(timeout=30) == 7
    assert time.monotonic() - sent >= 1.9  # not before due
    assert retried.get(timeout=30)["retries"] == 1
    time.sleep(1.5)  # a second copy, if any, would have run by now
    assert [r.rsplit(" ", 1)[0] for r in fleet.records("add ")] in (
        ["add 1 2", "add 3 4"], ["add 3 4", "add 1 2"])
    assert sorted(r.rsplit(" ", 1)[0] for r in fleet.records("flaky r1")) == [
        "flaky r1 0", "flaky r1 1"]
    sides = {r.rsplit(" ", 1)[1] for r in fleet.records()}
    expected = {"celery-only": {"celery"}, "celeriac-only": {"celeriac"}}.get(shape)
    if expected is not None:
        assert sides == expected
