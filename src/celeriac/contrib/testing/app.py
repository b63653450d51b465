"""Apps for tests (Celery's ``celery.contrib.testing.app``).

``TestApp`` is an app on an in-memory broker and result store of its own (Celery's test
app uses the process-wide ``memory://``; a store per app keeps one test's messages
out of the next test's worker). ``setup_default_app`` puts the current app back when
the block ends, and with ``use_trap`` makes any use of the current app raise, to catch
code that does not pass its app along.
"""

from __future__ import annotations

import contextlib
import uuid
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import celeriac.app.base as _state
from celeriac.app import Celery

#: what every test app starts from (Celery's DEFAULT_TEST_CONFIG, without the settings
#: celeriac does not have: worker_log_color, broker_heartbeat); these two memory:// URLs
#: get a private store name per app (one the configuration gives is used as it is)
DEFAULT_TEST_CONFIG: dict[str, Any] = {
    "worker_hijack_root_logger": False,
    "accept_content": ["json"],
    "enable_utc": True,
    "timezone": "UTC",
    "broker_url": "memory://",
    "result_backend": "memory://",
}

#: test apps made with enable_logging=False: their workers leave logging alone
_quiet_apps: weakref.WeakSet[Celery] = weakref.WeakSet()


def logging_enabled(app: Celery) -> bool:
    """Whether a worker for ``app`` sets up logging (not for a quiet TestApp)."""
    return app not in _quiet_apps


class Trap:
    """Stands in for the current app and raises on any use (the app trap)."""

    def __getattr__(self, name: str) -> Any:
        if name in ("_is_coroutine", "__func__"):  # unittest.mock inspects these
            return None
        raise RuntimeError(f"Test depends on current_app (it read {name!r})")


def TestApp(name: str | None = None, config: Mapping[str, Any] | None = None,
            enable_logging: bool = False, set_as_current: bool = False,
            log: Any = None, backend: str | None = None, broker: str | None = None,
            **kwargs: Any) -> Celery:
    """An app for tests: DEFAULT_TEST_CONFIG, then ``config``; ``broker``/``backend``
    (or ``kwargs``) as ``Celery()`` takes them. The ``celery.ping`` task is registered."""
    from celeriac.contrib.testing import tasks  # noqa: F401  # registers celery.ping

    # the default memory:// URLs get a store of this app's own; a memory:// that the
    # configuration names is the process's shared one, as other apps may send there
    private = f"memory://test-{uuid.uuid4().hex}"
    settings = {**DEFAULT_TEST_CONFIG, "broker_url": private, "result_backend": private,
                **(config or {})}
    if broker is not None:
        settings.pop("broker_url")
    if backend is not None:
        settings.pop("result_backend")
    app = Celery(name or "celeriac.tests", broker=broker, backend=backend,
                 set_as_current=set_as_current, **kwargs)
    app.conf.update(settings)
    if not enable_logging:
        _quiet_apps.add(app)
    return app


@contextlib.contextmanager
def set_trap(app: Celery) -> Iterator[None]:
    """Within the block, the current app is a Trap."""
    previous = _state._current
    _state._current = Trap()  # type: ignore[assignment]
    try:
        yield
    finally:
        _state._current = previous


@contextlib.contextmanager
def setup_default_app(app: Celery, use_trap: bool = False) -> Iterator[None]:
    """Run the block, then restore the current app, drop ``app`` from the apps shared
    tasks register with, and close its connections."""
    previous = _state._current
    try:
        if use_trap:
            with set_trap(app):
                yield
        else:
            yield
    finally:
        _state._current = previous
        with contextlib.suppress(ValueError):
            _state._all_apps.remove(app)
        if app is not previous:
            app.close()
