"""Result backends by URL scheme."""

from __future__ import annotations

from typing import Any

from celeriac.backends.base import DisabledBackend, Meta, ResultBackend
from celeriac.brokers import load_class

BACKEND_CLASSES = {
    "memory": "celeriac.backends.memory:MemoryBackend",
    # Celery's in-process cache backend, which test configurations name
    "cache+memory": "celeriac.backends.memory:MemoryBackend",
    "sqlite": "celeriac.backends.sqlite:SQLiteBackend",
    "redis": "celeriac.backends.redis:RedisBackend",
    "rediss": "celeriac.backends.redis:RedisBackend",
    "redis+socket": "celeriac.backends.redis:RedisBackend",
    "sentinel": "celeriac.backends.redis:RedisBackend",
    "rpc": "celeriac.backends.rpc:RPCBackend",
    # Celery's SQLAlchemy URLs: celeriac's own table, no SQLAlchemy (backends/postgres.py)
    "db+sqlite": "celeriac.backends.sqlite:SQLiteBackend",
    "db+postgresql": "celeriac.backends.postgres:PostgresBackend",
    "db+postgres": "celeriac.backends.postgres:PostgresBackend",
    "db+postgresql+psycopg": "celeriac.backends.postgres:PostgresBackend",
    "db+postgresql+psycopg2": "celeriac.backends.postgres:PostgresBackend",
    # results in the Django project's database (celeriac/contrib/django/backend.py)
    "django-db": "celeriac.contrib.django.backend:DjangoBackend",
}


def create_backend(url: str | None, options: dict[str, Any] | None = None) -> ResultBackend:
    """The result backend for a URL (None or '' -> disabled), not yet connected."""
    if not url or url == "disabled":
        return DisabledBackend("disabled")
    cls = load_class(BACKEND_CLASSES, url, "result backend")
    backend: ResultBackend = cls(url, options)
    return backend


__all__ = ["BACKEND_CLASSES", "DisabledBackend", "Meta", "ResultBackend", "create_backend"]
