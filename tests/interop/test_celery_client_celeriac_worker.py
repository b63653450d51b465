"""Celery 5 client -> celeriac worker: Celery's own calls and results, both brokers."""

from __future__ import annotations

import datetime as dt
import decimal
import time
import uuid

import pytest

from tests.interop.conftest import Fleet

RICH = (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), dt.date(2026, 5, 6),
        decimal.Decimal("12.50"), uuid.UUID("12345678-1234-5678-1234-567812345678"),
        b"raw bytes")


def test_delay_with_rich_arguments_and_result(fleet: Fleet) -> None:
    fleet.celeriac_worker()
    client = fleet.celery_client()
    result = client.send_task("interop.echo", RICH, {"when": RICH[0]}, task_id="custom-1",
                              headers={"x-trace": "t-1"}, priority=5)
    got = result.get(timeout=20)
    assert result.id == "custom-1"
    assert got["side"] == "celeriac"
    assert got["types"] == ["datetime", "date", "Decimal", "UUID", "bytes"]
    assert got["args"] == list(RICH)  # rebuilt by Celery's client from kombu's JSON
    assert got["kwargs"] == {"when": RICH[0]}
    assert got["trace"] == "t-1"


def test_countdown_and_eta_run_at_the_right_time(fleet: Fleet) -> None:
    fleet.celeriac_worker()
    client = fleet.celery_client()
    started = time.monotonic()
    by_countdown = client.send_task("interop.add", (1, 2), countdown=2)
    eta = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    by_eta = client.send_task("interop.add", (3, 4), eta=eta)
    assert by_countdown.get(timeout=20) == 3
    assert by_eta.get(timeout=20) == 7
    assert time.monotonic() - started >= 1.9


def test_expired_task_is_revoked_for_celerys_client(fleet: Fleet) -> None:
    from celery.exceptions import TaskRevokedError

    client = fleet.celery_client()
    expired = client.send_task("interop.add", (1, 1), expires=0.5)
    time.sleep(1.0)
    fleet.celeriac_worker()
    if fleet.broker_url.startswith("amqp"):
        # RabbitMQ drops the message itself when its expiration property runs out (as
        # for Celery-only fleets): no worker sees it, so nobody records REVOKED
        time.sleep(2.0)
        assert fleet.records("add 1 1") == []
        return
    with pytest.raises(TaskRevokedError):
        expired.get(timeout=20)
    assert fleet.records("add 1 1") == []


def test_failure_raises_the_same_type_in_celery(fleet: Fleet) -> None:
    fleet.celeriac_worker()
    client = fleet.celery_client()
    result = client.send_task("interop.boom")
    with pytest.raises(KeyError, match="nope"):
        result.get(timeout=20)
    assert result.state == "FAILURE"
    assert "KeyError" in result.traceback


def test_chain_link_and_link_error_from_celery_continue_on_celeriac(fleet: Fleet) -> None:
    from celery import chain, signature

    fleet.celeriac_worker()
    client = fleet.celery_client()
    add = signature("interop.add", app=client)
    steps = chain(add.clone((1, 2)), add.clone((10,)), add.clone((100,)))
    final = steps.apply_async()
    assert final.get(timeout=20) == 113
    assert fleet.records("add ") == ["add 1 2 celeriac", "add 3 10 celeriac",
                                     "add 13 100 celeriac"]
    linked = client.send_task("interop.add", (2, 2),
                              link=signature("interop.add", args=(5,), app=client))
    assert linked.get(timeout=20) == 4
    fleet.wait_records("add 4 5", 1)
    failing = client.send_task("interop.boom",
                               link_error=signature("interop.errback", app=client))
    with pytest.raises(KeyError):
        failing.get(timeout=20)
    assert fleet.wait_records("errback", 1) == [f"errback {failing.id} celeriac"]


def test_retries_started_on_celery_finish_on_celeriac(fleet: Fleet) -> None:
    celery_worker = fleet.celery_worker()
    client = fleet.celery_client()
    result = client.send_task("interop.flaky", ("r1", 2))
    fleet.wait_records("flaky r1 0", 1)
    celery_worker.send_signal(2)  # warm shutdown: its held retry goes back to the queue
    celery_worker.wait(30)
    fleet.celeriac_worker()
    assert result.get(timeout=30) == {"retries": 2, "side": "celeriac"}
    lines = fleet.records("flaky r1")
    assert lines[0] == "flaky r1 0 celery"
    assert lines[-1] == "flaky r1 2 celeriac"


def test_unencodable_result_raises_kombus_encode_error_in_celery(fleet: Fleet) -> None:
    from celery import signature
    from kombu.exceptions import EncodeError

    fleet.celeriac_worker()
    client = fleet.celery_client()
    result = client.send_task("interop.unencodable",
                              link_error=signature("interop.errback", app=client))
    with pytest.raises(EncodeError, match=r"returned a value that cannot be serialized"):
        result.get(timeout=20)
    assert result.state == "FAILURE"
    assert fleet.wait_records("errback", 1) == [f"errback {result.id} celeriac"]
