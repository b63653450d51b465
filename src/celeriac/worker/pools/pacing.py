"""How much work to hand out at once, from how long tasks have been taking.

Two decisions of the prefork pool depend on a task's run time, which nobody declares:
- the batch a child gets: as many jobs as fit in ``BATCH_BUDGET_S`` of expected run
  time (at least one, at most ``MAX_BATCH``), so no-op tasks cross the pipe 16 at a time
  while a long task goes alone and nothing waits in a child behind it;
- the worker's prefetch window: besides the jobs running, a worker holds about
  ``PREFETCH_BUDGET_S`` of expected work per child (at most ``MAX_PER_CHILD`` per
  child, never fewer than one job per child). Short tasks get a deep window (fewer,
  larger fetches); long tasks get one each, so other workers can take the rest from
  the broker instead of it waiting behind a long task here. Until a task has finished
  once, the window is one job per child (a slow start: the first results arrive after
  a round trip, and short tasks have the window at its deepest a few fetches later),
  so a worker that starts on long tasks never hoards them.

Estimates are exponentially weighted means of the run times children report: per task
name for batches, over all tasks for the window (the window is filled before anyone
knows which tasks the broker will hand over).
"""

from __future__ import annotations

#: expected seconds of work in one batch written to a child
BATCH_BUDGET_S = 0.002
#: a child busy with less expected work than this gets its next batch already (it
#: waits in the pipe, so the child does not wait for the parent between batches)
PIPELINE_BUDGET_S = 0.02
#: the most jobs in one batch (two may be in flight to a child: see prefork.py)
MAX_BATCH = 16
#: expected seconds of queued (not yet running) work a worker holds per child
PREFETCH_BUDGET_S = 0.05
#: the most deliveries a worker holds per child
MAX_PER_CHILD = 64
#: weight of the newest run time in the means
WEIGHT = 0.2


class Pacing:
    """Run-time estimates and the batch sizes and window they imply."""

    def __init__(self, children: int) -> None:
        self.children = max(1, children)
        self.per_task: dict[str, float] = {}
        self.overall: float | None = None

    def observe(self, name: str, runtime_s: float) -> None:
        known = self.per_task.get(name)
        self.per_task[name] = runtime_s if known is None else \
            known + WEIGHT * (runtime_s - known)
        overall = self.overall
        self.overall = runtime_s if overall is None else \
            overall + WEIGHT * (runtime_s - overall)

    def expected(self, name: str) -> float:
        """Seconds a run of ``name`` is expected to take; an unknown task counts as long
        (it goes alone, and nothing is queued behind it in its child, until one has been
        measured)."""
        return self.per_task.get(name, PIPELINE_BUDGET_S)

    def is_long(self, name: str) -> bool:
        """Worth sending the results before it (its run would hold them back)."""
        return self.expected(name) >= BATCH_BUDGET_S

    def window(self, configured: int) -> int:
        """Deliveries the worker should hold (see the module docstring)."""
        overall = self.overall
        if overall is None:
            return self.children
        queued = int(self.children * PREFETCH_BUDGET_S / max(overall, 1e-6))
        return max(self.children, min(self.children * MAX_PER_CHILD,
                                      self.children + queued))
