"""Celery 5.7's public names, under celeriac's path: replace ``celery`` with ``celeriac``
in an import and it keeps working.

``CHECKED`` is the list of names an application imports, written out per module. Each
must exist in Celery 5.7 (installed as a test dependency) and under celeriac's path.
``LEFT_OUT`` names the rest of Celery's ``__all__`` with the reason for each: what is
internal to Celery, and what is missing on purpose for now (``MISSING``: those are
strict xfails, so adding the name makes this test fail until its entry is removed).
A Celery release that adds a public name fails ``test_every_celery_name_is_accounted``.
"""

from __future__ import annotations

import importlib

import pytest

#: what an application imports, per module (Celery's path -> names)
CHECKED: dict[str, tuple[str, ...]] = {
    "celery": (
        "Celery", "Task", "shared_task", "current_app", "current_task", "uuid",
        "Signature", "signature", "maybe_signature", "subtask", "chain", "chord",
        "chunks", "group", "xmap", "xstarmap", "__version__", "bugreport",
    ),
    "celery.canvas": (
        "Signature", "chain", "xmap", "xstarmap", "chunks", "group", "chord",
        "signature", "maybe_signature",
    ),
    "celery.result": (
        "ResultBase", "AsyncResult", "ResultSet", "GroupResult", "EagerResult",
        "result_from_tuple",
    ),
    "celery.exceptions": (
        "CeleryWarning", "AlwaysEagerIgnored", "DuplicateNodenameWarning",
        "DuplicateTaskNameWarning", "FixupWarning", "NotConfigured", "SecurityWarning",
        "CeleryError", "ImproperlyConfigured", "SecurityError", "OperationalError",
        "TaskPredicate", "Ignore", "Reject", "Retry",
        "TaskError", "QueueNotFound", "IncompleteStream", "NotRegistered",
        "AlreadyRegistered", "TimeoutError", "MaxRetriesExceededError",
        "TaskRevokedError", "InvalidTaskError", "ChordError",
        "BackendError", "BackendGetMetaError", "BackendStoreError",
        "SoftTimeLimitExceeded", "TimeLimitExceeded", "WorkerLostError", "Terminated",
        "CPendingDeprecationWarning", "CDeprecationWarning",
        "WorkerShutdown", "WorkerTerminate", "reraise",
    ),
    "celery.signals": (
        "before_task_publish", "after_task_publish", "task_internal_error",
        "task_prerun", "task_postrun", "task_success", "task_received", "task_rejected",
        "task_unknown", "task_retry", "task_failure", "task_revoked", "celeryd_init",
        "celeryd_after_setup", "worker_init", "worker_before_create_process",
        "worker_process_init", "worker_process_shutdown", "worker_ready",
        "worker_shutdown", "worker_shutting_down", "setup_logging", "after_setup_logger",
        "after_setup_task_logger", "beat_init", "beat_embedded_init", "heartbeat_sent",
    ),
    "celery.schedules": ("schedule", "crontab", "solar", "maybe_schedule",
                         "crontab_parser", "ParseException"),
    "celery.states": (
        "PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "REVOKED", "RETRY",
        "IGNORED", "REJECTED", "READY_STATES", "UNREADY_STATES", "EXCEPTION_STATES",
        "PROPAGATE_STATES", "ALL_STATES", "precedence", "state",
    ),
    "celery.utils.log": ("get_task_logger", "get_logger", "base_logger", "LOG_LEVELS",
                         "mlevel"),
    "celery.app.task": ("Task", "Context"),
    "celery.contrib.abortable": ("AbortableTask", "AbortableAsyncResult", "ABORTED"),
    "celery.contrib.testing.app": ("TestApp", "setup_default_app", "set_trap", "Trap",
                                   "DEFAULT_TEST_CONFIG"),
    "celery.contrib.testing.worker": (
        "start_worker", "setup_app_for_worker", "TestWorkController", "WORKER_LOGLEVEL",
        "test_worker_starting", "test_worker_started", "test_worker_stopped"),
    "celery.contrib.testing.tasks": ("ping",),
    "celery.contrib.testing.mocks": ("TaskMessage", "task_message_from_sig", "ContextMock"),
    "celery.app.control": ("Control", "Inspect", "flatten_reply"),
    "celery.utils": ("uuid",),
    "celery.worker.control": ("Panel", "control_command", "inspect_command", "ok", "nok"),
    "celery.bootsteps": ("Step", "StartStopStep", "ConsumerStep"),
    "celery.beat": ("Service",),
}

