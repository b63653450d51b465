"""check_arguments: its counting shortcut agrees with inspect's Signature.bind."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from celeriac import Celery
from celeriac.errors import InvalidTaskArguments
from celeriac.execution import check_arguments

app = Celery("check-arguments", broker="memory://")


def none() -> None: ...
def two(a: Any, b: Any) -> None: ...
def defaults(a: Any, b: Any = 1, c: Any = 2) -> None: ...
def star(a: Any, *rest: Any) -> None: ...
def kwonly_required(a: Any, *, key: Any) -> None: ...
def kwonly_default(a: Any, *, key: Any = 0) -> None: ...
def posonly(a: Any, /, b: Any) -> None: ...
def anything(*args: Any, **kwargs: Any) -> None: ...


FUNCTIONS = [none, two, defaults, star, kwonly_required, kwonly_default, posonly, anything]


def binds(fun: Any, args: list[Any], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(fun).bind(*args, **kwargs)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("fun", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("count", range(5))
def test_positional_calls_are_judged_as_bind_judges_them(fun: Any, count: int) -> None:
    task = app.task(name=f"check.{fun.__name__}")(fun)
    args = list(range(count))
    if binds(fun, args, {}):
        check_arguments(task, args, {})
    else:
        with pytest.raises(InvalidTaskArguments, match=f"check.{fun.__name__} cannot take"):
            check_arguments(task, args, {})


def test_keyword_calls_still_go_through_bind() -> None:
    task = app.task(name="check.kw")(kwonly_required)
    check_arguments(task, [1], {"key": 2})
    with pytest.raises(InvalidTaskArguments):
        check_arguments(task, [1], {"nope": 2})


def test_bound_tasks_count_self() -> None:
    @app.task(name="check.bound", bind=True)
    def bound(self: Any, a: Any) -> None: ...

    check_arguments(bound, [1], {})
    with pytest.raises(InvalidTaskArguments):
        check_arguments(bound, [1, 2], {})
    with pytest.raises(InvalidTaskArguments):
        check_arguments(bound, [], {})
