"""The app beat integration tests run (``celeriac -A beatapp beat`` / ``worker -B``):
taskapp's app with a schedule of fast entries. Each run of ``tick`` appends a line to
ITEST_RECORD, so tests count runs exactly."""

from __future__ import annotations

from taskapp import app, record

from celeriac import Task

app.conf.beat_schedule = {
    "tick-fast": {"task": "tick", "schedule": 0.5, "args": ("fast",)},
    "tick-slow": {"task": "tick", "schedule": 4.0, "args": ("slow",)},
    "ghost": {"task": "no.such.task", "schedule": 1.0},
}


@app.task(name="tick", bind=True)
def tick(self: Task, name: str) -> None:  # type: ignore[type-arg]
    record(f"tick {name} {self.request.id}")
