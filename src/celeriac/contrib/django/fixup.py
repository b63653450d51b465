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


def maybe_install(app: Any) -> DjangoFixup | None:
    """The fix-up for this app, when it runs inside a Django project."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    if importlib.util.find_spec("django") is None:
        return None
    return DjangoFixup(app)
