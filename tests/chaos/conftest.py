"""Chaos fixtures: a Scenario per broker, the ``soak`` marker, and the results table.

Long tests carry ``@pytest.mark.soak`` and are skipped unless ``-m soak`` selects them
(``make chaos-soak``). Every ``Scenario.tally`` becomes a row of the table printed at
the end of the run (and written to $CHAOS_TABLE when set, for ``make chaos``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import REDIS_DB_URL, TABLE, Scenario
from tests.services import need_rabbitmq, need_redis

BROKERS = ["sqlite", "redis", "amqp"]


def amqp_available() -> bool:
    return importlib.util.find_spec("celeriac.brokers.amqp") is not None


def make_scenario(tmp_path: Path, broker: str) -> Iterator[Scenario]:
    """A Scenario on one broker; cleans up its keys and workers afterwards."""
    if broker == "sqlite":
        url = f"sqlite:///{tmp_path}/broker-{uuid.uuid4().hex[:8]}.db"
        scenario = Scenario(tmp_path, "sqlite", url)
        yield scenario
        scenario.close()
    elif broker == "redis":
        need_redis()
        prefix = f"chaos-{uuid.uuid4().hex[:8]}:"
        scenario = Scenario(tmp_path, "redis", REDIS_DB_URL, {"global_keyprefix": prefix})
        yield scenario
        scenario.close()
        drop_redis_keys(REDIS_DB_URL, prefix)
    else:
        if not amqp_available():
            pytest.skip("RabbitMQ broker not available yet: celeriac.brokers.amqp is not "
                        "importable (being written in src/celeriac/brokers/amqp*.py)")
        need_rabbitmq()
        scenario = Scenario(tmp_path, "rabbitmq", "amqp://guest:guest@127.0.0.1:5672//")
        yield scenario
        scenario.close()


def drop_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=BROKERS)
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scenario]:
    """The same fault on every broker: sqlite, redis, amqp (skips until it exists)."""
    yield from make_scenario(tmp_path, request.param)


@pytest.fixture
def sqlite_scenario(tmp_path: Path) -> Iterator[Scenario]:
    yield from make_scenario(tmp_path, "sqlite")


@pytest.fixture
def redis_scenario(tmp_path: Path) -> Iterator[Scenario]:
    yield from make_scenario(tmp_path, "redis")


@pytest.fixture
def redis_server_bin() -> str:
    need_redis()
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server is not installed")
    return path


def format_table() -> str:
    head = ("fault", "broker", "sent", "completed", "duplicates", "lost")
    rows = [head] + [(t.fault, t.broker, str(t.sent), str(t.completed), str(t.duplicates),
                      str(t.lost)) for t in TABLE]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TABLE:
        return
    table = format_table()
    terminalreporter.write_sep("=", "chaos: every task sent, counted")
    terminalreporter.write_line(table)
    out = os.environ.get("CHAOS_TABLE")
    if out:
        Path(out).write_text(table + "\n")
