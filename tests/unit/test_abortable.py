"""celeriac.contrib.abortable in one process: ABORTED stored in the result backend,
seen by the task at its next is_aborted(). Across processes: tests/integration."""

from __future__ import annotations

import pytest

from celeriac import Celery, EagerResult
from celeriac.contrib.abortable import ABORTED, AbortableAsyncResult, AbortableTask
from celeriac.testing import drain, memory_app


@pytest.fixture
def app() -> Celery:
    return memory_app("abortable")


def test_a_task_aborted_before_it_runs_sees_it(app: Celery) -> None:
    @app.task(bind=True, base=AbortableTask)
    def job(self: AbortableTask) -> str:
        return "aborted" if self.is_aborted() else "ran"

    aborted, other = job.delay(), job.apply_async()
    assert isinstance(aborted, AbortableAsyncResult)
    assert aborted.state == "PENDING" and not aborted.is_aborted()
    aborted.abort()
    assert aborted.is_aborted() and aborted.state == ABORTED
    assert job.is_aborted(task_id=aborted.id) and not job.is_aborted(task_id=other.id)
    drain(app)
    assert aborted.get(timeout=5) == "aborted" and other.get(timeout=5) == "ran"
    assert not aborted.is_aborted()  # finished: SUCCESS now


def test_signatures_and_task_async_result_are_abortable(app: Celery) -> None:
    @app.task(bind=True, base=AbortableTask)
    def job(self: AbortableTask) -> None: ...

    assert isinstance(job.s().delay(), AbortableAsyncResult)
    assert isinstance(job.AsyncResult("some-id"), AbortableAsyncResult)


def test_aborting_a_finished_task_keeps_its_result(app: Celery) -> None:
    @app.task(base=AbortableTask)
    def job() -> int:
        return 7

    result = job.delay()
    drain(app)
    AbortableAsyncResult(result.id, app=app).abort()
    fresh = AbortableAsyncResult(result.id, app=app)
    assert fresh.state == "SUCCESS" and fresh.get(timeout=5) == 7


def test_eager_calls_and_plain_calls_are_never_aborted(app: Celery) -> None:
    @app.task(bind=True, base=AbortableTask)
    def job(self: AbortableTask) -> bool:
        return self.is_aborted()

    eager = job.apply()
    assert isinstance(eager, EagerResult) and eager.get() is False
    assert job.is_aborted() is False  # no request: nothing to look up
