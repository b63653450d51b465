"""The pytest plugin as a user's suite meets it: each test runs an inner pytest session
(pytester, in this process) on a conftest and test module written as Celery's docs
write them, with ``celery`` replaced by ``celeriac``."""

from __future__ import annotations

import textwrap

import pytest

import celeriac.app.base as app_state

pytest_plugins = ["pytester"]

USES_THE_FIXTURES = """
    def test_round_trip(celeriac_app, celeriac_worker):
        @celeriac_app.task
        def mul(x, y):
            return x * y

        assert mul.delay(4, 4).get(timeout=10) == 16
"""


def run(pytester: pytest.Pytester, *args: str, **files: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    for name, text in files.items():
        pytester.makepyfile(**{name: textwrap.dedent(text)})
    app_state.current_app()  # made now if none yet: pytest's collection reads shared
    before = (app_state._current, list(app_state._all_apps))  # tasks (which ask for it)
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    # the inner session's apps are gone and the current app is the one before
    assert (app_state._current, list(app_state._all_apps)) == before
    return result


def test_the_fixtures_load_without_being_asked_for(pytester: pytest.Pytester) -> None:
    run(pytester, test_it=USES_THE_FIXTURES).assert_outcomes(passed=1)


def test_a_conftest_may_ask_for_the_plugin_as_celerys_docs_say(
        pytester: pytest.Pytester) -> None:
    """Auto-loaded and named in pytest_plugins: registered once, no error."""
    result = run(pytester, conftest='pytest_plugins = ("celeriac.contrib.pytest",)\n',
                 test_it=USES_THE_FIXTURES)
    result.assert_outcomes(passed=1)


def test_a_conftest_may_name_the_testing_module_too(pytester: pytest.Pytester) -> None:
    result = run(pytester, conftest='pytest_plugins = ("celeriac.testing",)\n',
                 test_it=USES_THE_FIXTURES)
    result.assert_outcomes(passed=1)


def test_with_autoload_off_the_plugin_is_enabled_as_celerys(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it=textwrap.dedent(USES_THE_FIXTURES))
    off = run(pytester, "-p", "no:celeriac")
    off.assert_outcomes(errors=1)
    off.stdout.fnmatch_lines(["*fixture 'celeriac_app' not found*"])
    run(pytester, "-p", "no:celeriac", "-p", "celeriac.contrib.pytest").assert_outcomes(
        passed=1)
    run(pytester, "-p", "no:celeriac",
        conftest='pytest_plugins = ("celeriac.contrib.pytest",)\n').assert_outcomes(passed=1)


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--strict-markers", test_it="""
        import pytest

        @pytest.mark.celeriac(result_backend="memory://marked")
        def test_marked(celeriac_app):
            assert celeriac_app.conf.result_backend == "memory://marked"
    """)
    result.assert_outcomes(passed=1)
    markers = run(pytester, "--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.celeriac(**overrides)*"])


SESSION_CONFTEST = """
    import pytest
    from celeriac.contrib.testing import worker

    STOPPED = []
    worker.test_worker_stopped.connect(lambda sender=None, worker=None, **kw:
                                       STOPPED.append(worker), weak=False)

    @pytest.fixture(scope="session")
    def celeriac_config():
        return {"broker_url": "memory://session-guide", "result_backend": "cache+memory://"}

    @pytest.fixture(scope="session")
    def celeriac_includes():
        return ["guide_tasks"]

    def pytest_sessionfinish(session):
        # the session worker stops after the last test, before this hook
        print("stopped workers:", len(STOPPED))
"""

GUIDE_TASKS = """
    from celeriac import shared_task

    @shared_task
    def add(x, y):
        return x + y
"""

SESSION_TESTS = """
    from guide_tasks import add

    WORKERS = []

    def test_add_task(celeriac_session_worker):
        WORKERS.append(celeriac_session_worker)
        assert add.delay(2, 2).get(timeout=10) == 4

    def test_the_same_worker_serves_the_session(celeriac_session_worker, celeriac_session_app):
        assert WORKERS == [celeriac_session_worker]
        assert celeriac_session_worker.app is celeriac_session_app
        assert celeriac_session_app.broker_url == "memory://session-guide"
        assert add.delay(3, 4).get(timeout=10) == 7
"""


def test_the_session_worker_lives_through_the_session(pytester: pytest.Pytester) -> None:
    result = run(pytester, "-s", conftest=SESSION_CONFTEST, guide_tasks=GUIDE_TASKS,
                 test_session=SESSION_TESTS)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*stopped workers: 1*"])


def test_worker_parameters_pool_and_includes(pytester: pytest.Pytester) -> None:
    result = run(pytester, conftest="""
        import pytest

        @pytest.fixture(scope="session")
        def celeriac_worker_pool():
            return "threads"

        @pytest.fixture(scope="session")
        def celeriac_worker_parameters():
            return {"queues": ("high-prio", "low-prio"), "exclude_queues": ("low-prio",),
                    "shutdown_timeout": 5.0}  # the ping check goes to high-prio

        @pytest.fixture(scope="session")
        def celeriac_includes():
            return ["guide_tasks"]
    """, guide_tasks=GUIDE_TASKS, test_it="""
        from guide_tasks import add

        def test_queues(celeriac_app, celeriac_worker):
            assert celeriac_worker.pool_name == "threads"
            assert celeriac_worker.queues == ["high-prio"]
            assert "guide_tasks.add" in celeriac_app.tasks  # imported for the app
            assert add.apply_async((1, 2), queue="high-prio").get(timeout=10) == 3
    """)
    result.assert_outcomes(passed=1)


def test_the_app_trap(pytester: pytest.Pytester) -> None:
    result = run(pytester, conftest="""
        import pytest

        @pytest.fixture(scope="session")
        def use_celeriac_app_trap():
            return True
    """, test_it="""
        import pytest
        from celeriac import current_app

        def test_trapped(celeriac_app):
            with pytest.raises(RuntimeError, match="depends on current_app"):
                current_app().conf

        @pytest.mark.usefixtures("depends_on_current_app")
        def test_something(celeriac_app):
            assert current_app() is celeriac_app
    """)
    result.assert_outcomes(passed=2)
