"""taskapp plus the application extensions the extension tests need (``celeriac -A
extapp worker``): bootsteps that record their calls, a liveness step that touches a
file from ``worker.timer``, one that fails to start when EXTAPP_FAIL_START is set; and
``extapp_commands`` (custom remote control commands) in ``imports``, so the worker
imports it and this module does not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from taskapp import app, record

from celeriac import bootsteps

app.conf.imports = ["extapp_commands"]


class Recorder(bootsteps.StartStopStep):
    """A worker step: each call recorded with the process id."""

    def __init__(self, worker: Any, **options: Any) -> None:
        record(f"step worker init {os.getpid()}")

    def start(self, worker: Any) -> None:
        record(f"step worker start {worker.pool_name} {os.getpid()}")

    def stop(self, worker: Any) -> None:
        record(f"step worker stop {os.getpid()}")


class ConsumerRecorder(bootsteps.StartStopStep):
    """A consumer step: start, stop and shutdown recorded."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        record(f"step consumer start {c.hostname}")

    def stop(self, c: Any) -> None:
        record("step consumer stop")

    def shutdown(self, c: Any) -> None:
        record("step consumer shutdown")


class Liveness(bootsteps.StartStopStep):
    """The Kubernetes liveness probe pattern: touch a file every 0.1 s, remove it on
    stop."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **options: Any) -> None:
        self.path = Path(os.environ.get("EXTAPP_LIVENESS", "/tmp/extapp-liveness"))
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        self.tref = worker.timer.call_repeatedly(0.1, self.path.touch)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
        self.path.unlink(missing_ok=True)


class FailingStep(bootsteps.StartStopStep):
    requires = (Recorder,)

    def include_if(self, worker: Any) -> bool:
        return bool(os.environ.get("EXTAPP_FAIL_START"))

    def start(self, worker: Any) -> None:
        raise RuntimeError("port 1 is taken")


app.steps["worker"].update([Recorder, Liveness, FailingStep])
app.steps["consumer"].add(ConsumerRecorder)
