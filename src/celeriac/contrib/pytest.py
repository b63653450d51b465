"""The pytest plugin: Celery's fixtures (``celery.contrib.pytest``) under celeriac's names.

Loaded automatically (celeriac's ``pytest11`` entry point, contrib.pytest_autoload, lists this
module in its ``pytest_plugins``, so it is registered under this module's name and a
conftest's ``pytest_plugins = ("celeriac.contrib.pytest",)`` or ``-p
celeriac.contrib.pytest`` finds it already there). With ``-p no:celeriac`` or
PYTEST_DISABLE_PLUGIN_AUTOLOAD, enable it as Celery's: ``pytest_plugins`` or ``-p``.

Override the session fixtures in a conftest to configure what the others make:
``celeriac_config`` (settings), ``celeriac_parameters`` (``Celery()`` arguments),
``celeriac_includes`` (modules to import), ``celeriac_worker_pool`` (``'solo'``),
``celeriac_worker_parameters`` (Celery's worker arguments, ``shutdown_timeout``, ...),
``celeriac_enable_logging``, ``use_celeriac_app_trap``, ``celeriac_class_tasks``.
``@pytest.mark.celeriac(**settings)`` overrides settings for one test or class.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from celeriac.app import Celery
from celeriac.contrib.testing.app import TestApp, setup_default_app
from celeriac.contrib.testing.worker import TestWorkController, start_worker

#: set: the worker fixtures start no worker (the tests use one running elsewhere)
NO_WORKER = os.environ.get("NO_WORKER")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``celeriac`` marker (for ``--strict-markers`` and ``--markers``)."""
    config.addinivalue_line(
        "markers", "celeriac(**overrides): override celeriac configuration for a test case")


@contextlib.contextmanager
def _create_app(enable_logging: bool = False, use_trap: bool = False,
                parameters: Mapping[str, Any] | None = None,
                **config: Any) -> Iterator[Celery]:
    app = TestApp(set_as_current=False, enable_logging=enable_logging, config=config,
                  **dict(parameters or {}))
    with setup_default_app(app, use_trap=use_trap):
        yield app


def _marked_config(request: pytest.FixtureRequest, config: Mapping[str, Any]
                   ) -> dict[str, Any]:
    mark = request.node.get_closest_marker("celeriac")
    return {**config, **(mark.kwargs if mark else {})}


def _import(modules: Sequence[str]) -> None:
    for module in modules:
        importlib.import_module(module)


@pytest.fixture(scope="session")
def use_celeriac_app_trap() -> bool:
    """Override to return True: any use of the current app raises (the app trap)."""
    return False


@pytest.fixture(scope="session")
def celeriac_enable_logging() -> bool:
    """Override to return True: embedded workers set up logging as the CLI does."""
    return False


@pytest.fixture(scope="session")
def celeriac_includes() -> Sequence[str]:
    """Override: modules to import (task modules, signal handlers) for the test apps."""
    return ()


@pytest.fixture(scope="session")
def celeriac_worker_pool() -> str:
    """Override: the embedded workers' pool (``'solo'``; ``'threads'``, ``'prefork'``)."""
    return "solo"


@pytest.fixture(scope="session")
def celeriac_config() -> Mapping[str, Any]:
    """Override: settings for the test apps, over the in-memory defaults."""
    return {}


@pytest.fixture(scope="session")
def celeriac_parameters() -> Mapping[str, Any]:
    """Override: arguments for ``Celery()`` when the test apps are made."""
    return {}


@pytest.fixture(scope="session")
def celeriac_worker_parameters() -> Mapping[str, Any]:
    """Override: arguments for the embedded workers (Celery's: ``queues``,
    ``shutdown_timeout``, ``without_heartbeat``, ``perform_ping_check``, ...)."""
    return {}


@pytest.fixture(scope="session")
def celeriac_class_tasks() -> Sequence[Any]:
    """Override: class-based tasks the session worker's app registers."""
    return []


@pytest.fixture(scope="session")
def celeriac_session_app(request: pytest.FixtureRequest, celeriac_config: Mapping[str, Any],
                         celeriac_parameters: Mapping[str, Any],
                         celeriac_enable_logging: bool, use_celeriac_app_trap: bool,
                         celeriac_includes: Sequence[str]) -> Iterator[Celery]:
    """An app for the whole session, made current unless the app trap is on."""
    with _create_app(enable_logging=celeriac_enable_logging, use_trap=use_celeriac_app_trap,
                     parameters=celeriac_parameters,
                     **_marked_config(request, celeriac_config)) as app:
        _import(celeriac_includes)
        if not use_celeriac_app_trap:
            app.set_default()
            app.set_current()
        yield app


@pytest.fixture(scope="session")
def celeriac_session_worker(celeriac_session_app: Celery, celeriac_includes: Sequence[str],
                            celeriac_class_tasks: Sequence[Any], celeriac_worker_pool: str,
                            celeriac_worker_parameters: Mapping[str, Any]
                            ) -> Iterator[TestWorkController | None]:
    """A worker for ``celeriac_session_app``, running for the whole session."""
    if NO_WORKER:
        yield None
        return
    _import(celeriac_includes)
    for task in celeriac_class_tasks:
        celeriac_session_app.register_task(task)
    with start_worker(celeriac_session_app, pool=celeriac_worker_pool,
                      **celeriac_worker_parameters) as worker:
        yield worker


@pytest.fixture
def celeriac_app(request: pytest.FixtureRequest, celeriac_config: Mapping[str, Any],
                 celeriac_parameters: Mapping[str, Any], celeriac_enable_logging: bool,
                 use_celeriac_app_trap: bool, celeriac_includes: Sequence[str]
                 ) -> Iterator[Celery]:
    """An app for one test: in-memory broker and results of its own, then
    ``celeriac_config`` and the ``celeriac`` marker's settings; ``celeriac_includes``
    imported. The current app is put back afterwards."""
    with _create_app(enable_logging=celeriac_enable_logging, use_trap=use_celeriac_app_trap,
                     parameters=celeriac_parameters,
                     **_marked_config(request, celeriac_config)) as app:
        _import(celeriac_includes)
        yield app


@pytest.fixture
def celeriac_worker(celeriac_app: Celery, celeriac_includes: Sequence[str],
                    celeriac_worker_pool: str,
                    celeriac_worker_parameters: Mapping[str, Any]
                    ) -> Iterator[TestWorkController | None]:
    """A real worker for ``celeriac_app`` in a thread, stopped when the test returns."""
    if NO_WORKER:
        yield None
        return
    _import(celeriac_includes)
    with start_worker(celeriac_app, pool=celeriac_worker_pool,
                      **celeriac_worker_parameters) as worker:
        yield worker


@pytest.fixture
def depends_on_current_app(celeriac_app: Celery) -> None:
    """Make ``celeriac_app`` the current app (for code that uses ``current_app()``)."""
    celeriac_app.set_current()
