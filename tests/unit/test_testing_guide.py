"""Celery's testing guide (docs.celeryq.dev, userguide/testing: "pytest"), its examples
with ``celery`` replaced by ``celeriac``: the fixtures, the marker, a ``celeriac_config``
override, and ``start_worker`` with its ping check. The session fixtures and the ways
the plugin is loaded are in test_pytest_plugin.py (an inner pytest session each)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import celeriac.app.base as app_state
from celeriac import Celery, shared_task, signals
from celeriac.contrib.testing import worker as testing_worker
from celeriac.contrib.testing.app import TestApp
from celeriac.contrib.testing.worker import TestWorkController, start_worker


@shared_task(name="guide.add")  # type: ignore[untyped-decorator]  # shared_task: Any
def add(x: int, y: int) -> int:
    return x + y


# "Put this in your conftest.py": a session fixture, overridden for this module only
@pytest.fixture(scope="session")
def celeriac_config() -> Mapping[str, Any]:
    return {"result_backend": "cache+memory://", "task_default_queue": "guide"}


@pytest.fixture
def ran() -> Iterator[list[str]]:
    """Names of the tasks the worker ran, in order."""
    names: list[str] = []

    def record(sender: Any = None, task: Any = None, **_: Any) -> None:
        names.append(task.name)

    signals.task_prerun.connect(record)
    yield names
    signals.task_prerun.disconnect(record)


def test_create_task(celeriac_app: Celery, celeriac_worker: TestWorkController) -> None:
    @celeriac_app.task
    def mul(x: int, y: int) -> int:
        return x * y

    celeriac_worker.reload()
    assert mul.delay(4, 4).get(timeout=10) == 16


def test_add(celeriac_worker: TestWorkController) -> None:
    """A shared task imported with the module sends through the worker's app."""
    assert add.delay(2, 2).get(timeout=10) == 4
    assert add.app is celeriac_worker.app


def test_the_config_fixture_configures_the_app(celeriac_app: Celery) -> None:
    assert celeriac_app.conf.task_default_queue == "guide"
    assert celeriac_app.result_backend_url == "cache+memory://"
    assert celeriac_app.broker_url.startswith("memory://")  # the test app's default


@pytest.mark.celeriac(result_backend="memory://other", task_default_queue="marked")
def test_other(celeriac_app: Celery, celeriac_worker: TestWorkController) -> None:
    assert celeriac_app.conf.result_backend == "memory://other"
    assert celeriac_worker.queues == ["marked"]

    @celeriac_app.task
    def hello() -> str:
        return "hi"

    assert hello.delay().get(timeout=10) == "hi"


@pytest.mark.celeriac(broker_url="memory://", result_backend="memory://")
def test_a_memory_url_given_is_the_process_wide_one(celeriac_app: Celery,
                                                    celeriac_worker: TestWorkController
                                                    ) -> None:
    """As Celery's memory transport: another app on memory:// reaches the test worker
    (only the defaults get a store of the test app's own)."""
    @celeriac_app.task(name="guide.where")
    def where() -> str:
        return celeriac_app.main

    elsewhere = Celery("elsewhere", broker="memory://", backend="memory://",
                       set_as_current=False)
    sent = elsewhere.send_task("guide.where", queue="guide")
    assert sent.get(timeout=10) == celeriac_app.main


@pytest.mark.celeriac(timezone="Europe/Paris")
class TestMarkedClass:
    def test_one(self, celeriac_app: Celery) -> None:
        assert celeriac_app.conf.timezone == "Europe/Paris"
        assert celeriac_app.conf.task_default_queue == "guide"  # the rest stays

    def test_two(self, celeriac_app: Celery) -> None:
        assert celeriac_app.conf.timezone == "Europe/Paris"


_apps_seen: list[Celery] = []


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_fresh_app_not_made_current(celeriac_app: Celery, run: int) -> None:
    assert celeriac_app not in _apps_seen and len(_apps_seen) == run - 1
    _apps_seen.append(celeriac_app)
    assert app_state._current is not celeriac_app
    assert celeriac_app in app_state._all_apps  # until the test ends
    if run == 2:
        assert _apps_seen[0] not in app_state._all_apps  # dropped after its test


@pytest.mark.usefixtures("depends_on_current_app")
def test_something(celeriac_app: Celery) -> None:
    assert app_state.current_app() is celeriac_app


def test_start_worker_checks_with_a_ping_then_runs_tasks(ran: list[str]) -> None:
    app = TestApp()
    started: list[Any] = []
    stopped: list[Any] = []

    def on_started(sender: Any = None, worker: Any = None, **_: Any) -> None:
        started.append(worker)

    def on_stopped(sender: Any = None, worker: Any = None, **_: Any) -> None:
        stopped.append(worker)

    testing_worker.test_worker_started.connect(on_started, sender=app)
    testing_worker.test_worker_stopped.connect(on_stopped, sender=app)

    @app.task
    def double(x: int) -> int:
        return 2 * x

    before = app_state._current
    with start_worker(app, perform_ping_check=True) as worker:
        assert ran == ["celery.ping"]  # answered before the block began
        assert started == [worker] and worker.pool_name == "solo"
        assert double.delay(21).get(timeout=10) == 42
        assert app_state.current_app() is app  # setup_app_for_worker made it current
    assert ran == ["celery.ping", double.name]
    assert stopped == [worker]
    assert app_state._current is app  # as Celery's: start_worker leaves it current
    app_state._current = before


def test_the_ping_check_fails_without_a_pong() -> None:
    app = TestApp()

    @app.task(name="celery.ping")
    def ping() -> str:
        return "nope"

    before = app_state._current
    try:
        with pytest.raises(RuntimeError, match=r"celery\.ping answered 'nope'"), \
                start_worker(app):
            pass
    finally:
        app_state._current = before


def test_the_ping_check_goes_to_a_queue_the_worker_consumes(ran: list[str]) -> None:
    app = TestApp()
    before = app_state._current
    try:
        with start_worker(app, queues=["elsewhere"]) as worker:
            assert worker.queues == ["elsewhere"] and ran == ["celery.ping"]
    finally:
        app_state._current = before


def test_without_the_ping_check_no_ping_is_sent(ran: list[str]) -> None:
    app = TestApp()
    before = app_state._current
    try:
        with start_worker(app, perform_ping_check=False, pool="threads", concurrency=2):
            pass
    finally:
        app_state._current = before
    assert ran == []
