"""Task: what ``@app.task`` makes. Calling (delay/apply_async/apply) and retry().

A Task wraps one function. Its class attributes are the options of ``@app.task``
(Celery's names and defaults); ``app.task(base=MyTask)`` subclasses another Task.
``Task[P, R]`` carries the function's parameters and return type, so ``add.delay(1, 2)``
and ``add.delay(1, 2).get()`` are checked by mypy and pyright.
"""

from __future__ import annotations

import datetime as dt
import inspect
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar

from celeriac.context import Context, current_request
from celeriac.errors import MaxRetriesExceededError, Retry

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.canvas import Signature
    from celeriac.result import AsyncResult, EagerResult

P = ParamSpec("P")
R = TypeVar("R")


def backoff_delay_s(factor: float, retries: int, maximum: float, jitter: bool) -> float:
    """The n-th retry (retries = n - 1 already done) waits ``factor * 2**(n-1)`` seconds.

    Capped by ``maximum``. With jitter the delay is drawn from the upper half,
    [d/2, d], so retries spread out but never come sooner than half the promise (Celery
    draws from [0, d], which can retry at once).
    """
    delay = min(maximum, factor * float(2 ** max(0, retries)))
    if jitter:
        delay = random.uniform(delay / 2, delay)
    return max(0.0, delay)


