"""Celery: the application. Configuration, the task registry, clients; sending tasks
is app/sending.py's part (``Sending``, which ``Celery`` inherits).

``from celeriac import Celery`` is the one line a Celery user changes. The app holds
``conf`` (celeriac.config), the tasks registered with ``@app.task``, and the clients it
publishes through. Sending a task: ``Task.apply_async`` -> ``Celery.send_task`` ->
``_build_message`` (routing and options) -> broker ``publish`` (or ``delay`` when the
task has a future eta) on the caller's loop, or on the bridge loop for sync callers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, overload

from celeriac import signals
from celeriac import task as _task
from celeriac.annotations import annotate
from celeriac.app.sending import Sending
from celeriac.backends import BACKEND_CLASSES, ResultBackend, create_backend
from celeriac.backends.base import BlockingWaiter, BlockingWaitUnsupported, Meta
from celeriac.bridge import BRIDGE, BlockingProducer, on_fork
from celeriac.brokers import BROKER_CLASSES, Broker, create_broker, load_class
from celeriac.clients import Clients
from celeriac.config import Config, default_sqlite_path, import_object, to_seconds
from celeriac.contrib.django.fixup import maybe_install as maybe_install_django_fixup
from celeriac.control.client import Control
from celeriac.result import AsyncResult
from celeriac.send_defaults import SendDefaults
from celeriac.task import Task, make_task_class
from celeriac.utils.dispatch import Signal

logger = logging.getLogger("celeriac.app")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_current: Celery | None = None
_all_apps: list[Celery] = []
_shared: list[tuple[Callable[..., Any], dict[str, Any]]] = []
#: an eta closer than this is sent as ready (workers run it at once anyway)
_ETA_SLACK_S = 0.001
#: one call in a bulk send: positional arguments and keyword arguments (or None)
Call = tuple[Sequence[Any], Mapping[str, Any] | None]
#: a task's own options that apply when apply_async does not give them
_TASK_OPTIONS = ("queue", "priority", "expires", "time_limit", "soft_time_limit",
                 "ignore_result", "serializer")


class TaskDecorator(Protocol):
    @overload
    def __call__(self, fun: Callable[P, Coroutine[Any, Any, R]]) -> Task[P, R]: ...
    @overload
    def __call__(self, fun: Callable[P, R]) -> Task[P, R]: ...


class BoundTaskDecorator(Protocol):
    @overload
    def __call__(self, fun: Callable[..., Coroutine[Any, Any, R]]) -> Task[..., R]: ...
    @overload
    def __call__(self, fun: Callable[..., R]) -> Task[..., R]: ...


def get_current_app() -> Celery:
    """The app most recently created (or a default one)."""
    global _current
    if _current is None:
        _current = Celery("default")
    return _current


class _CurrentApp:
    """Celery's ``current_app``: stands for the current app, so ``current_app.conf``
    and ``current_app.send_task(...)`` work as with Celery's proxy; calling it,
    ``current_app()``, returns the app itself (celeriac's earlier form)."""

    __slots__ = ()

    def __call__(self) -> Celery:
        return get_current_app()

    def _get_current_object(self) -> Celery:
        return get_current_app()

    def __getattr__(self, name: str) -> Any:
        return getattr(get_current_app(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(get_current_app(), name, value)

    def __repr__(self) -> str:
        return repr(get_current_app())


current_app = _CurrentApp()


class Celery(Sending):
    """The application. See the module docstring."""

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | None = None,
        backend: str | None = None,
        include: Iterable[str] | None = None,
        config_source: Any = None,
        task_cls: type[Task[Any, Any]] | str | None = None,
        set_as_current: bool = True,
        **settings: Any,
    ) -> None:
        global _current
        self.main = main or "__main__"
        self.conf = Config()
        if broker is not None:
            self.conf.broker_url = broker
        if backend is not None:
            self.conf.result_backend = backend
        if include is not None:
            self.conf.include = list(include)
        if config_source is not None:
            self.config_from_object(config_source)
        for key in ("loader", "amqp", "events", "log", "control", "fixups", "autofinalize",
                    "strict_typing", "namespace", "changes", "tasks"):
            settings.pop(key, None)  # Celery arguments with no meaning here
        self.conf.update(settings)
        if isinstance(task_cls, str):
            task_cls = import_object(task_cls)
        self.task_cls: type[Task[Any, Any]] = task_cls or Task  # type: ignore[assignment]
        self._tasks: dict[str, Task[Any, Any]] = {}
        self._autodiscover: list[tuple[Any, str]] = []
        self._finalized = False
        self._finalize_lock = threading.RLock()
        self.clients = Clients(self._new_broker, self._new_backend)
        #: [broker] sync callers publish through from their own thread ([None]: the
        #: broker cannot, they use the bridge loop); None until the first send
        self._producer: list[BlockingProducer | None] | None = None
        self._producer_lock = threading.Lock()
        #: (backend URL, backend sync callers wait through in their own thread, or None
        #: when it cannot: they wait on the bridge loop); None until the first get()
        self._waiter: tuple[str | None, BlockingWaiter | None] | None = None
        self._send_defaults: SendDefaults | None = None
        #: what changes inside a Django project (celeriac/contrib/django/fixup.py)
        self.django_fixup = maybe_install_django_fixup(self)
        #: Celery's app hooks: ``@app.on_after_configure.connect`` and friends
        self.on_configure = Signal("app.on_configure")
        self.on_after_configure = Signal("app.on_after_configure")
        self.on_after_finalize = Signal("app.on_after_finalize")
        self.on_after_fork = Signal("app.on_after_fork")  # sent in a forked child
        #: Celery's custom bootsteps: ``app.steps["worker"].add(MyStep)`` (and
        #: "consumer"); celeriac.bootsteps, run by worker/steps.py
        self.steps: defaultdict[str, set[type]] = defaultdict(set)
        on_fork(self._forget_producer)
        on_fork(self._after_fork)
        if set_as_current:
            _current = self
        _all_apps.append(self)
        for fun, options in _shared:
            self._register(fun, dict(options))

    def __repr__(self) -> str:
        return f"<Celery {self.main}:{id(self):#x}>"

    def _after_fork(self) -> None:
        self.on_after_fork.send(sender=self)

    def set_current(self) -> None:
        """Make this the current app (``current_app()``, what shared tasks send
        through), as Celery's ``app.set_current()``."""
        global _current
        _current = self

    def set_default(self) -> None:
        """Celery's ``app.set_default()``: celeriac has one current app for every
        thread, so this is ``set_current()``."""
        self.set_current()

    # -- configuration ----------------------------------------------------------------
    def config_from_object(self, obj: Any, silent: bool = False, force: bool = False,
                           namespace: str | None = None) -> None:
        """Load settings from a module path (``'celery_tasks.config'``), a
        ``'module:attr'`` path such as ``'django.conf:settings'``, or an object."""
        try:
            self.conf.from_object(obj, namespace=namespace)
        except ImportError:
            if not silent:
                raise
        self.clients.reset()
        self._forget_producer()

    def config_from_envvar(self, variable_name: str, silent: bool = False,
                           force: bool = False) -> None:
        import os

        path = os.environ.get(variable_name)
        if not path:
            if silent:
                return
            raise ImportError(f"environment variable {variable_name} is not set")
        self.config_from_object(path, silent=silent)

    @property
    def broker_url(self) -> str:
        """The broker URL in use: the configured one, or the app's embedded SQLite file."""
        url = self.conf.broker_url
        if not url or url in ("sqlite://", "sqlite:///"):
            return f"sqlite:///{default_sqlite_path(self.main)}"
        return str(url)

    @property
    def result_backend_url(self) -> str | None:
        """The result backend URL: configured, or the broker's own store on SQLite/memory."""
        url = self.conf.result_backend
        if url in ("sqlite://", "sqlite:///"):
            return self.broker_url if self.broker_url.startswith("sqlite") else \
                f"sqlite:///{default_sqlite_path(self.main)}"
        if url:
            return str(url)
        broker = self.broker_url
        return broker if broker.startswith(("sqlite:", "memory:")) else None

    def _new_broker(self) -> Broker:
        return create_broker(self.broker_url, self.broker_options())

    def _blocking_producer(self) -> BlockingProducer | None:
        """The broker sync callers publish through from their own thread, or None when
        this broker cannot (they then go through the bridge loop). See bridge.py."""
        slot = self._producer
        if slot is None:
            with self._producer_lock:
                slot = self._producer
                if slot is None:
                    url = self.broker_url
                    cls = load_class(BROKER_CLASSES, url, "broker")
                    producer = None
                    if issubclass(cls, BlockingProducer):
                        producer = cls(url, self.broker_options())
                    self._producer = slot = [producer]
        return slot[0]

    def _forget_producer(self) -> None:
        """After a fork or a new configuration: the next send opens a fresh producer,
        the next get() a fresh waiter."""
        self._producer = None
        self._producer_lock = threading.Lock()
        self._waiter = None

    def _blocking_waiter(self) -> BlockingWaiter | None:
        """The backend sync callers wait through in their own thread, or None (they
        wait on the bridge loop). Made again when the backend URL changed."""
        url = self.result_backend_url
        slot = self._waiter
        if slot is None or slot[0] != url:
            with self._producer_lock:
                slot = self._waiter
                if slot is None or slot[0] != url:
                    waiter = None
                    if url and url != "disabled":
                        cls = load_class(BACKEND_CLASSES, url, "result backend")
                        if issubclass(cls, BlockingWaiter):
                            waiter = cls(url, self._backend_options())
                    self._waiter = slot = (url, waiter)
        return slot[1]

    def wait_for_result(self, task_id: str, timeout_s: float | None) -> Meta | None:
        """Wait for a task's READY meta from sync code (None on timeout): in this thread
        where the backend can (Redis, rpc://), else on the bridge loop."""
        waiter = self._blocking_waiter()
        if waiter is not None:
            try:
                return waiter.wait_blocking(task_id, timeout_s)
            except BlockingWaitUnsupported as exc:
                logger.info("result waits go through the I/O thread: %s", exc)
                self._waiter = (self.result_backend_url, None)
        return self.run_sync(self._wait_on_loop(task_id, timeout_s))

    async def _wait_on_loop(self, task_id: str, timeout_s: float | None) -> Meta | None:
        backend = await self.clients.backend()
        return await backend.wait(task_id, timeout_s)

    def broker_options(self) -> dict[str, Any]:
        options = dict(self.conf.broker_transport_options or {})
        options.setdefault("connect_timeout", to_seconds(self.conf.broker_connection_timeout))
        if self.conf.task_queues:
            options.setdefault("queues", self.conf.task_queues)
        return options

    def _new_backend(self) -> ResultBackend:
        return create_backend(self.result_backend_url, self._backend_options())

    def _backend_options(self) -> dict[str, Any]:
        options = dict(self.conf.result_backend_transport_options or {})
        conf = self.conf  # how results are written and which are read (backends/codec.py)
        options["result_serializer"] = conf.result_serializer
        options["result_accept_content"] = conf.result_accept_content or conf.accept_content
        if self._rpc_results():  # rpc:// talks to the broker (backends/rpc.py)
            options.setdefault("broker_url", self.broker_url)
            options.setdefault("broker_options", self.broker_options())
        return options

    def _rpc_results(self) -> bool:
        return str(self.conf.result_backend or "").startswith("rpc://")

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run one of the app's coroutines from sync code (on the bridge loop)."""
        return BRIDGE.run(coro, timeout_s)

    # -- tasks ------------------------------------------------------------------------
    @overload
    def task(self, fun: Callable[P, Coroutine[Any, Any, R]]) -> Task[P, R]: ...
    @overload
    def task(self, fun: Callable[P, R]) -> Task[P, R]: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> BoundTaskDecorator: ...
    @overload
    def task(self, *, bind: Literal[False] = ..., **options: Any) -> TaskDecorator: ...

    def task(self, fun: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(bind=True, ...)``."""
        if fun is not None and callable(fun) and not options:
            return self._register(fun, {})

        def decorate(f: Callable[..., Any]) -> Task[Any, Any]:
            return self._register(f, dict(options))

        return decorate

    def _register(self, fun: Callable[..., Any], options: dict[str, Any]) -> Task[Any, Any]:
        base = options.pop("base", None) or self.task_cls
        options.pop("shared", None)
        name = options.pop("name", None) or self.gen_task_name(fun)
        cls = make_task_class(self, fun, name, base, options)
        task = cls()
        self._tasks[name] = task
        if self._finalized and self.conf.task_annotations:
            annotate(self.conf.task_annotations, [task])
        return task

    def register_task(self, task: Any) -> Any:
        """Register a class-based task (a Task subclass or instance with ``run``)."""
        from celeriac.task_state import register_class_task

        registered = register_class_task(self, task)
        if self._finalized and self.conf.task_annotations:
            annotate(self.conf.task_annotations, [registered])
        return registered

    def gen_task_name(self, fun: Callable[..., Any]) -> str:
        module = fun.__module__
        if module == "__main__" and self.main != "__main__":
            module = self.main
        return f"{module}.{fun.__name__}"

    @property
    def tasks(self) -> dict[str, Task[Any, Any]]:
        """Registered tasks by name (imports autodiscovered modules on first use)."""
        self.finalize()
        return self._tasks

    def autodiscover_tasks(self, packages: Iterable[str] | Callable[[], Iterable[str]] | None
                           = None, related_name: str = "tasks", force: bool = False) -> None:
        """Import ``<package>.<related_name>`` for each package when tasks are needed
        (at once with ``force=True``), as Celery does. No packages inside Django: every
        app in INSTALLED_APPS."""
        self._autodiscover.append((packages, related_name))
        if force or self._finalized:
            self._import_discovered()

    def _import_discovered(self) -> None:
        pending, self._autodiscover = self._autodiscover, []
        for packages, related_name in pending:
            if packages is None:
                fixup = self.django_fixup
                packages = fixup.app_packages if fixup is not None else ()
            names = packages() if callable(packages) else packages
            for package in names:
                module = f"{package}.{related_name}" if related_name else package
                try:
                    importlib.import_module(module)
                except ModuleNotFoundError as exc:
                    if exc.name != module:
                        raise  # the tasks module exists but imports something missing

    def finalize(self) -> None:
        """Import ``imports``/``include`` modules and autodiscovered task modules. The
        configuration is complete here, so ``on_configure``/``on_after_configure`` fire
        first, then ``on_after_finalize`` once the tasks are registered."""
        with self._finalize_lock:
            if self._finalized:
                return
            self._finalized = True
            from celeriac.builtins import register_builtins

            register_builtins(self)
            if self.django_fixup is not None:
                self.django_fixup.setup()  # task modules may import models
            self.on_configure.send(sender=self)
            self.on_after_configure.send(sender=self, source=self.conf)
            for module in [*self.conf.imports, *self.conf.include]:
                importlib.import_module(module)
            self._import_discovered()
            signals.send(signals.import_modules, self)
            annotate(self.conf.task_annotations, self._tasks.values())
            self.on_after_finalize.send(sender=self)

    def add_periodic_task(self, schedule: Any, sig: Any, args: Any = (), kwargs: Any = None,
                          name: str | None = None, **options: Any) -> str:
        """Add a ``beat_schedule`` entry for a signature (``add.s(2, 2)``) or task, as
        Celery's: the entry is named ``name`` or after the call; returns the name."""
        from celeriac.canvas import Signature

        if isinstance(sig, Signature):
            task = sig["task"]
            call_args = [*args, *sig.get("args", ())]
            call_kwargs = {**sig.get("kwargs", {}), **(kwargs or {})}
            call_options = {**sig.get("options", {}), **options}
        else:
            task = getattr(sig, "name", sig)
            call_args, call_kwargs, call_options = list(args), dict(kwargs or {}), options
        key = name or _call_repr(task, call_args, call_kwargs)
        entries = dict(self.conf.beat_schedule or {})
        entries[key] = {"schedule": schedule, "task": task, "args": tuple(call_args),
                        "kwargs": call_kwargs, "options": call_options}
        self.conf.beat_schedule = entries
        return key

    # -- sending ----------------------------------------------------------------------
    def send_defaults(self) -> SendDefaults:
        """The settings a send reads, re-read only after ``conf`` changed."""
        cached = self._send_defaults
        if cached is None or cached.revision != self.conf.revision:
            broker = load_class(BROKER_CLASSES, self.broker_url, "broker")
            self._send_defaults = cached = SendDefaults.read(self.conf,
                                                             broker.shared_delay_store)
        return cached

    def close(self) -> None:
        """Celery's ``app.close()``, also run on leaving ``with app:``: wait for the
        broker's answer to this process's sync publishes (raising what it refused, as
        ``wait_for_publishes``), then close the app's connections. The app stays usable:
        the next call connects again."""
        with self._producer_lock:
            slot, self._producer = self._producer, None
        if slot is not None and slot[0] is not None:
            slot[0].close_blocking()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and waiter[1] is not None:
            waiter[1].close_blocking()
        if BRIDGE.started:
            self.run_sync(self.clients.close())

    async def aclose(self) -> None:
        """``close()`` for async apps (FastAPI's lifespan, an aiohttp cleanup): close the
        connections ``adelay()``/``aget()`` opened on the running loop, then what sync
        calls opened (in a thread, so the loop is not blocked)."""
        await self.clients.close()
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Celery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- time -------------------------------------------------------------------------
    @property
    def timezone(self) -> dt.tzinfo:
        """``conf.timezone`` as a tzinfo (UTC when unset)."""
        from celeriac.schedules import zone

        return zone(self.conf.timezone)

    def now(self) -> dt.datetime:
        """The current time, aware, in the app's time zone (Celery's ``app.now()``)."""
        return dt.datetime.now(self.timezone)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult[Any]:
        return AsyncResult(task_id, app=self, **kwargs)

    def GroupResult(self, id: str | None = None, results: Any = None, **kwargs: Any) -> Any:
        """``celeriac.result_group.GroupResult`` bound to this app."""
        from celeriac.result_group import GroupResult

        return GroupResult(id, results, app=self, **kwargs)

    def bugreport(self) -> str:
        """Versions, platform and changed settings, for a bug report (celeriac/report.py)."""
        from celeriac.report import report_text

        return report_text(self)

    @property
    def control(self) -> Control:
        """Remote control of the workers (``celeriac.control.client``)."""
        control: Control | None = self.__dict__.get("_control")
        if control is None:
            control = self.__dict__["_control"] = Control(self)
        return control

    # -- running a worker -------------------------------------------------------------
    def Worker(self, **options: Any) -> Any:
        """A worker for this app (``celeriac.worker.Worker``), not yet started."""
        from celeriac.worker.worker import Worker

        return Worker(self, **options)

    def worker_main(self, argv: list[str] | None = None) -> None:
        """Run the worker command line for this app (``app.worker_main(['worker'])``)."""
        from celeriac.cli.main import run_cli_for_app

        run_cli_for_app(self, argv or ["worker"])

    start = worker_main

    # after every annotation that names the Task class: this property shadows it here
    @property
    def Task(self) -> type[_task.Task[Any, Any]]:
        """The app's task class bound to the app: ``class MyTask(app.Task)``. Assign a
        class to make it the base of every task the app makes afterwards."""
        from celeriac.task_state import bind_task_class

        bound = self.__dict__.get("_bound_task_cls")
        if bound is None or bound._bound_base is not self.task_cls:
            bound = self.__dict__["_bound_task_cls"] = bind_task_class(self, self.task_cls)
        return bound

    @Task.setter
    def Task(self, cls: type[_task.Task[Any, Any]]) -> None:
        self.task_cls = cls


def _call_repr(task: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """``tasks.add(2, 2)``: how Celery names an entry added without a name."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{task}({', '.join(parts)})"


def shared_task(*args: Any, **options: Any) -> Any:
    """``@shared_task``: a task registered with every app, now and later created. What
    it returns stands for the current app's copy (app/shared.py), as Celery's proxy."""
    from celeriac.app.shared import SharedTask

    def decorate(fun: Callable[..., Any]) -> Task[Any, Any]:
        _shared.append((fun, options))
        for app in _all_apps:
            app._register(fun, dict(options))
        return SharedTask(fun, options.get("name"))  # type: ignore[return-value]

    if len(args) == 1 and callable(args[0]) and not options:
        return decorate(args[0])
    return decorate


def new_task_id() -> str:
    return str(uuid.uuid4())
