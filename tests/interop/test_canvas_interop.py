"""Groups and chords across Celery 5.7 and celeriac: each side's client, the other's
workers, and a fleet of both finishing one chord's header together. The body must run
exactly once (counted in the record list) and return the header's results in order."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.conftest import Fleet


def _celery_chord(client: Any, n: int, body: str = "interop.tsum") -> Any:
    from celery import chord

    header = [client.signature("interop.add", (i, i)) for i in range(n)]
    return chord(header, client.signature(body)).apply_async()


def _celeriac_chord(client: Any, n: int, body: str = "interop.tsum") -> Any:
    from celeriac import chord, signature

    header = [signature("interop.add", (i, i), app=client) for i in range(n)]
    return chord(header, signature(body, app=client)).apply_async()


def test_celery_client_chord_runs_on_celeriac_workers(fleet: Fleet) -> None:
    fleet.celeriac_worker("threads")
    client = fleet.celery_client()
    result = _celery_chord(client, 6)
    assert result.get(timeout=30) == sum(2 * i for i in range(6))
    assert fleet.wait_records("tsum", 1) == [f"tsum {[2 * i for i in range(6)]} celeriac"]
    assert len(fleet.records("add")) == 6


def test_celeriac_client_chord_runs_on_celery_workers(fleet: Fleet) -> None:
    fleet.celery_worker("threads")
    client = fleet.celeriac_client()
    result = _celeriac_chord(client, 6)
    assert result.get(timeout=30) == sum(2 * i for i in range(6))
    assert fleet.wait_records("tsum", 1) == [f"tsum {[2 * i for i in range(6)]} celery"]
    assert [r.get(timeout=10) for r in result.parent.results] == [2 * i for i in range(6)]


@pytest.mark.parametrize("sender", ["celery", "celeriac"])
def test_one_chord_joined_by_both_kinds_of_worker(fleet: Fleet, sender: str) -> None:
    """Header tasks finish on Celery and celeriac workers at once: both join on the same
    Redis keys, and the body runs once."""
    fleet.celery_worker("threads")
    fleet.celeriac_worker("threads")
    n = 40
    if sender == "celery":
        result = _celery_chord(fleet.celery_client(), n)
    else:
        result = _celeriac_chord(fleet.celeriac_client(), n)
    assert result.get(timeout=60) == sum(2 * i for i in range(n))
    fleet.wait_records("tsum", 1)
    sides = {line.rsplit(" ", 1)[1] for line in fleet.records("add")}
    import time

    time.sleep(1.0)  # a second body would have been sent by now
    assert len(fleet.records("tsum")) == 1
    assert len(fleet.records("add")) == n
    assert sides <= {"celery", "celeriac"}


def test_celery_client_chain_with_group_runs_on_celeriac(fleet: Fleet) -> None:
    """add | group(add, add) | tsum: Celery sends a chain whose step is a celery.chord
    signature; the celeriac worker applies it when the first step ends."""
    from celery import chain, group

    fleet.celeriac_worker("threads")
    client = fleet.celery_client()
    sig = chain(client.signature("interop.add", (1, 1)),
                group(client.signature("interop.add", (10,)),
                      client.signature("interop.add", (20,))),
                client.signature("interop.tsum"))
    assert sig.apply_async().get(timeout=30) == 12 + 22


def test_failing_header_fails_the_body_once_for_celerys_client(fleet: Fleet) -> None:
    from celery import chord
    from celery.exceptions import ChordError

    fleet.celeriac_worker("threads")
    client = fleet.celery_client()
    header = [client.signature("interop.fail_on", (i, 2)) for i in range(4)]
    body = client.signature("interop.tsum")
    body.link_error(client.signature("interop.errback"))
    result = chord(header, body).apply_async()
    with pytest.raises(ValueError, match="part 2 fails"):  # Celery raises a failed
        result.get(timeout=30)                             # parent's error first
    with pytest.raises(ChordError, match="part 2 fails"):  # the body's own result
        client.AsyncResult(result.id).get(timeout=30)
    assert len(fleet.wait_records("errback", 1)) == 1
    assert fleet.records("tsum") == []
    fleet.wait_records("part", 4)
