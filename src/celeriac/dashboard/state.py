"""The fleet as events tell it: workers, a bounded task history, per-task-name series.

``Fleet.apply(events)`` folds a batch in; everything is bounded so the dashboard can
follow a busy fleet for days: at most ``max_tasks`` tasks (the oldest forgotten first),
``TIMELINE`` events per task, ``MAX_WORKERS`` workers and ``BUCKETS`` time buckets of
``BUCKET_S`` seconds for the charts. Task fields are kept as the event gave them
(strings from the worker's repr); the page renders them as text, never as HTML. Workers
are ``events.state.Worker``, the model ``celeriac events`` keeps too.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Any

from celeriac.events.state import FINAL, TASK_STATES, Worker, number

#: fields copied from task events when present
TASK_FIELDS = ("name", "args", "kwargs", "result", "exception", "traceback", "retries",
               "eta", "expires", "root_id", "parent_id", "runtime", "terminated",
               "expired", "signum")
TIMELINE = 20
MAX_WORKERS = 1000
BUCKET_S = 5
BUCKETS = 120


class Fleet:
    """See the module docstring."""

    def __init__(self, max_tasks: int = 10_000) -> None:
        self.max_tasks = max_tasks
        self.workers: dict[str, Worker] = {}
        self.tasks: OrderedDict[str, dict[str, Any]] = OrderedDict()
        #: bucket start -> task name -> [finished, runtime sum, failed]
        self.series: OrderedDict[int, dict[str, list[float]]] = OrderedDict()
        self.events_seen = 0
        self.version = 0

    # -- folding events in -------------------------------------------------------------
    def apply(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("type")
            if not isinstance(kind, str):
                continue
            self.events_seen += 1
            if kind.startswith("worker-"):
                self._worker(kind, event)
            elif kind.startswith("task-"):
                self._task(kind, event)
        self.version += 1

    def _worker(self, kind: str, event: dict[str, Any]) -> None:
        hostname = str(event.get("hostname") or "?")
        worker = self.workers.get(hostname)
        if worker is None:
            if len(self.workers) >= MAX_WORKERS:
                self._forget_a_worker()
            worker = self.workers[hostname] = Worker(hostname)
        worker.update(kind, event)

    def set_pool(self, hostname: str, pool: str | None, concurrency: int | None) -> None:
        """A known worker's pool and size, as its ``inspect stats`` reply gave them."""
        worker = self.workers.get(hostname)
        if worker is None or (pool, concurrency) == (worker.pool, worker.concurrency):
            return
        worker.pool = pool or worker.pool
        worker.concurrency = concurrency if concurrency is not None else worker.concurrency
        self.version += 1

    def _forget_a_worker(self) -> None:
        now = time.time()
        gone = [h for h, w in self.workers.items() if not w.alive(now)] or list(self.workers)
        del self.workers[gone[0]]

    def _task(self, kind: str, event: dict[str, Any]) -> None:
        task_id = event.get("uuid")
        if not isinstance(task_id, str):
            return
        when = number(event.get("timestamp")) or time.time()
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = {"uuid": task_id, "state": "PENDING",
                                          "name": None, "worker": None, "received": None,
                                          "started": None, "finished": None,
                                          "timeline": deque(maxlen=TIMELINE)}
            if len(self.tasks) > self.max_tasks:
                self.tasks.popitem(last=False)
        state = TASK_STATES.get(kind)
        if state is not None and (task["state"] not in FINAL or state in FINAL):
            task["state"] = state
        for name in TASK_FIELDS:
            if name in event:
                task[name] = event[name]
        if event.get("hostname"):
            task["worker"] = event["hostname"]
        if kind == "task-received":
            task["received"] = when
        elif kind == "task-started":
            task["started"] = when
        elif state in FINAL or kind == "task-retried":
            task["finished"] = when
            self._count(task, when, failed=state != "SUCCESS")
        task["timeline"].append({"type": kind, "timestamp": when,
                                 "hostname": event.get("hostname")})

    def _count(self, task: dict[str, Any], when: float, failed: bool) -> None:
        start = int(when // BUCKET_S * BUCKET_S)
        bucket = self.series.get(start)
        if bucket is None:
            bucket = self.series[start] = {}
            while len(self.series) > BUCKETS:
                self.series.popitem(last=False)
        row = bucket.setdefault(str(task.get("name") or "?"), [0, 0.0, 0])
        row[0] += 1
        runtime = task.get("runtime")
        if isinstance(runtime, (int, float)):
            row[1] += runtime
        if failed:
            row[2] += 1

    # -- views --------------------------------------------------------------------------
    def worker_list(self) -> list[dict[str, Any]]:
        now = time.time()
        return [w.as_dict(now) for w in sorted(self.workers.values(),
                                                key=lambda w: w.hostname)]

    def online_workers(self) -> int:
        now = time.time()
        return sum(1 for w in self.workers.values() if w.alive(now))

    def task_list(self, search: str = "", state: str = "", limit: int = 200
                  ) -> list[dict[str, Any]]:
        """The newest tasks first, matching a search (id, name, args, kwargs, worker,
        substring, case-insensitive) and a state."""
        needle = search.lower()
        found = []
        for task in reversed(self.tasks.values()):
            if state and task["state"] != state:
                continue
            if needle and not any(needle in str(task.get(k) or "").lower() for k in
                                  ("uuid", "name", "args", "kwargs", "worker")):
                continue
            found.append(_summary(task))
            if len(found) >= limit:
                break
        return found

    def task_detail(self, task_id: str) -> dict[str, Any] | None:
        task = self.tasks.get(task_id)
        if task is None:
            return None
        detail = {k: v for k, v in task.items() if k != "timeline"}
        detail["timeline"] = list(task["timeline"])
        detail["children"] = [t["uuid"] for t in self.tasks.values()
                              if t.get("parent_id") == task_id][:100]
        return detail

    def charts(self, top: int = 8, span: int = 60, now: float | None = None
               ) -> dict[str, Any]:
        """The last ``span`` buckets up to now, every one (empty ones too, so the time
        axis is even): tasks/s and mean run time for the busiest task names."""
        totals: dict[str, float] = {}
        for bucket in self.series.values():
            for name, row in bucket.items():
                totals[name] = totals.get(name, 0) + row[0]
        names = sorted(totals, key=lambda n: -totals[n])[:top]
        last = int((time.time() if now is None else now) // BUCKET_S * BUCKET_S)
        times = list(range(last - (span - 1) * BUCKET_S, last + 1, BUCKET_S))
        empty: dict[str, list[float]] = {}
        rows = [self.series.get(t, empty) for t in times]
        rate = {n: [r[n][0] / BUCKET_S if n in r else 0.0 for r in rows] for n in names}
        runtime = {n: [_mean(r.get(n)) for r in rows] for n in names}
        return {"bucket_s": BUCKET_S, "times": times, "names": names, "throughput": rate,
                "runtime": runtime}

    def counts(self) -> dict[str, int]:
        by_state: dict[str, int] = {}
        for task in self.tasks.values():
            by_state[task["state"]] = by_state.get(task["state"], 0) + 1
        return by_state


def _summary(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task.get(k) for k in ("uuid", "name", "state", "args", "kwargs", "worker",
                                     "received", "started", "finished", "runtime")}


def _mean(row: list[float] | None) -> float | None:
    if not row or not row[0] or not row[1]:
        return None
    return row[1] / row[0]

