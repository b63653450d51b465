"""result_serializer='pickle' across the fleet, on Redis results: a celeriac worker's
pickled result is read by Celery's client (with pickle accepted), and a Celery worker's
by celeriac's; a value only pickle carries arrives as itself, failures keep their type;
a celeriac client that does not accept pickle refuses the stored bytes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.conftest import Fleet

EXPECTED = {"complex": complex(3, 1), "frozen": frozenset({3}), "range": range(3)}
PICKLE_CONF: dict[str, Any] = {"result_serializer": "pickle",
                               "accept_content": ["json", "pickle"]}


@pytest.mark.parametrize("fleet", ["redis"], indirect=True)
def test_celery_client_reads_a_celeriac_workers_pickled_result(fleet: Fleet) -> None:
    fleet.celeriac_worker(INTEROP_RESULT_SERIALIZER="pickle")
    client = fleet.celery_client(**PICKLE_CONF)
    assert client.send_task("interop.unjsonable", (3,)).get(timeout=20) == EXPECTED
    failed = client.send_task("interop.pickled_failure", (4,))
    with pytest.raises(KeyError, match="missing 4"):
        failed.get(timeout=20)
    raw = fleet.redis.get(f"celery-task-meta-{failed.id}")
    assert raw is not None and raw[:1] == b"\x80"  # pickled, as Celery stores it


@pytest.mark.parametrize("fleet", ["redis"], indirect=True)
def test_celeriac_client_reads_a_celery_workers_pickled_result(fleet: Fleet) -> None:
    from celeriac.errors import ContentDisallowed

    fleet.celery_worker(INTEROP_RESULT_SERIALIZER="pickle")
    client = fleet.celeriac_client(**PICKLE_CONF)
    result = client.send_task("interop.unjsonable", (3,))
    assert result.get(timeout=20) == EXPECTED
    failed = client.send_task("interop.pickled_failure", (4,))
    with pytest.raises(KeyError, match="missing 4"):
        failed.get(timeout=20)
    # the same stored bytes, read by an app that accepts only JSON: refused, not loaded
    strict = fleet.celeriac_client(result_serializer="pickle")
    with pytest.raises(ContentDisallowed, match="pickle"):
        strict.AsyncResult(result.id).get(timeout=5)
