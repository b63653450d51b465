"""``celeriac.beat.Service`` (Celery's): beat in a thread until stop(), beat_init sent,
runs sent; a third-party scheduler class named gets one notice and is not used."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from celeriac import signals
from celeriac.beat import Scheduler, Service
from celeriac.testing import memory_app
from tests.unit.test_beat_scheduler import sent


def test_service_runs_beat_until_stopped(caplog: pytest.LogCaptureFixture) -> None:
    app = memory_app("beat-service")

    @app.task(name="tasks.tick")
    def tick() -> None:
        return None

    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 0.05}}
    app.conf.beat_leader_timeout = 0.3
    inits: list[Any] = []

    def on_init(sender: Any, **_: Any) -> None:
        inits.append(sender)

    signals.beat_init.connect(on_init)
    try:
        with caplog.at_level(logging.WARNING, logger="celeriac.beat"):
            service = Service(app, max_interval=0.1,
                              scheduler_cls="celery.beat:PersistentScheduler")
        assert not caplog.records  # Celery's default names no notice
        assert isinstance(service.scheduler, Scheduler)
        thread = threading.Thread(target=service.start)
        thread.start()
        found: list[Any] = []
        deadline = time.monotonic() + 10
        while len(found) < 2 and time.monotonic() < deadline:
            found += sent(app)
            time.sleep(0.05)
        service.stop(wait=True)
        thread.join(10)
        assert not thread.is_alive()
    finally:
        signals.beat_init.disconnect(on_init)
    assert inits == [service]
    assert len(found) >= 2 and {name for name, _ in found} == {"tasks.tick"}


def test_a_third_party_scheduler_is_named_in_one_notice(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    app = memory_app("beat-service-notice")
    with caplog.at_level(logging.WARNING, logger="celeriac.beat"):
        Service(app, scheduler_cls="django_celery_beat.schedulers:DatabaseScheduler")
    [record] = caplog.records
    assert "'django_celery_beat.schedulers:DatabaseScheduler' is accepted and not used" \
        in record.getMessage()
