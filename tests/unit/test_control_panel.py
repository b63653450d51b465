"""An application's own remote control commands (celeriac.worker.control), answered by
a real Worker on the memory broker, and the CLI's conversion of positional arguments."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac.control.arguments import compile_arguments
from celeriac.control.commands import COMMANDS, INSPECT, META
from celeriac.testing import memory_app, worker_thread
from celeriac.worker.control import Panel, control_command, inspect_command

HOST = "panel@test"
SEEN: list[Any] = []


@pytest.fixture
def commands() -> Iterator[None]:
    """Register the test's commands; take them out of the global tables afterwards."""
    before = set(COMMANDS)

    @control_command(args=[("n", int)], signature="[N=1]")
    def t_increase_prefetch_count(state: Any, n: int = 1) -> dict[str, Any]:
        """Add n to the prefetch window."""
        state.consumer.qos.increment_eventually(n)
        return {"ok": "prefetch count incremented"}

    @inspect_command(alias="t_dump_prefetch")
    def t_current_prefetch_count(state: Any) -> dict[str, Any]:
        return {"prefetch_count": state.consumer.qos.value}

    @inspect_command()
    async def t_whoami(state: Any, **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        SEEN.append(kwargs)
        return {"hostname": state.hostname, "app": state.app.main,
                "events": state.consumer.event_dispatcher is not None}

    @inspect_command()
    def t_touch_connection(state: Any) -> Any:
        return state.consumer.connection

    @control_command(variadic="names", args=[("flag", bool)], signature="<flag> [name...]")
    def t_variadic(state: Any, **kwargs: Any) -> Any:
        return kwargs

    yield
    for name in set(COMMANDS) - before:
        COMMANDS.pop(name, None)
        META.pop(name, None)
        INSPECT.discard(name)


def wait_online(app: Any) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(HOST in r for r in app.control.ping(timeout=0.3)):
            return
    raise AssertionError("the worker never answered ping")


def test_registry_holds_celerys_metadata(commands: None) -> None:
    info = Panel.meta["t_increase_prefetch_count"]
    assert (info.type, info.args, info.signature, info.help) == (
        "control", [("n", int)], "[N=1]", "Add n to the prefetch window.")
    assert "t_increase_prefetch_count" not in INSPECT
    assert {"t_current_prefetch_count", "t_dump_prefetch"} <= INSPECT
    handler = Panel.data["t_current_prefetch_count"]
    assert handler is Panel.data["t_dump_prefetch"]
    assert handler.__wrapped__.__name__ == "t_current_prefetch_count"  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        Panel.register(type="other")


def test_custom_commands_answer_through_a_real_worker(commands: None) -> None:
    app = memory_app()
    with worker_thread(app, pool="threads", concurrency=2, hostname=HOST) as worker:
        wait_online(app)
        inspect = app.control.inspect(timeout=1.0)
        before = inspect._request("t_current_prefetch_count")
        assert before == {HOST: {"prefetch_count": worker.consumer.configured_window}}
        assert app.control.broadcast("t_increase_prefetch_count", arguments={"n": 3},
                                     reply=True) == [
            {HOST: {"ok": "prefetch count incremented"}}]
        assert inspect._request("t_dump_prefetch") == {
            HOST: {"prefetch_count": before[HOST]["prefetch_count"] + 3}}
        assert worker.consumer.configured_window == before[HOST]["prefetch_count"] + 3
        assert inspect._request("t_whoami", extra=1) == {
            HOST: {"hostname": HOST, "app": app.main, "events": True}}
        assert SEEN[-1] == {"extra": 1}
        [reply] = app.control.broadcast("t_touch_connection", reply=True) or []
        error = reply[HOST]["error"]
        assert "celeriac's consumer has no 'connection'" in error and "qos" in error
        # wrong arguments for a function without **kwargs: an error reply, as Celery's
        [reply] = app.control.broadcast("t_increase_prefetch_count",
                                        arguments={"bogus": 1}, reply=True) or []
        assert "TypeError" in reply[HOST]["error"]


def test_cli_converts_positional_arguments_by_the_spec(commands: None) -> None:
    meta = META
    assert compile_arguments("t_increase_prefetch_count", meta["t_increase_prefetch_count"],
                             ("3",)) == {"n": 3}
    assert compile_arguments("t_increase_prefetch_count", meta["t_increase_prefetch_count"],
                             ()) == {}
    with pytest.raises(ValueError, match=r"takes arguments: \[N=1\]"):
        compile_arguments("t_increase_prefetch_count", meta["t_increase_prefetch_count"],
                          ("1", "2"))
    with pytest.raises(ValueError, match="n='x'"):
        compile_arguments("t_increase_prefetch_count", meta["t_increase_prefetch_count"],
                          ("x",))
    assert compile_arguments("t_variadic", meta["t_variadic"], ("1", "a", "b")) == {
        "flag": True, "names": ["a", "b"]}
    assert compile_arguments("t_variadic", meta["t_variadic"], ()) == {"names": []}


@pytest.mark.parametrize(("method", "args", "expected"), [
    ("terminate", ("KILL", "a", "b"), {"signal": "KILL", "task_id": ["a", "b"]}),
    ("terminate", ("KILL",), {"signal": "KILL", "task_id": []}),
    ("revoke", ("a", "b"), {"task_id": ["a", "b"]}),
    ("rate_limit", ("t.add", "10/s"), {"task_name": "t.add", "rate_limit": "10/s"}),
    ("time_limit", ("t.add", "5", "10"), {"task_name": "t.add", "soft": 5.0, "hard": 10.0}),
    ("conf", ("yes",), {"with_defaults": True}),
    ("query_task", ("a",), {"ids": ["a"]}),
    ("registered", (), {"taskinfoitems": []}),
    ("pool_grow", ("2",), {"n": 2}),
    ("add_consumer", ("q", "ex"), {"queue": "q", "exchange": "ex"}),
])
def test_builtin_commands_use_celerys_argument_specs(method: str, args: tuple[str, ...],
                                                     expected: dict[str, Any]) -> None:
    assert compile_arguments(method, META[method], args) == expected
