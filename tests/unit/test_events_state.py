"""events/state.py: the worker model ``celeriac events`` and the dashboard share, folded
from worker events (fields of the wrong type ignored, loadavg cut to three, offline)."""

from __future__ import annotations

from celeriac.events.state import Worker


def test_worker_folds_heartbeats_and_ignores_fields_of_the_wrong_type() -> None:
    worker = Worker("w1@host")
    worker.update("worker-heartbeat", {
        "timestamp": 100.0, "freq": 5, "active": 3, "processed": 40, "pid": 12,
        "loadavg": [1, 0.5, "x", 0.25, 0.1], "sw_ident": "py-celery", "sw_ver": "5.5.3"})
    assert (worker.last_heartbeat, worker.freq, worker.active, worker.processed,
            worker.pid) == (100.0, 5.0, 3, 40, 12)
    assert worker.loadavg == [1.0, 0.5, 0.25]
    assert worker.software == "py-celery 5.5.3"
    # a later event without the fields (or with nonsense in them) keeps what was known
    worker.update("worker-heartbeat", {"timestamp": 102.0, "active": True,
                                       "processed": "many", "sw_ver": None})
    assert (worker.active, worker.processed, worker.software) == (3, 40, "py-celery 5.5.3")
    assert worker.alive(102.0 + 10.0) and not worker.alive(102.0 + 10.1)


def test_worker_offline_is_offline_at_once() -> None:
    worker = Worker("w1@host")
    worker.update("worker-online", {"timestamp": 100.0})
    assert worker.alive(100.0)
    worker.update("worker-offline", {"timestamp": 101.0})
    assert not worker.alive(101.0)
    assert worker.as_dict(101.0)["online"] is False
