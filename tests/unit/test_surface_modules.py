"""celeriac.exceptions, celeriac.states, celeriac.utils.log, current_task and uuid:
Celery's behaviour under celeriac's path."""

from __future__ import annotations

import logging
import pickle
import uuid as stdlib_uuid

import celery.exceptions
import celery.states
import pytest

import celeriac
from celeriac import exceptions, states
from celeriac.backends.base import exception_to_result, rebuild_exception
from celeriac.config import Config
from celeriac.testing import memory_app
from celeriac.utils.log import TaskFormatter, get_task_logger, setup_task_logging

RAISED_BY_APPS = ["Reject", "Ignore", "Retry", "MaxRetriesExceededError",
                  "SoftTimeLimitExceeded", "TimeLimitExceeded", "TaskRevokedError",
                  "ChordError", "NotRegistered", "WorkerLostError", "TimeoutError",
                  "ImproperlyConfigured", "QueueNotFound", "InvalidTaskError",
                  "BackendStoreError", "BackendGetMetaError", "Terminated"]


@pytest.mark.parametrize("name", RAISED_BY_APPS)
def test_exceptions_travel_as_celerys_names_and_come_back(name: str) -> None:
    cls = getattr(exceptions, name)
    exc = cls("why")
    stored = exception_to_result(exc)
    assert stored["exc_module"] == "celery.exceptions"
    assert stored["exc_type"] == name
    assert hasattr(celery.exceptions, name)  # a Celery client finds the class
    back = rebuild_exception(stored)
    assert type(back) is cls


def test_celerys_prefork_errors_read_back_as_celeriacs() -> None:
    """Celery's prefork stores limits under billiard's module."""
    for name in ("TimeLimitExceeded", "WorkerLostError"):
        stored = {"exc_type": name, "exc_module": "billiard.exceptions",
                  "exc_message": ["x"]}
        assert type(rebuild_exception(stored)) is getattr(exceptions, name)


def test_operational_error_is_kombus_on_the_wire() -> None:
    stored = exception_to_result(exceptions.OperationalError("down"))
    assert stored["exc_module"] == "kombu.exceptions"


def test_the_tree_is_celerys_where_apps_catch() -> None:
    e = exceptions
    assert issubclass(e.Retry, e.TaskPredicate) and issubclass(e.Reject, e.TaskPredicate)
    assert issubclass(e.Ignore, e.TaskPredicate) and issubclass(e.TaskPredicate, e.CeleryError)
    for name in ("QueueNotFound", "NotRegistered", "TimeoutError", "ChordError",
                 "MaxRetriesExceededError", "TaskRevokedError", "InvalidTaskError"):
        assert issubclass(getattr(e, name), e.TaskError), name
    assert issubclass(e.NotRegistered, KeyError) and issubclass(e.QueueNotFound, KeyError)
    assert issubclass(e.BackendStoreError, e.BackendError)
    assert issubclass(e.WorkerShutdown, SystemExit)
    assert issubclass(e.CeleryWarning, UserWarning)
    from celeriac.errors import BrokerConnectionError, InvalidTaskArguments, PublishError

    assert issubclass(BrokerConnectionError, e.OperationalError)
    assert issubclass(PublishError, e.OperationalError)
    assert issubclass(InvalidTaskArguments, e.InvalidTaskError)


def test_reject_and_retry_keep_their_fields() -> None:
    reject = exceptions.Reject("no room", requeue=True)
    assert reject.reason == "no room" and reject.requeue is True
    assert repr(reject) == "reject requeue=True: no room"
    retry = pickle.loads(pickle.dumps(exceptions.Retry(exc=ValueError("x"), when=5,
                                                       options={"queue": "q"})))
    assert retry.when == 5 and retry.options == {"queue": "q"}
    assert isinstance(retry.exc, ValueError)
    err = exceptions.MaxRetriesExceededError("m", task_args=[1], task_kwargs={"a": 2})
    assert err.task_args == [1] and err.task_kwargs == {"a": 2}
    store = exceptions.BackendStoreError("big", state="SUCCESS", task_id="t1")
    assert store.state == "SUCCESS" and store.task_id == "t1"


def test_reraise_keeps_the_traceback() -> None:
    try:
        raise ValueError("x")
    except ValueError as exc:
        caught = exc
    with pytest.raises(ValueError) as info:
        exceptions.reraise(ValueError, caught, caught.__traceback__)
    assert info.value is caught


def test_state_precedence_matches_celerys() -> None:
    names = [states.PENDING, states.RECEIVED, states.STARTED, states.SUCCESS,
             states.FAILURE, states.RETRY, states.REVOKED, states.REJECTED, "PROGRESS"]
    for a in names:
        assert states.precedence(a) == celery.states.precedence(a)
        for b in names:
            assert (states.state(a) < states.state(b)) == \
                (celery.states.state(a) < celery.states.state(b)), (a, b)
    assert states.state("PROGRESS") > states.state(states.STARTED)
    assert not states.state("PROGRESS") > states.state(states.SUCCESS)


def test_uuid_is_a_fresh_uuid4_string() -> None:
    a, b = celeriac.uuid(), celeriac.uuid()
    assert a != b and stdlib_uuid.UUID(a).version == 4


def test_current_task_is_the_running_task_and_false_outside() -> None:
    app = memory_app("curtask")
    assert not celeriac.current_task

    @app.task(name="who")
    def who() -> list:
        return [celeriac.current_task.name, celeriac.current_task.request.id]

    result = who.apply(task_id="fixed-id")
    assert result.get() == ["who", "fixed-id"]
    assert not celeriac.current_task


def test_task_logger_records_carry_task_name_and_id(caplog: pytest.LogCaptureFixture
                                                   ) -> None:
    app = memory_app("tasklog")
    conf = Config()
    conf.worker_task_log_format = "%(task_name)s[%(task_id)s]: %(message)s"
    task_logger = logging.getLogger("celery.task")
    saved = list(task_logger.handlers), task_logger.propagate, task_logger.level
    root = logging.getLogger()
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    probe = Collect()
    root.addHandler(probe)
    try:
        setup_task_logging(conf, "info")
        logger = get_task_logger("myapp.tasks")
        assert logger.parent is task_logger

        @app.task(name="logs")
        def logs() -> None:
            logger.info("hello")

        logs.apply(task_id="t-42")
        logger.info("outside")
    finally:
        root.removeHandler(probe)
        task_logger.handlers, task_logger.propagate = saved[0], saved[1]
        task_logger.setLevel(saved[2])
    assert "logs[t-42]: hello" in lines
    assert "???[???]: outside" in lines
    assert not any(line == "hello" for line in lines)  # not a second time via root


def test_reserved_task_logger_names_raise() -> None:
    with pytest.raises(RuntimeError):
        get_task_logger("celery.task")


def test_task_formatter_outside_a_task() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert TaskFormatter("%(task_name)s %(task_id)s %(message)s").format(record) == \
        "??? ??? m"


def test_celeriac_app_task_is_celerys_path() -> None:
    from celeriac.app.task import Context, Task

    assert Task is celeriac.Task and Context is celeriac.Context
    import importlib.util

    spec = importlib.util.find_spec("celeriac.app.task")  # a real module type checkers see
    assert spec is not None and str(spec.origin).endswith("celeriac/app/task.py")
    from celeriac.app import Celery, _all_apps, current_app, shared_task

    assert Celery is celeriac.Celery and current_app is celeriac.current_app
    assert shared_task is celeriac.shared_task and isinstance(_all_apps, list)