#: Celery names celeriac leaves out, with the reason. ``MISSING`` reasons are strict xfails.
MISSING: dict[str, str] = {}
INTERNAL = "Celery's packaging or internals, not something an application imports"
LEFT_OUT: dict[str, str] = {
    **{f"celery.{n}": INTERNAL for n in (
        "SERIES", "VERSION", "VERSION_BANNER", "version_info", "version_info_t",
        "__author__", "__contact__", "__homepage__", "__docformat__", "__package__",
        "__file__", "__path__", "__doc__", "_find_option_with_arg", "_original_os_write",
        "maybe_patch_concurrency", "local", "log", "registry", "messaging", "execute")},
    **{f"celery.utils.{n}": "Celery's internal helpers (functools, kombu and import "
       "utilities re-exported), not the API of an application"
       for n in ("LOG_LEVELS", "cached_property", "chunks", "gen_task_name", "gen_unique_id",
                 "get_cls_by_name", "get_full_cls_name", "import_from_cwd", "instantiate",
                 "memoize", "nodename", "nodesplit", "noop", "worker_direct")},
    "celery.bootsteps.Blueprint": "the graph of Celery's own worker steps; celeriac's "
                                  "start-up order is written out in worker/worker.py",
    "celery.beat.Scheduler": "celeriac.beat.Scheduler is celeriac's own loop (state in the "
                             "broker), not Celery's base class for custom schedulers",
    **{f"celery.beat.{n}": "Celery's scheduler classes for subclassing (custom schedulers "
       "such as django-celery-beat's); celeriac's beat does not load them "
       "(docs/moving-from-celery.md)"
       for n in ("ScheduleEntry", "PersistentScheduler", "SchedulingError")},
    "celery.beat.EmbeddedService": "worker -B runs celeriac's scheduler in a thread itself",
    "celery.beat.BeatPidbox": "beat has no remote control mailbox in celeriac",
    "celery.exceptions.CeleryCommandException": "a click exception of Celery's own CLI",
    **{f"celery.signals.{n}": "eventlet is not a celeriac pool (-P eventlet runs asyncio)"
       for n in ("eventlet_pool_started", "eventlet_pool_preshutdown",
                 "eventlet_pool_postshutdown", "eventlet_pool_apply")},
    **{f"celery.utils.log.{n}": "the prefork pool's and the console's internals "
       "(billiard's multiprocessing logger, colours, signal-handler flags)"
       for n in ("ColorFormatter", "LoggingProxy", "set_in_sighandler", "in_sighandler",
                 "get_multiprocessing_logger", "reset_multiprocessing_logger")},
}


def _celeriac_path(module: str) -> str:
    return "celeriac" + module[len("celery"):]


def _cases() -> list[object]:
    cases = []
    for module, names in CHECKED.items():
        for name in names:
            key = f"{module}.{name}"
            marks = [pytest.mark.xfail(strict=True, reason=MISSING[key])] \
                if key in MISSING else []
            cases.append(pytest.param(module, name, id=key, marks=marks))
    return cases


@pytest.mark.parametrize(("module", "name"), _cases())
def test_name_exists_under_celeriac(module: str, name: str) -> None:
    try:
        ours = importlib.import_module(_celeriac_path(module))
    except ImportError as exc:
        pytest.fail(f"{_celeriac_path(module)} cannot be imported: {exc}")
    assert hasattr(ours, name), f"{_celeriac_path(module)} has no {name!r} ({module} does)"


@pytest.mark.parametrize("module", sorted(CHECKED))
def test_checked_names_are_celerys(module: str) -> None:
    """The list is honest: every name it checks is one Celery 5.7 has."""
    theirs = importlib.import_module(module)
    absent = [n for n in CHECKED[module] if not hasattr(theirs, n)]
    assert not absent, f"{module} has no {absent}"


@pytest.mark.parametrize("module", sorted(CHECKED))
def test_every_celery_name_is_accounted(module: str) -> None:
    """Each name in Celery's ``__all__`` is checked or left out with a reason."""
    theirs = importlib.import_module(module)
    public = set(getattr(theirs, "__all__", ()))
    unaccounted = sorted(n for n in public
                         if n not in CHECKED[module] and f"{module}.{n}" not in LEFT_OUT)
    assert not unaccounted, f"{module}: add to CHECKED or LEFT_OUT: {unaccounted}"


def test_exceptions_are_the_same_objects_under_both_celeriac_paths() -> None:
    """``celeriac.X`` and ``celeriac.exceptions.X`` are one class, so ``except`` matches."""
    import celeriac
    import celeriac.exceptions as exceptions

    for name in ("Retry", "TimeoutError", "SoftTimeLimitExceeded", "ChordError"):
        assert getattr(celeriac, name) is getattr(exceptions, name)


def test_left_out_names_do_not_hide_checked_ones() -> None:
    for key in LEFT_OUT:
        module, _, name = key.rpartition(".")
        assert name not in CHECKED.get(module, ()), key


def test_every_fixture_of_celerys_pytest_plugin_has_its_celeriac_name() -> None:
    """``celery_app`` -> ``celeriac_app``, ``use_celery_app_trap`` ->
    ``use_celeriac_app_trap``, ...: Celery's plugin, fixture by fixture."""
    import celery.contrib.pytest as theirs

    import celeriac.contrib.pytest as ours

    def is_fixture(value: object) -> bool:  # pytest >= 8.4, and before
        return (type(value).__name__ == "FixtureFunctionDefinition"
                or hasattr(value, "_pytestfixturefunction"))

    fixtures = [name for name, value in vars(theirs).items() if is_fixture(value)]
    assert "celery_app" in fixtures and "depends_on_current_app" in fixtures
    missing = [name for name in fixtures
               if not is_fixture(getattr(ours, name.replace("celery", "celeriac"), None))]
    assert not missing


def test_current_app_is_a_proxy_as_celerys() -> None:
    """``current_app.conf`` and ``current_app.send_task`` reach the current app, as with
    Celery's proxy; ``current_app()`` (celeriac's earlier form) still returns it."""
    from celeriac import Celery, current_app

    first = Celery("first", broker="memory://")
    assert current_app() is first and current_app._get_current_object() is first
    assert current_app.main == "first"
    current_app.conf.task_default_queue = "via-proxy"
    assert first.conf.task_default_queue == "via-proxy"
    second = Celery("second", broker="memory://")
    assert current_app.main == "second" and current_app() is second
    assert current_app.send_task.__self__ is second
