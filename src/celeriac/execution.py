"""Running one task call and turning what happened into an Outcome.

The same code runs a task in every place a task can run: a worker's thread, its event
loop, a prefork child, and ``task.apply()`` (eager). It sets ``task.request``, calls the
function, applies ``autoretry_for``, and never lets the task's exception escape: the
caller gets an Outcome saying SUCCESS, RETRY (with the Retry), FAILURE (with the
exception and its traceback), REJECTED (``raise Reject``) or IGNORED (``raise Ignore``).
The task class's hooks (before_start, on_success, ...) run here too (task_hooks.py), so
they run where the task ran. What to do next (store, republish, ack) is the caller's job.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from celeriac import signals, states, task_hooks
from celeriac.backends.base import format_traceback
from celeriac.context import Context, current_request
from celeriac.errors import Ignore, InvalidTaskArguments, Reject, Retry, SoftTimeLimitExceeded

if TYPE_CHECKING:
    from celeriac.result import EagerResult
    from celeriac.task import Task

T = TypeVar("T")


@dataclass(slots=True)
class Outcome:
    """What one run of a task came to."""

    state: str
    value: Any = None
    traceback: str | None = None
    retry: Retry | None = None
    runtime_s: float = 0.0
    #: the task failed because retry() ran out of retries (the worker dead-letters it)
    exhausted: bool = False
    #: the task's hooks ran for this outcome where it ran (False: an outcome the worker
    #: made itself, such as a time limit; it runs on_failure then)
    hooked: bool = False


#: each task function's signature and arity (see _arity), computed once:
#: inspect.signature costs more than running a no-op task, and the worker checks every
#: message's arguments
_SIGNATURES: dict[Any, tuple[inspect.Signature, tuple[int, float] | None] | None] = {}


def _signature(fun: Any) -> tuple[inspect.Signature, tuple[int, float] | None] | None:
    try:
        return _SIGNATURES[fun]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable: no cache
        return _compute_signature(fun)
    found = _SIGNATURES[fun] = _compute_signature(fun)
    return found


def _compute_signature(fun: Any) -> tuple[inspect.Signature, tuple[int, float] | None] | None:
    try:
        signature = inspect.signature(fun)
    except (TypeError, ValueError):
        return None
    return signature, _arity(signature)


def _arity(signature: inspect.Signature) -> tuple[int, float] | None:
    """(least, most) positional arguments, if their count alone decides a positional-only
    call: no required keyword-only parameter (``*args`` makes ``most`` infinite)."""
    least, most = 0, 0.0
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            most += 1
            if param.default is param.empty:
                least += 1
        elif param.kind is param.VAR_POSITIONAL:
            most = float("inf")
        elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
            return None
    return least, most


def check_arguments(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise InvalidTaskArguments when args/kwargs do not fit the function's signature."""
    if not task.typing:
        return
    found = _signature(task._fun)
    if found is None:
        return
    signature, arity = found
    # the common call, positional arguments only: counting is enough (bind is ~10 us)
    if not kwargs and arity is not None and \
            arity[0] <= len(args) + (1 if task.bind else 0) <= arity[1]:
        return
    try:
        signature.bind(*([task] if task.bind else []), *args, **kwargs)
    except TypeError as exc:
        raise InvalidTaskArguments(
            f"{task.name} cannot take args={args!r} kwargs={kwargs!r}: {exc}"
        ) from None


def _failure_or_autoretry(task: Task[Any, Any], exc: Exception) -> Outcome:
    """Turn an exception into RETRY (autoretry_for) or FAILURE. Needs the request set."""
    if isinstance(exc, Retry):
        return Outcome(states.RETRY, exc.exc, retry=exc)
    if isinstance(exc, Reject):
        return Outcome(states.REJECTED, exc)
    if isinstance(exc, Ignore):  # e.g. Task.replace: the replacement records the result
        return Outcome(states.IGNORED, exc)
    if (task.autoretry_for and isinstance(exc, task.autoretry_for)
            and not isinstance(exc, task.dont_autoretry_for or ())):
        try:
            task.retry(exc=exc, **task.retry_kwargs)
        except Retry as retry:
            return Outcome(states.RETRY, exc, retry=retry)
        except Exception as final:  # retries exhausted: retry() re-raised exc
            return Outcome(states.FAILURE, final, format_traceback(final))
    return Outcome(states.FAILURE, exc, format_traceback(exc))


def _finished(outcome: Outcome, started: float, request: Context) -> Outcome:
    """Stamp the run time, and whether a failure used up the retries."""
    outcome.runtime_s = time.perf_counter() - started
    outcome.exhausted = outcome.state == states.FAILURE and request.retries_exhausted
    return outcome


class ExceptionInfo:
    """What Celery's ``einfo`` gives signal receivers: type, exception, tb, traceback."""

    def __init__(self, exc: BaseException, traceback: str | None) -> None:
        self.type = type(exc)
        self.exception = exc
        self.tb = exc.__traceback__
        self.traceback = traceback or format_traceback(exc)

    def __str__(self) -> str:
        return self.traceback


def _prerun(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
            request: Context) -> None:
    if signals.task_prerun._receivers:
        signals.task_prerun.send(task, task_id=request.id, task=task, args=args,
                                 kwargs=kwargs)


