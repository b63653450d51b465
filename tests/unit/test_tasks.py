"""Tasks: options, inline and eager calls, request, retry with backoff, autoretry."""

from __future__ import annotations

import asyncio
import random

import pytest

from celeriac import Celery, MaxRetriesExceededError, Retry, Task
from celeriac.task import backoff_delay_s
from celeriac.testing import memory_app


@pytest.fixture
def app() -> Celery:
    return memory_app("tasks", task_eager_propagates=True)


def test_decorator_with_and_without_arguments(app: Celery) -> None:
    @app.task
    def plain(x: int) -> int:
        return x + 1

    @app.task(name="custom.name", max_retries=7, queue="q2", ignore_result=True)
    def named(x: int) -> int:
        return x

    assert plain(1) == 2
    assert plain.name == "tests.unit.test_tasks.plain"
    assert named.name == "custom.name" and named.max_retries == 7 and named.queue == "q2"
    assert plain.max_retries == 3 and plain.default_retry_delay == 180
    assert plain.retry_backoff_max == 600 and plain.retry_jitter is True
    assert app.tasks["custom.name"] is named


def test_unknown_task_option_is_refused(app: Celery) -> None:
    with pytest.raises(TypeError, match="max_retry"):
        @app.task(max_retry=3)
        def f() -> None: ...


def test_bound_task_sees_its_request(app: Celery) -> None:
    @app.task(bind=True)
    def who(self: Task, x: int) -> dict:
        r = self.request
        return {"id": r.id, "args": r.args, "retries": r.retries, "eager": r.is_eager}

    result = who.apply((5,), task_id="abc")
    assert result.get() == {"id": "abc", "args": [5], "retries": 0, "eager": True}


def test_base_class_is_used(app: Celery) -> None:
    class Base(Task):
        def shout(self) -> str:
            return self.name.upper()

    @app.task(base=Base, name="b")
    def f() -> None: ...

    assert f.shout() == "B"  # type: ignore[attr-defined]


@pytest.mark.parametrize("retries, expected", [(0, 3), (1, 6), (2, 12), (3, 24), (10, 600)])
def test_backoff_is_factor_times_two_to_the_n_minus_one(retries: int, expected: float) -> None:
    assert backoff_delay_s(3, retries, 600, jitter=False) == expected


def test_jittered_backoff_stays_in_upper_half() -> None:
    random.seed(1)
    for retries in range(5):
        full = backoff_delay_s(3, retries, 600, jitter=False)
        for _ in range(50):
            assert full / 2 <= backoff_delay_s(3, retries, 600, jitter=True) <= full


def test_self_retry_uses_backoff_when_no_countdown(app: Celery) -> None:
    seen: list[float] = []

    @app.task(bind=True, retry_backoff=3, retry_jitter=False)
    def flaky(self: Task) -> str:
        if self.request.retries < 3:
            try:
                self.retry(exc=ValueError("x"), max_retries=3)
            except Retry as r:
                seen.append(float(r.when))  # type: ignore[arg-type]
                raise
        return "done"

    assert flaky.apply().get() == "done"
    assert seen == [3.0, 6.0, 12.0]


def test_retry_past_max_reraises_the_exception(app: Celery) -> None:
    calls = []

    @app.task(bind=True, default_retry_delay=0)
    def always_fails(self: Task) -> None:
        calls.append(self.request.retries)
        raise self.retry(exc=KeyError("gone"), max_retries=2)

    with pytest.raises(KeyError, match="gone"):
        always_fails.apply()
    assert calls == [0, 1, 2]


def test_retry_without_exc_past_max_raises_max_retries_exceeded(app: Celery) -> None:
    @app.task(bind=True, max_retries=1, default_retry_delay=0)
    def f(self: Task) -> None:
        raise self.retry()

    with pytest.raises(MaxRetriesExceededError):
        f.apply()


def test_autoretry_for_and_dont_autoretry_for(app: Celery) -> None:
    attempts = {"io": 0, "no": 0}

    @app.task(autoretry_for=(OSError,), retry_kwargs={"max_retries": 2}, retry_backoff=1)
    def io() -> str:
        attempts["io"] += 1
        if attempts["io"] < 3:
            raise OSError("flaky")
        return "ok"

    @app.task(autoretry_for=(OSError,), dont_autoretry_for=(FileNotFoundError,))
    def missing() -> None:
        attempts["no"] += 1
        raise FileNotFoundError("nope")

    assert io.apply().get() == "ok" and attempts["io"] == 3
    with pytest.raises(FileNotFoundError):
        missing.apply()
    assert attempts["no"] == 1


def test_eager_mode_runs_delay_inline(app: Celery) -> None:
    app.conf.task_always_eager = True

    @app.task
    def mul(x: int, y: int) -> int:
        return x * y

    result = mul.delay(6, 7)
    assert result.get() == 42 and result.successful() and result.state == "SUCCESS"


def test_eager_failure_without_propagation_is_kept(app: Celery) -> None:
    app.conf.task_eager_propagates = False

    @app.task
    def boom() -> None:
        raise ValueError("bad")

    result = boom.apply()
    assert result.failed()
    with pytest.raises(ValueError, match="bad"):
        result.get()
    assert isinstance(result.get(propagate=False), ValueError)


def test_async_task_inline_eager_and_from_a_running_loop(app: Celery) -> None:
    @app.task
    async def aadd(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x + y

    assert aadd.is_coroutine
    assert asyncio.run(aadd(1, 2)) == 3
    assert aadd.apply((2, 3)).get() == 5

    async def inside_loop() -> int:
        return aadd.apply((4, 5)).get()

    assert asyncio.run(inside_loop()) == 9
