"""Remote control and durable revokes on the memory broker (the contract's reference):
a real Worker in a thread, driven through ``app.control`` as a user would."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson

from celeriac import Celery, states
from celeriac.control import wire
from celeriac.control.node import ControlNode
from celeriac.errors import TaskRevokedError
from celeriac.protocol import Message
from celeriac.testing import memory_app, worker_thread

HOST = "w1@test"
RAN: list[str] = []


def make_app(**settings: Any) -> Celery:
    app = memory_app(**settings)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.mark")
    def mark(tag: str) -> str:
        RAN.append(tag)
        return tag

    @app.task(name="t.nap")
    async def nap(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "woke"

    return app


def wait_online(app: Celery, host: str = HOST, timeout_s: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.3)
        if any(host in r for r in replies):
            return replies
    raise AssertionError(f"{host} never answered ping")


def wait_state(app: Celery, task_id: str, wanted: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        state = app.AsyncResult(task_id).state
        if state == wanted:
            return state
        time.sleep(0.05)
    return state


def test_ping_inspect_and_reply_shapes() -> None:
    app = make_app()
    with worker_thread(app, pool="asyncio", hostname=HOST):
        assert wait_online(app) == [{HOST: {"ok": "pong"}}]
        assert app.control.inspect(destination=["nobody@x"], timeout=0.3).ping() is None
        app.tasks["t.add"].delay(1, 2).get(timeout=10)
        inspect = app.control.inspect(timeout=1.0)
        stats = inspect.stats()
        assert stats is not None
        mine = stats[HOST]
        assert mine["total"] == {"t.add": 1}
        assert mine["pool"]["max-concurrency"] >= 1
        assert {"pid", "clock", "uptime", "broker", "prefetch_count", "rusage"} <= set(mine)
        registered = (inspect.registered() or {})[HOST]
        assert {"t.add", "t.mark", "t.nap"} <= set(registered)
        assert registered == sorted(registered)
        [queue] = (inspect.active_queues() or {})[HOST]
        assert queue["name"] == "celery" and queue["exchange"]["type"] == "direct"
        sleeper = app.tasks["t.nap"].delay(30)
        deadline = time.monotonic() + 10
        while not (active := (inspect.active() or {}).get(HOST)):
            assert time.monotonic() < deadline
        assert active[0]["id"] == sleeper.id and active[0]["args"] == [30]
        assert active[0]["delivery_info"]["routing_key"] == "celery"
        found = inspect.query_task(sleeper.id) or {}
        assert found[HOST][sleeper.id][0] == "active"
        assert inspect.scheduled() == {HOST: []}
        sleeper.revoke(terminate=True)
        assert wait_state(app, sleeper.id, states.REVOKED) == states.REVOKED


def test_control_commands_change_the_worker() -> None:
    app = make_app()
    with worker_thread(app, pool="asyncio", hostname=HOST):
        wait_online(app)
        control = app.control
        assert control.rate_limit("t.add", "10/s", reply=True) == [
            {HOST: {"ok": "new rate limit set successfully"}}]
        assert control.rate_limit("t.missing", "10/s", reply=True) == [
            {HOST: {"error": "unknown task"}}]
        assert control.time_limit("t.add", soft=5, hard=10, reply=True) == [
            {HOST: {"ok": "time limits set successfully"}}]
        assert app.tasks["t.add"].time_limit == 10.0
        assert control.add_consumer("extra", reply=True) == [
            {HOST: {"ok": "add consumer extra"}}]
        assert app.send_task("t.add", (2, 2), queue="extra").get(timeout=10) == 4
        assert control.cancel_consumer("extra", reply=True) == [
            {HOST: {"ok": "no longer consuming from extra"}}]
        [grow] = control.pool_grow(2, reply=True) or []
        assert "error" in grow[HOST]
        assert control.broadcast("no_such_command", reply=True, timeout=1) == [
            {HOST: {"error": "No such command: no_such_command"}}]


def test_revoke_sticks_for_workers_started_later_and_restarted() -> None:
    app = make_app()
    doomed = app.tasks["t.mark"].delay("doomed")
    app.control.revoke(doomed.id)  # no worker is running: the broker keeps it
    assert app.AsyncResult(doomed.id).state == states.REVOKED
    with worker_thread(app, pool="solo", hostname=HOST):  # solo: FIFO, doomed first
        assert app.tasks["t.mark"].delay("survivor").get(timeout=10) == "survivor"
        assert RAN == ["survivor"]
        # revoked while this worker runs, due after it is gone
        countdown = app.tasks["t.mark"].apply_async(("countdown",), countdown=2)
        wait_online(app)
        app.control.revoke(countdown.id)
    with worker_thread(app, pool="solo", hostname=HOST):  # the restarted worker
        try:
            countdown.get(timeout=10)
        except TaskRevokedError:
            pass
        else:
            raise AssertionError("a revoked countdown task ran")
        assert app.tasks["t.mark"].delay("after").get(timeout=10) == "after"
        time.sleep(2.5)  # the countdown is due: the worker has seen and refused it
        assert app.tasks["t.mark"].delay("last").get(timeout=10) == "last"
        time.sleep(1.0)  # had the countdown slipped past the check, it would run now
        assert RAN == ["survivor", "after", "last"]
        replies = app.control.inspect().revoked() or {}
        assert doomed.id in replies[HOST] and countdown.id in replies[HOST]
    assert app.AsyncResult(countdown.id).state == states.REVOKED


def test_remote_control_off_answers_nothing_but_revokes_still_stick() -> None:
    app = make_app(worker_enable_remote_control=False)
    doomed = app.tasks["t.add"].delay(1, 1)
    app.control.revoke(doomed.id)
    with worker_thread(app, hostname=HOST):
        assert app.tasks["t.add"].delay(5, 5).get(timeout=10) == 10
        assert app.control.ping(timeout=0.5) == []
    assert app.AsyncResult(doomed.id).state == states.REVOKED


def _fuzz_messages(rng: random.Random) -> list[Message]:
    bodies: list[Any] = [b"", b"\xff\xfe", b"null", b"[]", b"42", b'"ping"', b"{",
                         orjson.dumps({"method": None}), orjson.dumps({"method": "ping",
                                                                       "arguments": [1]}),
                         orjson.dumps({"method": "ping", "destination": "w1@test"}),
                         orjson.dumps({"method": "revoke", "arguments": {"task_id": {}}}),
                         orjson.dumps({"method": "rate_limit",
                                       "arguments": {"task_name": [], "rate_limit": {}}}),
                         orjson.dumps({"method": "ping", "reply_to": "x", "ticket": 3}),
                         orjson.dumps({"method": "time_limit",
                                       "arguments": {"task_name": "t.add", "hard": "x"}})]
    for _ in range(200):
        doc = {"method": rng.choice(["ping", "stats", "revoke", "active", "zzz",
                                     "add_consumer", "query_task", 7]),
               "arguments": rng.choice([{}, {"ids": rng.random()}, {"queue": 5},
                                        {"task_id": [None]}, {"bad": [1, {"x": None}]}]),
               "destination": rng.choice([None, ["someone-else"], "str"])}
        bodies.append(orjson.dumps(doc))
    for _ in range(100):
        bodies.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))))
    types = ["application/json", "application/x-python-serialize", "text/plain", ""]
    return [Message(headers=rng.choice([{}, {"clock": "x", "expires": "never"},
                                        {"expires": 1.0}]),
                    body=body, content_type=rng.choice(types)) for body in bodies]


def test_fuzzed_control_messages_are_dropped_and_the_worker_keeps_answering() -> None:
    app = make_app()
    rng = random.Random(17)
    with worker_thread(app, hostname=HOST) as worker:
        wait_online(app)
        messages = _fuzz_messages(rng)

        async def send() -> None:
            broker = await app.clients.broker()
            for message in messages:
                await broker.broadcast(wire.pidbox_exchange("celery"), message)
        app.run_sync(send())
        time.sleep(0.5)
        assert app.control.ping(timeout=2.0) == [{HOST: {"ok": "pong"}}]
        assert not worker._stop.is_set()  # no fuzzed message stopped it
        assert app.tasks["t.add"].delay(1, 1).get(timeout=10) == 2


def test_node_handle_never_raises_on_garbage() -> None:
    app = make_app()
    state: Any = type("S", (), {"hostname": HOST, "app": app,
                                "clock": wire.LamportClock()})()
    node = ControlNode.__new__(ControlNode)
    node.state, node.security_key = state, None
    for message in _fuzz_messages(random.Random(3)):
        asyncio.run(node.handle(message))


def test_signed_control_messages_required_with_a_security_key() -> None:
    app = make_app(security_key="s3cret")
    with worker_thread(app, hostname=HOST):
        wait_online(app)  # app.control signs with the same key

        async def unsigned_ping() -> None:
            broker = await app.clients.broker()
            message = wire.request_message("shutdown", {}, clock=1)
            await broker.broadcast(wire.pidbox_exchange("celery"), message)
        app.run_sync(unsigned_ping())
        time.sleep(0.5)
        assert app.control.ping(timeout=1.0) == [{HOST: {"ok": "pong"}}]


def test_requests_in_flight_together_each_get_their_replies() -> None:
    """Two threads asking through one ``app.control`` at once (the dashboard's stats
    poll and a revoke): each request reads its own reply queue, none loses its answer."""
    import threading

    app = make_app()
    with worker_thread(app, pool="asyncio", hostname=HOST):
        wait_online(app)
        def stats(got: dict[str, Any]) -> None:
            got["stats"] = app.control.inspect(timeout=3.0, limit=1).stats()

        def ping(got: dict[str, Any]) -> None:
            got["ping"] = app.control.ping(timeout=3.0, limit=1)

        for _ in range(10):
            got: dict[str, Any] = {}
            threads = [threading.Thread(target=stats, args=(got,)),
                       threading.Thread(target=ping, args=(got,))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert got["ping"] == [{HOST: {"ok": "pong"}}]
            assert HOST in (got["stats"] or {})
