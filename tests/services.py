"""Reaching the real servers tests use: skip with a reason locally, fail in CI.

``.ci/run`` sets CELERIAC_REQUIRE_SERVICES=1 after making sure the services answer;
then a server that is down fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672


def services_required() -> bool:
    return os.environ.get("CELERIAC_REQUIRE_SERVICES", "") not in ("", "0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_server(name: str, host: str, port: int) -> None:
    """Skip (or fail under CELERIAC_REQUIRE_SERVICES=1) when the server is not there."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable at {host}:{port} (see DEVELOPERS.md to start it)"
    if services_required():
        pytest.fail(reason + " and CELERIAC_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


def need_redis() -> None:
    need_server("Redis", REDIS_HOST, REDIS_PORT)


def need_rabbitmq() -> None:
    need_server("RabbitMQ", AMQP_HOST, AMQP_PORT)


POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
#: the role every PostgreSQL install has; the machines here trust local TCP connections
POSTGRES_ADMIN_URL = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"


def need_postgres() -> None:
    need_server("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