class Task(Generic[P, R]):
    """A registered task. See the module docstring."""

    #: the app the task belongs to (set when the task is created)
    app: ClassVar[Celery]
    name: ClassVar[str] = ""
    #: True when the function takes the task as its first argument
    bind: ClassVar[bool] = False
    typing: ClassVar[bool] = True
    max_retries: ClassVar[int | None] = 3
    default_retry_delay: ClassVar[float] = 180
    autoretry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    dont_autoretry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    retry_kwargs: ClassVar[dict[str, Any]] = {}
    retry_backoff: ClassVar[bool | float] = False
    retry_backoff_max: ClassVar[float] = 600
    retry_jitter: ClassVar[bool] = True
    time_limit: ClassVar[float | None] = None
    soft_time_limit: ClassVar[float | None] = None
    ignore_result: ClassVar[bool | None] = None
    acks_late: ClassVar[bool | None] = None
    queue: ClassVar[str | None] = None
    priority: ClassVar[int | None] = None
    expires: ClassVar[float | dt.datetime | None] = None
    rate_limit: ClassVar[str | None] = None
    serializer: ClassVar[str | None] = None
    #: the function as written, and whether it is ``async def``
    _fun: ClassVar[Callable[..., Any]]
    is_coroutine: ClassVar[bool] = False

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("tasks made by @app.task replace run()")

    # -- calling ------------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, as a plain call (no message, no worker)."""
        result: R = self.run(*args, **kwargs)
        return result

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task to a worker: ``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """``delay`` once the current Django database transaction commits (at once
        outside one; never if it rolls back). Returns None: nothing is sent yet."""
        _on_commit(lambda: self.apply_async(args, kwargs))

    def apply_async_on_commit(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        using: str | None = None,
        **options: Any,
    ) -> None:
        """``apply_async`` once the current Django transaction (on database ``using``)
        commits. Returns None: nothing is sent yet."""
        _on_commit(lambda: self.apply_async(args, kwargs, **options), using)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Awaitable ``delay`` for async applications."""
        return await self.aapply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task with options: countdown, eta, expires, queue, priority, task_id,
        headers, ignore_result, time_limit, soft_time_limit, link, link_error, ..."""
        if self.app.send_defaults().always_eager:
            return self.apply(args, kwargs, task_id=options.get("task_id"))
        return self.app.send_task(self.name, args, kwargs, task_type=self, **options)

    async def aapply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Awaitable ``apply_async``: publishes on the caller's event loop."""
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, task_id=options.get("task_id"))
        return await self.app.asend_task(self.name, args, kwargs, task_type=self, **options)

    def delay_many(self, calls: Iterable[Sequence[Any]], **options: Any
                   ) -> list[AsyncResult[R]]:
        """Send one task per tuple of positional arguments, in batches (one broker round
        trip per ``batch_size``, 1000 by default): ``add.delay_many([(1, 2), (3, 4)])``."""
        return self.apply_many(((args, None) for args in calls), **options)

    def apply_many(self, calls: Iterable[tuple[Sequence[Any], Mapping[str, Any] | None]],
                   **options: Any) -> list[AsyncResult[R]]:
        """Send one task per ``(args, kwargs)`` pair, all with the same ``apply_async``
        options (countdown, queue, priority, ...), in batches."""
        if self.app.conf.task_always_eager:
            return [self.apply(list(a), dict(k or {})) for a, k in calls]
        return self.app.send_many(self.name, calls, task_type=self, **options)

    async def adelay_many(self, calls: Iterable[Sequence[Any]], **options: Any
                          ) -> list[AsyncResult[R]]:
        """Awaitable ``delay_many``."""
        return await self.aapply_many(((args, None) for args in calls), **options)

    async def aapply_many(self, calls: Iterable[tuple[Sequence[Any], Mapping[str, Any] | None]],
                          **options: Any) -> list[AsyncResult[R]]:
        """Awaitable ``apply_many``: publishes on the caller's event loop."""
        if self.app.conf.task_always_eager:
            return [self.apply(list(a), dict(k or {})) for a, k in calls]
        return await self.app.asend_many(self.name, calls, task_type=self, **options)

    def apply(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        task_id: str | None = None,
        retries: int = 0,
        throw: bool | None = None,
        **_options: Any,
    ) -> EagerResult[R]:
        """Run the task here, as a worker would (retries included), and return its result."""
        from celeriac.execution import apply_eagerly

        return apply_eagerly(self, list(args or ()), dict(kwargs or {}), task_id=task_id,
                             retries=retries, throw=throw)

    def AsyncResult(self, task_id: str) -> AsyncResult[R]:
        from celeriac.result import AsyncResult

        return AsyncResult(task_id, app=self.app)

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A signature of this task (for link, link_error, chains, groups, chords)."""
        from celeriac.canvas import Signature

        return Signature.of(self.name, args, kwargs, app=self.app)

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """An immutable signature: the parent's result is not prepended to its args."""
        from celeriac.canvas import Signature

        return Signature.of(self.name, args, kwargs, app=self.app, immutable=True)

    def signature(self, args: Any = None, kwargs: Any = None, *starargs: Any,
                  **options: Any) -> Signature[R]:
        """Celery's ``task.signature(args, kwargs, **options)`` (calling options kept)."""
        from celeriac.canvas import Signature

        immutable = bool(options.pop("immutable", False))
        extra = options.pop("options", None) or {}
        return Signature(self.name, args or (), kwargs, {**extra, **options},
                         immutable=immutable, app=self.app)

    subtask = signature

    def map(self, it: Iterable[Any]) -> Any:
        """One ``celery.map`` task that calls this task's function on each item."""
        from celeriac.canvas import xmap

        return xmap(self.s(), it, app=self.app)

    def starmap(self, it: Iterable[Any]) -> Any:
        """One ``celery.starmap`` task that calls the function with each item's args."""
        from celeriac.canvas import xstarmap

        return xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Iterable[Any], n: int) -> Any:
        """The items in chunks of ``n``: a group of ``celery.starmap`` tasks when sent."""
        from celeriac.canvas import chunks

        return chunks(self.s(), it, n, app=self.app)

    # -- inside a running task ------------------------------------------------------------
    @property
    def request(self) -> Context:
        """The current call's request (id, args, retries, ...)."""
        return current_request.get()

    def retry(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: dt.datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Ask for this task to run again later; raises Retry (return it with ``raise``).

        Past ``max_retries`` it raises ``exc`` (or MaxRetriesExceededError). Without a
        countdown or eta, ``retry_backoff`` gives the n-th retry ``retry_backoff * 2**(n-1)``
        seconds (capped by retry_backoff_max, jittered), else ``default_retry_delay``.
        The worker republishes the message through the broker's delay store.
        """
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            request.retries_exhausted = True
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}: max retries ({limit}) exceeded"
            )
        when: float | dt.datetime
        if eta is not None:
            when = eta
        elif countdown is not None:
            when = float(countdown)
        elif self.retry_backoff:
            when = backoff_delay_s(float(self.retry_backoff), request.retries,
                                   float(self.retry_backoff_max), bool(self.retry_jitter))
        else:
            when = float(self.default_retry_delay)
        new_options = dict(options)
        if args is not None:
            new_options["args"] = list(args)
        if kwargs is not None:
            new_options["kwargs"] = dict(kwargs)
        if max_retries is not None:
            new_options["max_retries"] = max_retries
        signal = Retry(exc=exc, when=when, options=new_options)
        if throw:
            raise signal
        return signal

    def replace(self, sig: Any) -> Any:
        """Replace this running task with ``sig`` (a task, chain, group or chord), as
        Celery does: ``sig`` takes this task's id, so the caller's result is the
        replacement's; it keeps this task's place in its group or chord (a group is made
        a chord with ``celery.accumulate``, so its results reach the chord as one list),
        inherits its callbacks, errbacks and the rest of its chain. In a worker it
        raises Ignore (this task records nothing); eagerly, returns the replacement's
        value."""
        from celeriac.canvas import chain, group, signature
        from celeriac.errors import Ignore, ImproperlyConfigured

        request = self.request
        if (sig.get("options") or {}).get("chord"):
            raise ImproperlyConfigured(
                "A signature replacing a task must not be part of a chord")
        if isinstance(sig, chain) and not sig.tasks:
            raise ImproperlyConfigured("Cannot replace with an empty chain")
        if isinstance(sig, group):
            sig = sig | self.app.tasks["celery.accumulate"].s(index=0)
        for callback in request.callbacks or ():
            sig.link(signature(callback, app=self.app))
        for errback in request.errbacks or ():
            sig.link_error(signature(errback, app=self.app))
        if isinstance(sig, chain) and (sig.get("options") or {}).get("link"):
            links = sig["options"].pop("link")
            for link in links if isinstance(links, list) else [links]:
                sig.tasks[-1].link(link)
        sig.freeze(request.id)
        nesting = int((request.headers or {}).get("replaced_task_nesting") or 0) + 1
        headers = {**((sig.get("options") or {}).get("headers") or {}),
                   "replaced_task_nesting": nesting}
        place = {"chord": request.chord, "group_id": request.group,
                 "group_index": request.group_index, "root_id": request.root_id}
        sig.set(headers=headers, **{k: v for k, v in place.items() if v is not None})
        for step in reversed(request.chain or ()):
            sig |= signature(step, app=self.app)
        if request.is_eager:
            return sig.apply().get()
        sig.delay()
        raise Ignore("Replaced by new task")

    def add_to_chord(self, sig: Any, lazy: bool = False) -> Any:
        """Add ``sig`` to the chord this task is a header part of: the body then waits
        for it too, and gets its result after this task's. Sends it (its AsyncResult),
        or with ``lazy=True`` returns the prepared signature for the caller to send."""
        from celeriac.chords import add_to_chord

        request = self.request
        if not request.chord or not request.group:
            raise ValueError("Current task is not member of any chord")
        place = {"group_id": request.group, "group_index": request.group_index,
                 "chord": request.chord, "root_id": request.root_id}
        sig.set(**{k: v for k, v in place.items() if v is not None})
        sig.freeze()
        add_to_chord(self.app, request.group)
        return sig if lazy else sig.delay()

    def update_state(self, task_id: str | None = None, state: str | None = None,
                     meta: Any = None, **kwargs: Any) -> None:
        """Store a state for this call (or ``task_id``): ``update_state(state='PROGRESS',
        meta={'done': 3})`` -> ``AsyncResult.state == 'PROGRESS'``, ``.info == meta``.
        Works from a worker's task in any pool (a prefork child stores it itself)."""
        from celeriac.task_state import store_state

        store_state(self, task_id or self.request.id, state, meta)

    # -- hooks a base class may override --------------------------------------------------
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Called where the task runs, just before it runs."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        """Called where the task ran, after it succeeded."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        """Called where the task ran, after it failed for good (``einfo``: the
        exception and its traceback)."""

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                 einfo: Any) -> None:
        """Called where the task ran, when it will be retried."""

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any,
                     einfo: Any) -> None:
        """Called where the task ran, after on_success/on_failure (not on retry)."""

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main}>"


#: options of @app.task that become class attributes of the task
TASK_OPTIONS = frozenset(
    name for name in vars(Task) if not name.startswith("_") and not callable(vars(Task)[name])
    and not isinstance(vars(Task)[name], property)
) - {"app", "is_coroutine"}


def make_task_class(
    app: Celery, fun: Callable[..., Any], name: str, base: type[Task[Any, Any]],
    options: dict[str, Any],
) -> type[Task[Any, Any]]:
    """Build the Task subclass for one function (one class per task, like Celery)."""
    unknown = set(options) - TASK_OPTIONS
    if unknown:
        raise TypeError(f"unknown task option(s) {sorted(unknown)} for {name}")
    bind = bool(options.get("bind", base.bind))
    attrs: dict[str, Any] = {
        **options,
        "app": app,
        "name": name,
        "_fun": staticmethod(fun),
        "run": fun if bind else staticmethod(fun),
        "is_coroutine": inspect.iscoroutinefunction(fun),
        "__doc__": fun.__doc__,
        "__module__": fun.__module__,
        "__qualname__": getattr(fun, "__qualname__", name),
    }
    for key in ("autoretry_for", "dont_autoretry_for"):
        if key in attrs:
            attrs[key] = tuple(attrs[key])
    return type(fun.__name__, (base,), attrs)


def _on_commit(send: Callable[[], Any], using: str | None = None) -> None:
    """Run ``send`` when Django's current transaction commits (Celery's DjangoTask)."""
    try:
        from django.db import transaction
    except ImportError:
        raise RuntimeError("delay_on_commit/apply_async_on_commit need Django "
                           "(they wait for a Django database transaction)") from None
    transaction.on_commit(send, using=using)
