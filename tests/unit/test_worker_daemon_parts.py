"""The pure parts of the worker's daemon options: node name expansion, the daemon's
command line, pidfiles, the autoscaler's decisions and its resizable gate."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from celeriac.cli.worker_daemon import Autoscale, detach_argv
from celeriac.worker.autoscale import Autoscaler, Gate, ScaledPool
from celeriac.worker.daemon import Pidfile, PidfileLocked, parse_umask
from celeriac.worker.nodenames import host_format, node_format
from celeriac.worker.pools.base import Pool


def test_node_format_is_celerys() -> None:
    assert node_format("/var/run/celery/%n.pid", "w1@box.example.com") == \
        "/var/run/celery/w1.pid"
    assert node_format("%n%I.log", "w1@box") == "w1.log"
    assert node_format("%n%I.log", "w1@box", process_index=2) == "w1-2.log"
    assert node_format("%p|%h|%d|%i|%%|%z", "w1@box.example.com") == \
        "w1@box.example.com|box.example.com|example.com|0|%|%z"
    assert node_format("%n", "box") == "celery"
    assert host_format("w1@%h", host="h.d") == "w1@h.d"


def test_the_daemon_runs_the_same_command_without_detaching() -> None:
    assert detach_argv(["-A", "proj", "worker", "-D", "--detach", "--uid", "nobody",
                        "--gid=nogroup", "--executable", "/x/python", "--umask=022",
                        "--workdir", "/srv", "-c", "2", "--pidfile=%n.pid"]) == \
        ["-A", "proj", "worker", "-c", "2", "--pidfile=%n.pid"]


def test_autoscale_argument() -> None:
    parse = Autoscale().convert
    assert parse("10,3", None, None) == (10, 3)
    assert parse("3,10", None, None) == (10, 3)
    assert parse("4", None, None) == (4, 0)
    assert parse("1", None, None) == (1, 0)


def test_umask_is_octal_with_a_leading_zero() -> None:
    assert parse_umask("022") == 0o22
    assert parse_umask("0o077") == 0o77
    assert parse_umask("18") == 18
    assert parse_umask(None) is None


def test_pidfile_refuses_a_live_pid_and_replaces_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "w.pid"
    lock = Pidfile(str(path))
    lock.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    with pytest.raises(PidfileLocked, match="Seems we're already running"):
        Pidfile(str(path)).acquire()
    lock.release()
    assert not path.exists()
    path.write_text("not a pid\n")
    assert Pidfile(str(path)).is_stale()
    path.write_text("999999\n")
    Pidfile(str(path)).acquire()
    assert path.read_text() == f"{os.getpid()}\n"


def test_gate_follows_its_limit() -> None:
    async def go() -> list[int]:
        gate = Gate(1)
        seen: list[int] = []

        async def hold(i: int) -> None:
            await gate.acquire()
            seen.append(gate.held)
            await asyncio.sleep(0.01)
            gate.release()

        first = [asyncio.create_task(hold(i)) for i in range(3)]
        await asyncio.sleep(0)
        gate.set_limit(3)
        await asyncio.gather(*first)
        return seen

    assert max(asyncio.run(go())) >= 2  # raising the limit let the waiters in


class FakePool(Pool):
    name = "fake"

    def __init__(self) -> None:
        super().__init__(1)
        self.sizes: list[int] = []

    async def run(self, *args: Any) -> Any:
        raise NotImplementedError

    async def resize(self, size: int) -> None:
        self.sizes.append(size)


def test_autoscaler_grows_at_once_and_shrinks_after_keepalive() -> None:
    inner = FakePool()
    pool = ScaledPool(inner, 10, 2)
    load = [0]
    windows: list[int] = []
    scaler = Autoscaler(pool, lambda: load[0], windows.append, multiplier=4, keepalive=30)

    async def go() -> None:
        load[0] = 7
        await scaler.tick(100.0)
        assert pool.size == 7 and windows[-1] == 28 and pool.gate.limit == 7
        load[0] = 50
        await scaler.tick(101.0)
        assert pool.size == 10
        load[0] = 0
        await scaler.tick(120.0)  # within keepalive of the last growth: stay
        assert pool.size == 10
        await scaler.tick(132.0)
        assert pool.size == 2 and windows[-1] == 8  # not below min

    asyncio.run(go())
    assert inner.sizes[:2] == [7, 10] and inner.sizes[-1] == 2
