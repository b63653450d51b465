"""A worker app whose signal receivers write what they saw to SIGNAL_LOG (one JSON line
per signal: name, pid, the task's name), for test_signals.py."""

from __future__ import annotations

import json
import os
from typing import Any

from celeriac import Celery, signals

app = Celery("signalapp", broker=os.environ["SIGNAL_BROKER"],
             backend=os.environ["SIGNAL_BROKER"])
app.conf.task_default_queue = "signals"

LOG = os.environ["SIGNAL_LOG"]


def _write(name: str, **fields: Any) -> None:
    with open(LOG, "a") as out:
        out.write(json.dumps({"signal": name, "pid": os.getpid(), **fields}) + "\n")


def _task_name(sender: Any) -> str | None:
    return getattr(sender, "name", None)


def _make(name: str) -> Any:
    def receiver(sender: Any = None, **kw: Any) -> None:
        task = kw.get("task") or (sender if hasattr(sender, "name") else None)
        request = kw.get("request")
        _write(name, task=getattr(task, "name", None) or getattr(request, "task", None),
               state=kw.get("state"), result=repr(kw.get("result")) if "result" in kw
               else None)
    return receiver


RECEIVERS = {name: _make(name) for name in (
    "celeryd_init", "import_modules", "worker_init", "celeryd_after_setup", "worker_ready",
    "worker_process_init", "task_received", "task_prerun", "task_success", "task_failure",
    "task_retry", "task_postrun", "worker_shutting_down", "worker_shutdown",
    "worker_process_shutdown", "task_unknown")}
for _name, _receiver in RECEIVERS.items():
    getattr(signals, _name).connect(_receiver, weak=False)


@signals.task_prerun.connect
def broken_receiver(sender: Any = None, **kw: Any) -> None:
    raise RuntimeError("a receiver that raises must not break the task")


@app.task(name="sig.ok")
def ok(x: int) -> int:
    return x * 2


@app.task(name="sig.fails")
def fails() -> None:
    raise ValueError("no")


@app.task(name="sig.retries", bind=True, max_retries=1)
def retries(self: Any) -> str:
    if self.request.retries == 0:
        raise self.retry(countdown=0.1)
    return "done"
