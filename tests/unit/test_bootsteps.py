"""The application's bootsteps (celeriac.bootsteps) in a real Worker on the memory
broker: made, started, stopped and shut down once each, in order; ``requires``; a step
that fails to start stops the worker; ``worker.timer``."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from celeriac import bootsteps
from celeriac.errors import ConfigurationError
from celeriac.testing import memory_app, worker_thread
from celeriac.worker.steps import order

CALLS: list[str] = []


class WorkerStep(bootsteps.StartStopStep):
    def __init__(self, worker: Any, **kwargs: Any) -> None:
        CALLS.append(f"worker init {sorted(kwargs)[:1]}")

    def start(self, worker: Any) -> None:
        CALLS.append(f"worker start {worker.hostname} {type(worker.pool).__name__}")

    def stop(self, worker: Any) -> None:
        CALLS.append("worker stop")

    def shutdown(self, worker: Any) -> None:  # Celery's Worker never calls it
        CALLS.append("worker shutdown")


class ConsumerStep(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        CALLS.append(f"consumer start {c.qos.value > 0} {c.controller.hostname}")

    def stop(self, c: Any) -> None:
        CALLS.append("consumer stop")

    async def shutdown(self, c: Any) -> None:  # async methods are awaited
        CALLS.append("consumer shutdown")


class Off(bootsteps.StartStopStep):
    enabled = False

    def start(self, parent: Any) -> None:
        CALLS.append("off start")


class A(bootsteps.Step):
    pass


class B(bootsteps.Step):
    requires = (A, "celery.worker.components:Pool")


class C(bootsteps.Step):
    requires = ("tests.unit.test_bootsteps:B",)


class Loop1(bootsteps.Step):
    requires: tuple[Any, ...] = ()


class Loop2(bootsteps.Step):
    requires = (Loop1,)


def run_worker(app: Any, pool: str = "threads", **options: Any) -> Any:
    with worker_thread(app, pool=pool, concurrency=1, hostname="steps@test",
                       **options) as worker:
        deadline = time.monotonic() + 10
        while not any(c.startswith("consumer start") or "failed" in c for c in CALLS):
            if time.monotonic() > deadline or worker.exit_code:
                break
            time.sleep(0.02)
    return worker


def test_steps_are_named_ordered_and_required_ones_added() -> None:
    assert B.name == "tests.unit.test_bootsteps.B"
    assert repr(B).startswith("step:tests.unit.test_bootsteps.B")
    assert order({C}) == [A, B, C]  # A and B added; the Celery step ignored
    assert order({C, B, A}) == [A, B, C]
    Loop1.requires = (Loop2,)
    try:
        with pytest.raises(ConfigurationError, match="cycle"):
            order({Loop1})
    finally:
        Loop1.requires = ()
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        order({type("Bad", (bootsteps.Step,), {"requires": ("no.such.module:Step",)})})


def test_start_stop_shutdown_once_each_in_order() -> None:
    CALLS.clear()
    app = memory_app()
    app.steps["worker"].add(WorkerStep)
    app.steps["worker"].add(Off)
    app.steps["consumer"].add(ConsumerStep)
    worker = run_worker(app)
    assert worker.exit_code == 0
    assert CALLS == [
        "worker init ['concurrency']",
        "worker start steps@test ThreadPool",
        "consumer start True steps@test",
        "consumer stop",
        "worker stop",
        "consumer shutdown",
    ]


def test_a_step_that_fails_to_start_stops_the_worker(caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    CALLS.clear()

    class Broken(bootsteps.StartStopStep):
        requires = (WorkerStep,)  # started first, so stopped after the failure

        def start(self, worker: Any) -> None:
            CALLS.append("broken start failed")
            raise RuntimeError("no port")

    app = memory_app()
    app.steps["worker"].add(WorkerStep)
    app.steps["worker"].add(Broken)
    app.steps["consumer"].add(ConsumerStep)
    from celeriac import loops
    from celeriac.contrib.testing.worker import TestWorkController

    worker = TestWorkController(app, pool="threads", concurrency=1, hostname="steps@test",
                                print_banner=False)
    with caplog.at_level(logging.INFO, logger="celeriac"):
        loops.run(worker.run())  # returns: the worker stops itself
    assert worker.exit_code == 1
    assert "broken start failed" in CALLS and "worker stop" in CALLS
    assert not any(c.startswith("consumer") for c in CALLS)
    [line] = [r for r in caplog.records if "Unrecoverable" in r.getMessage()]
    assert line.getMessage() == ("Unrecoverable error: bootstep Broken failed to start: "
                                 "RuntimeError('no port')")
    assert not any("ready." in r.getMessage() for r in caplog.records)


def test_a_kombu_consumer_step_says_why_it_cannot_start(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    class Kombu(bootsteps.ConsumerStep):
        def get_consumers(self, channel: Any) -> Any:
            return []

    app = memory_app()
    app.steps["consumer"].add(Kombu)
    from celeriac import loops
    from celeriac.contrib.testing.worker import TestWorkController

    worker = TestWorkController(app, pool="threads", concurrency=1, hostname="steps@test",
                                print_banner=False)
    with caplog.at_level(logging.INFO, logger="celeriac"):
        loops.run(worker.run())  # returns: the worker stops itself
    assert worker.exit_code == 1
    assert any("kombu connection" in r.getMessage() for r in caplog.records)


def test_the_worker_timer_runs_a_step_repeatedly() -> None:
    ticks: list[float] = []

    class Liveness(bootsteps.StartStopStep):
        requires = ("celery.worker.components:Timer",)

        def start(self, worker: Any) -> None:
            self.tref = worker.timer.call_repeatedly(0.02, ticks.append, (1.0,))
            worker.timer.call_after(0.0, lambda: 1 / 0)  # logged, not fatal

        def stop(self, worker: Any) -> None:
            self.tref.cancel()

    app = memory_app()
    app.steps["worker"].add(Liveness)
    with worker_thread(app, pool="threads", concurrency=1) as worker:
        deadline = time.monotonic() + 10
        while len(ticks) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(ticks) >= 3
    assert len(worker.timer) == 0  # cancelled by stop, cleared at exit
