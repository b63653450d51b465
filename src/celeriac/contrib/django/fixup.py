"""Celery's Django fix-up, for celeriac: what an app does differently inside Django.

Installed by ``Celery()`` when ``DJANGO_SETTINGS_MODULE`` is set and Django imports
(``maybe_install``). It then:
- calls ``django.setup()`` when the app finalizes (before ``imports``/autodiscovered task
  modules load, which may import models), so ``celeriac -A proj worker`` needs nothing
  else;
- makes ``autodiscover_tasks()`` with no packages mean every app in INSTALLED_APPS;
- closes stale database connections before and after each task in the process and
  thread that runs it (``close_old_connections``, as Django does around a request), and
  drops the connections a prefork child inherited from its parent.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

logger = logging.getLogger("celeriac.django")

#: connections a prefork child inherited: kept referenced so they are never finalized
#: (a psycopg connection closed in the child would end the parent's session)
_INHERITED: list[Any] = []


class DjangoFixup:
    """See the module docstring."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def setup(self) -> None:
        import django

        django.setup()

    def app_packages(self) -> list[str]:
        """The INSTALLED_APPS, as ``autodiscover_tasks()`` with no arguments reads them."""
        from django.apps import apps

        self.setup()
        return [config.name for config in apps.get_app_configs()]

    @staticmethod
    def close_old_connections() -> None:
        """Before and after a task: drop connections past CONN_MAX_AGE or broken."""
        from django.db import close_old_connections

        close_old_connections()

    @staticmethod
    def close_inherited_connections() -> None:
        """In a new prefork child: the parent's sockets must not be shared; forget them
        without a goodbye on the wire (that would close the parent's session)."""
        from django.db import connections

        for conn in connections.all(initialized_only=True):
            if conn.connection is not None:
                _INHERITED.append(conn.connection)
                conn.connection = None


def _around_task(sender: Any = None, task: Any = None, **_: Any) -> None:
    """task_prerun / task_postrun: not for eager calls (they run inside the caller's
    own request and transaction)."""
    request = getattr(task, "request", None)
    if not getattr(request, "is_eager", False):
        DjangoFixup.close_old_connections()


def _in_new_child(**_: Any) -> None:
    DjangoFixup.close_inherited_connections()


def maybe_install(app: Any) -> DjangoFixup | None:
    """The fix-up for this app, when it runs inside a Django project: its signal
    receivers are connected once per process, whichever app installs it first."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    if importlib.util.find_spec("django") is None:
        return None
    from celeriac import signals

    signals.task_prerun.connect(_around_task, weak=False, dispatch_uid="celeriac.django")
    signals.task_postrun.connect(_around_task, weak=False, dispatch_uid="celeriac.django")
    signals.worker_process_init.connect(_in_new_child, weak=False,
                                        dispatch_uid="celeriac.django")
    return DjangoFixup(app)
