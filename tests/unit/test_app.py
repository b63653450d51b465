"""Sending: message fields, routing precedence, delays into the broker, results, drain()."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path

import pytest

from celeriac import Celery, Task, shared_task
from celeriac.protocol import parse_task
from celeriac.testing import drain, memory_app

ACCEPT = frozenset({"application/json"})


@pytest.fixture
def app() -> Celery:
    return memory_app("apptest")


def fetch_all(app: Celery, queue: str = "celery") -> list:
    async def go() -> list:
        broker = await app.clients.broker()
        got = await broker.fetch([queue], 100, 0)
        await broker.ack(got)
        await app.clients.close()
        return got

    return asyncio.run(go())


def test_delay_publishes_a_protocol_v2_message(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    [delivery] = fetch_all(app)
    call = parse_task(delivery.message, ACCEPT)
    assert call.id == result.id and call.name == add.name
    assert call.args == [2, 3] and call.kwargs == {}
    headers = delivery.message.headers
    assert headers["lang"] == "py" and headers["root_id"] == result.id
    assert headers["argsrepr"] == "(2, 3)" and headers["retries"] == 0
    assert delivery.message.properties["correlation_id"] == result.id


def test_apply_async_options_land_in_the_message(app: Celery) -> None:
    @app.task
    def f(**kw: object) -> None: ...

    f.apply_async(kwargs={"a": 1}, queue="q1", priority=7, task_id="fixed",
                  headers={"x-trace": "t1"}, expires=60, time_limit=30,
                  soft_time_limit=20, ignore_result=True)
    [d] = fetch_all(app, "q1")
    h = d.message.headers
    assert h["id"] == "fixed" and h["x-trace"] == "t1" and h["timelimit"] == [30, 20]
    assert h["ignore_result"] is True and d.message.priority == 7
    expires = dt.datetime.fromisoformat(h["expires"])
    assert 55 < (expires - dt.datetime.now(dt.UTC)).total_seconds() <= 60
    assert 55_000 < int(d.message.properties["expiration"]) <= 60_000


def test_routing_precedence(app: Celery) -> None:
    app.conf.task_routes = {"routed.*": {"queue": "from_routes"}, "plain": "q_plain"}

    @app.task(name="routed.own", queue="from_task")
    def own() -> None: ...

    @app.task(name="routed.other")
    def other() -> None: ...

    @app.task(name="plain")
    def plain() -> None: ...

    own.delay()
    other.delay()
    plain.delay()
    own.apply_async(queue="explicit")
    assert len(fetch_all(app, "from_task")) == 1
    assert len(fetch_all(app, "from_routes")) == 1
    assert len(fetch_all(app, "q_plain")) == 1
    assert len(fetch_all(app, "explicit")) == 1


def test_countdown_goes_to_the_delay_store_not_the_queue(app: Celery) -> None:
    @app.task
    def later() -> None: ...

    later.apply_async(countdown=3600)
    assert fetch_all(app) == []
    assert drain(app) == 1  # drain releases delayed messages at once


def test_send_task_by_name_and_results_through_drain(app: Celery) -> None:
    @app.task(name="math.add")
    def add(x: int, y: int) -> int:
        return x + y

    result = app.send_task("math.add", (20, 22))
    assert result.state == "PENDING" and not result.ready()
    assert drain(app) == 1
    assert result.get(timeout=1) == 42 and result.state == "SUCCESS"
    assert result.successful() and not result.failed() and result.traceback is None
    result.forget()
    assert result.state == "PENDING"


def test_drain_reraises_task_errors_with_their_type(app: Celery) -> None:
    @app.task
    def boom() -> None:
        raise LookupError("no such thing")

    result = boom.delay()
    with pytest.raises(LookupError, match="no such thing"):
        drain(app)
    assert result.failed()
    with pytest.raises(LookupError):
        result.get(timeout=1)
    assert "LookupError" in (result.traceback or "")
    assert isinstance(result.result, LookupError)


def test_retry_and_chain_run_through_drain(app: Celery) -> None:
    tries: list[int] = []

    @app.task(bind=True, name="flaky")
    def flaky(self: Task, x: int) -> int:
        tries.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(countdown=3600)  # drain does not wait
        return x * 2

    @app.task(name="inc")
    def inc(x: int) -> int:
        return x + 1

    last = (flaky.s(5) | inc.s() | inc.s()).apply_async()
    drain(app)
    assert tries == [0, 1, 2]
    # as Celery: a chain's result is its last step's, the steps before are its parents
    assert last.get(timeout=1) == 12
    assert last.parent.get(timeout=1) == 11
    assert last.parent.parent.get(timeout=1) == 10
    assert drain(app) == 0


def test_awaitable_twins(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async def client() -> str:
        result = await add.adelay(1, 1)
        return result.id

    task_id = asyncio.run(client())
    drain(app)

    async def read() -> int:
        return await app.AsyncResult(task_id).aget(timeout=1)

    assert asyncio.run(read()) == 2


def test_get_times_out_with_celeriac_timeout_error(app: Celery) -> None:
    from celeriac import TimeoutError

    @app.task
    def never() -> None: ...

    with pytest.raises(TimeoutError):
        never.delay().get(timeout=0.2)


def test_autodiscover_imports_tasks_modules_lazily(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj_ad"
    (root / "sms").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sms" / "__init__.py").write_text("")
    (root / "empty").mkdir()
    (root / "empty" / "__init__.py").write_text("")  # a package with no tasks module
    (root / "main.py").write_text(
        "from celeriac import Celery\napp = Celery('ad', broker='memory://ad')\n"
        "app.autodiscover_tasks(['proj_ad.sms', 'proj_ad.empty'])\n")
    (root / "sms" / "tasks.py").write_text(
        "from proj_ad.main import app\n@app.task(name='send')\ndef send():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from proj_ad.main import app as discovered  # type: ignore[import-not-found]

    assert "proj_ad.sms.tasks" not in sys.modules  # not imported yet: no circular import
    assert "send" in discovered.tasks
    assert "proj_ad.sms.tasks" in sys.modules


def test_shared_task_registers_with_apps() -> None:
    @shared_task(name="shared.ping")
    def ping() -> str:
        return "pong"

    later = memory_app("later")
    assert "shared.ping" in later.tasks
    assert ping() == "pong"


def test_a_shared_task_sends_through_the_app_current_when_it_is_called() -> None:
    """As Celery's proxy: a test worker's app made current gets the shared task's sends,
    not the app that existed when the module was imported."""
    import celeriac.app.base as base

    before = base._current
    first = memory_app("first")
    first.set_current()

    @shared_task(name="shared.where")
    def where() -> str:
        return "here"

    second = memory_app("second")
    try:
        assert where.app is first
        second.set_current()
        assert where.app is second and where.name == "shared.where"
        assert isinstance(where, Task)
        where.delay()
        assert [d.message.task_name for d in fetch_all(second)] == ["shared.where"]
        assert fetch_all(first) == []
        second.set_default()
        assert base.current_app() is second
    finally:
        base._current = before


def test_without_the_delay_store_countdown_goes_to_the_queue_with_an_eta(app: Celery) -> None:
    """For a fleet of Celery workers only: they hold eta tasks themselves."""
    app.conf.broker_delay_store = False

    @app.task
    def later() -> None: ...

    later.apply_async(countdown=3600)
    [d] = fetch_all(app)
    eta = dt.datetime.fromisoformat(d.message.headers["eta"])
    assert 3590 < (eta - dt.datetime.now(dt.UTC)).total_seconds() <= 3600


@pytest.mark.parametrize(("url", "default"), [
    ("redis://127.0.0.1:6379/0", False),  # only celeriac workers promote _celeriac.delayed
    ("amqp://guest:guest@127.0.0.1//", True),  # RabbitMQ's delay levels reach any worker
    ("memory://", True), ("sqlite:///x.db", True)])  # no Celery worker reads these
def test_where_countdowns_go_by_default_and_when_chosen(url: str, default: bool) -> None:
    app = Celery("where", broker=url, set_as_current=False)
    assert app.send_defaults().delay_store is default
    app.conf.broker_delay_store = not default
    assert app.send_defaults().delay_store is (not default)


def test_with_app_closes_its_connections_and_the_app_stays_usable(tmp_path: Path) -> None:
    """Celery's ``app.close()`` and ``with app:`` exist, close, and lose nothing."""
    with Celery("closing", broker=f"sqlite:///{tmp_path}/c.db", set_as_current=False) as app:
        app.send_task("t.a")
        producer = app._blocking_producer()
        assert producer is not None and producer._conn is not None  # type: ignore[attr-defined]
        assert app.run_sync(app.clients.broker()) is not None
    assert producer._conn is None  # type: ignore[attr-defined]
    assert app._producer is None and not app.clients._by_loop
    app.send_task("t.b")  # opens a new connection
    assert [parse_task(d.message, ACCEPT).name for d in fetch_all(app)] == ["t.a", "t.b"]
    app.close()