def _postrun(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
             request: Context, outcome: Outcome) -> None:
    """The signals Celery sends after a run, in its order: success, failure or retry,
    then postrun."""
    if outcome.state == states.SUCCESS:
        if signals.task_success._receivers:
            signals.task_success.send(task, result=outcome.value, runtime=outcome.runtime_s)
    elif outcome.state == states.RETRY:
        if signals.task_retry._receivers and outcome.retry is not None:
            reason = outcome.value if outcome.value is not None else outcome.retry
            signals.task_retry.send(task, request=request, reason=reason,
                                    einfo=ExceptionInfo(outcome.retry, None))
    elif signals.task_failure._receivers and isinstance(outcome.value, BaseException):
        einfo = ExceptionInfo(outcome.value, outcome.traceback)
        signals.task_failure.send(task, task_id=request.id, exception=outcome.value,
                                  args=args, kwargs=kwargs, traceback=einfo.tb, einfo=einfo)
    if signals.task_postrun._receivers:
        signals.task_postrun.send(task, task_id=request.id, task=task, args=args,
                                  kwargs=kwargs, retval=outcome.value, state=outcome.state)


def run_sync(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
             request: Context) -> Outcome:
    """Run a plain (non-async) task function in this thread."""
    token = current_request.set(request)
    started = time.perf_counter()
    hooks = task_hooks.overridden(task)
    try:
        _prerun(task, args, kwargs, request)
        try:
            if "before_start" in hooks:
                task_hooks.before_start(task, request.id, args, kwargs)
            value = task.run(*args, **kwargs)
        except Exception as exc:
            outcome = _failure_or_autoretry(task, exc)
        else:
            outcome = Outcome(states.SUCCESS, value)
        _finished(outcome, started, request)
        if hooks:
            task_hooks.after(task, hooks, outcome, request.id, args, kwargs)
        _postrun(task, args, kwargs, request, outcome)
    finally:
        current_request.reset(token)
    return outcome


async def run_async(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                    request: Context, soft_time_limit_s: float | None = None) -> Outcome:
    """Await an ``async def`` task on the running loop (soft time limit as a timeout)."""
    token = current_request.set(request)
    started = time.perf_counter()
    hooks = task_hooks.overridden(task)
    try:
        _prerun(task, args, kwargs, request)
        try:
            if "before_start" in hooks:
                task_hooks.before_start(task, request.id, args, kwargs)
            coro = task.run(*args, **kwargs)
            if soft_time_limit_s:
                try:
                    value = await asyncio.wait_for(coro, soft_time_limit_s)
                except TimeoutError:
                    raise SoftTimeLimitExceeded(
                        f"soft time limit ({soft_time_limit_s:g}s) exceeded") from None
            else:
                value = await coro
        except Exception as exc:
            outcome = _failure_or_autoretry(task, exc)
        else:
            outcome = Outcome(states.SUCCESS, value)
        _finished(outcome, started, request)
        if hooks:
            task_hooks.after(task, hooks, outcome, request.id, args, kwargs)
        _postrun(task, args, kwargs, request, outcome)
    finally:
        current_request.reset(token)
    return outcome


def run_coroutine_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even if this thread has a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="celeriac-eager")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result


def run_anywhere(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                 request: Context) -> Outcome:
    """Run a task of either kind from sync code (eager mode, prefork children)."""
    if task.is_coroutine:
        return run_coroutine_blocking(run_async(task, args, kwargs, request,
                                                request.timelimit[1]))
    return run_sync(task, args, kwargs, request)


def apply_eagerly(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], *,
                  task_id: str | None, retries: int, throw: bool | None) -> EagerResult[Any]:
    """``task.apply()``: run here as a worker would, retrying inline until done."""
    import uuid

    from celeriac.result import EagerResult

    task_id = task_id or str(uuid.uuid4())
    propagate = task.app.conf.task_eager_propagates if throw is None else throw
    while True:
        request = Context(id=task_id, task=task.name, args=args, kwargs=kwargs,
                          retries=retries, is_eager=True, called_directly=False,
                          root_id=task_id, delivery_info={"is_eager": True})
        check_arguments(task, args, kwargs)
        outcome = run_anywhere(task, args, kwargs, request)
        if outcome.state != states.RETRY or outcome.retry is None:
            break
        retries += 1
        args = outcome.retry.options.get("args", args)
        kwargs = outcome.retry.options.get("kwargs", kwargs)
    if task.app.conf.task_store_eager_result:
        _store_eager(task, task_id, outcome)
    if outcome.state == states.FAILURE and propagate:
        raise outcome.value
    return EagerResult(task_id, outcome.value, outcome.state, outcome.traceback, app=task.app)


def _store_eager(task: Task[Any, Any], task_id: str, outcome: Outcome) -> None:
    """``task_store_eager_result``: an eager run's result goes to the backend too."""
    from celeriac.backends.base import exception_to_result, make_meta

    app = task.app
    value = outcome.value
    if outcome.state in states.EXCEPTION_STATES and isinstance(value, BaseException):
        value = exception_to_result(value)
    meta = make_meta(task_id, outcome.state, value, outcome.traceback)
    expires_s = app.conf.seconds("result_expires")

    async def store() -> None:
        backend = await app.clients.backend()
        await backend.store(task_id, meta, expires_s)

    app.run_sync(store())
