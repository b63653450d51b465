"""Celery's failure format: exceptions travel as (type, args, module) and come back."""

from __future__ import annotations

from celeriac import TaskRevokedError, TimeLimitExceeded
from celeriac.backends.base import RemoteError, exception_to_result, rebuild_exception
from celeriac.errors import BackendStoreError, EncodeError


def test_builtin_exception_roundtrip() -> None:
    data = exception_to_result(ValueError("bad value", 42))
    assert data == {"exc_type": "ValueError", "exc_message": ["bad value", 42],
                    "exc_module": "builtins"}
    rebuilt = rebuild_exception(data)
    assert type(rebuilt) is ValueError and rebuilt.args == ("bad value", 42)


def test_celery_named_exceptions_travel_as_celerys() -> None:
    data = exception_to_result(TaskRevokedError("expired"))
    assert data["exc_module"] == "celery.exceptions"
    assert type(rebuild_exception(data)) is TaskRevokedError
    limit = {"exc_type": "TimeLimitExceeded", "exc_module": "celery.exceptions",
             "exc_message": [5.0]}
    assert type(rebuild_exception(limit)) is TimeLimitExceeded


def test_only_real_exception_classes_are_rebuilt() -> None:
    for data in ({"exc_type": "system", "exc_module": "os", "exc_message": ["rm -rf"]},
                 {"exc_type": "Popen", "exc_module": "subprocess", "exc_message": ["ls"]},
                 {"exc_type": "Nope", "exc_module": "not.imported.module", "exc_message": []}):
        rebuilt = rebuild_exception(data)
        assert isinstance(rebuilt, RemoteError)
        assert data["exc_type"] in str(rebuilt)


def test_result_errors_travel_under_kombus_and_celerys_names() -> None:
    """What a Celery worker stores for a result it cannot encode or store: a Celery
    client rebuilds kombu's EncodeError / Celery's BackendStoreError, celeriac its own."""
    data = exception_to_result(EncodeError("Task t[1] returned a value that ..."))
    assert data == {"exc_type": "EncodeError", "exc_module": "kombu.exceptions",
                    "exc_message": ["Task t[1] returned a value that ..."]}
    assert type(rebuild_exception(data)) is EncodeError
    stored = exception_to_result(BackendStoreError("too large"))
    assert stored["exc_module"] == "celery.exceptions"
    assert type(rebuild_exception(stored)) is BackendStoreError


def test_unencodable_exception_arguments_travel_as_their_repr() -> None:
    loop: list[object] = []
    loop.append(loop)  # JSON refuses a cycle with ValueError, not TypeError
    data = exception_to_result(ValueError(object(), loop))
    assert data["exc_message"][0].startswith("<object object at")
    assert data["exc_message"][1] == "[[...]]"
