"""celeriac client -> real Celery 5 worker (solo and prefork), both brokers."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from celeriac.errors import TaskRevokedError
from tests.interop.conftest import Fleet
from tests.interop.test_celery_client_celeriac_worker import RICH


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_rich_arguments_results_and_failures(fleet: Fleet, pool: str) -> None:
    fleet.celery_worker(pool)
    client = fleet.celeriac_client()
    result = client.send_task("interop.echo", RICH, {"when": RICH[0]}, task_id="custom-2",
                              headers={"x-trace": "t-2"}, priority=3)
    got = result.get(timeout=20)
    assert result.id == "custom-2"
    assert got["side"] == "celery"
    assert got["types"] == ["datetime", "date", "Decimal", "UUID", "bytes"]
    assert got["args"] == list(RICH)  # rebuilt by celeriac from kombu's JSON
    assert got["kwargs"] == {"when": RICH[0]}
    assert got["trace"] == "t-2"
    failed = client.send_task("interop.boom")
    with pytest.raises(KeyError, match="nope"):
        failed.get(timeout=20)
    assert failed.state == "FAILURE" and "KeyError" in (failed.traceback or "")


@pytest.mark.parametrize("delay_store", [None, False])
def test_countdown_and_eta_reach_a_celery_worker(fleet: Fleet, delay_store: bool | None
                                                 ) -> None:
    """By default (None) and with ``broker_delay_store=False`` a Celery worker alone runs
    a celeriac client's countdown and eta tasks when due."""
    fleet.celery_worker()
    client = (fleet.celeriac_client() if delay_store is None
              else fleet.celeriac_client(broker_delay_store=delay_store))
    started = time.monotonic()
    by_countdown = client.send_task("interop.add", (1, 2), countdown=2)
    eta = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    by_eta = client.send_task("interop.add", (3, 4), eta=eta)
    assert by_countdown.get(timeout=20) == 3
    assert by_eta.get(timeout=20) == 7
    assert time.monotonic() - started >= 1.9


def test_expired_task_is_revoked_for_celeriacs_client(fleet: Fleet) -> None:
    client = fleet.celeriac_client()
    expired = client.send_task("interop.add", (1, 1), expires=0.5)
    time.sleep(1.0)
    fleet.celery_worker()
    if fleet.broker_url.startswith("amqp"):
        # RabbitMQ drops the message itself when its expiration property runs out (as
        # for Celery-only fleets): no worker sees it, so nobody records REVOKED
        time.sleep(2.0)
        assert fleet.records("add 1 1") == []
        return
    with pytest.raises(TaskRevokedError):
        expired.get(timeout=20)
    assert fleet.records("add 1 1") == []


def test_retries_started_on_celeriac_finish_on_celery(fleet: Fleet) -> None:
    celeriac_worker = fleet.celeriac_worker(CELERIAC_BROKER_DELAY_STORE="false")
    client = fleet.celeriac_client()
    result = client.send_task("interop.flaky", ("r2", 2, 1.0))
    fleet.wait_records("flaky r2 0", 1)
    # warm shutdown while the first try runs: it fetches nothing more, so the retry it
    # publishes stays in the queue for the Celery worker
    celeriac_worker.send_signal(15)
    celeriac_worker.wait(30)
    fleet.celery_worker()
    assert result.get(timeout=30) == {"retries": 2, "side": "celery"}
    lines = fleet.records("flaky r2")
    assert lines == ["flaky r2 0 celeriac", "flaky r2 1 celery", "flaky r2 2 celery"]


def test_unencodable_result_stored_by_celery_raises_encode_error(fleet: Fleet) -> None:
    """What a Celery worker records for a result JSON cannot carry is what celeriac
    records: FAILURE with kombu's EncodeError, raised here as celeriac's."""
    from celeriac.errors import EncodeError

    fleet.celery_worker()
    client = fleet.celeriac_client()
    result = client.send_task("interop.unencodable")
    with pytest.raises(EncodeError, match="not JSON serializable"):
        result.get(timeout=20)
    assert result.state == "FAILURE"


@pytest.mark.parametrize("codec", ["gzip", "bzip2"])
def test_compressed_tasks_both_ways(fleet: Fleet, codec: str) -> None:
    """task_compression: a Celery worker reads celeriac's compressed bodies, and a
    celeriac worker reads Celery's (kombu's ``compression`` header)."""
    celery_worker = fleet.celery_worker()
    ours = fleet.celeriac_client(task_compression=codec)
    assert ours.send_task("interop.add", (2, 3)).get(timeout=20) == 5
    celery_worker.kill()  # from here on only celeriac's worker takes the queue
    celery_worker.wait(10)
    fleet.celeriac_worker()
    theirs = fleet.celery_client(task_compression=codec)
    assert theirs.send_task("interop.add", (4, 5)).get(timeout=20) == 9
