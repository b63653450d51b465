"""The prefork pool's batches at their edges: a child dying mid-batch (by its own task,
by SIGKILL, at a hard time limit) or retiring mid-batch (max tasks, max memory). Every
job of the batch is accounted for: the one running gets WorkerLostError (or
TimeLimitExceeded), the others succeed, and a job runs twice only if its child died
after running it but before sending its result (a kill in between).

Real children are forked; each task appends ``pid tag`` to a file, which counts runs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.context import Context
from celeriac.errors import TimeLimitExceeded
from celeriac.execution import Outcome
from celeriac.states import FAILURE, SUCCESS
from celeriac.worker.pools.prefork import PreforkPool, WorkerLostError

app = Celery("batches", broker="memory://", set_as_current=False)
RECORD: dict[str, Path] = {}


def _note(tag: str) -> None:
    with open(RECORD["path"], "a") as f:
        f.write(f"{os.getpid()} {tag}\n")


@app.task(name="batches.note")
def note(tag: str, action: str = "") -> str:
    _note(tag)
    if action == "die":
        os._exit(3)
    if action == "sleep":
        time.sleep(30)
    if action == "wait":  # until the test kills this child
        time.sleep(0.3)
    return tag


@pytest.fixture
def record(tmp_path: Path) -> Iterator[Path]:
    RECORD["path"] = tmp_path / "record"
    RECORD["path"].touch()
    yield RECORD["path"]
    RECORD.clear()


def runs(record: Path) -> Counter[str]:
    return Counter(line.split()[1] for line in record.read_text().splitlines())


def pids(record: Path) -> set[str]:
    return {line.split()[0] for line in record.read_text().splitlines()}


def request(tag: str, hard_s: float | None = None) -> Context:
    return Context(id=f"id-{tag}", task="batches.note", timelimit=(hard_s, None))


async def with_pool(pool: PreforkPool, body: Any) -> Any:
    await pool.start()
    try:
        return await body(pool)
    finally:
        pool.terminate()


async def warm_up(pool: PreforkPool) -> None:
    """Run note once per child, then make the pool take it for a 10 us task (a child's
    first runs are slow, more so on a busy machine), so the jobs below go in batches."""
    outcomes = await asyncio.gather(*(pool.run(note, [f"warm{i}"], {}, request(f"warm{i}"))
                                      for i in range(pool.capacity)))
    assert all(o.state == SUCCESS for o in outcomes)
    pool.pacing.per_task["batches.note"] = 0.00001
    assert not pool.pacing.is_long("batches.note")


def batch_of(pool: PreforkPool, tags: list[str], actions: dict[str, str],
             hard_s: float | None = None) -> list[asyncio.Future[Outcome]]:
    """Submit the jobs in one loop turn: they go to the child as one batch."""
    return [asyncio.ensure_future(pool.run(note, [tag, actions.get(tag, "")], {},
                                           request(tag, hard_s if tag in actions else None)))
            for tag in tags]


def test_a_task_that_kills_its_child_mid_batch(record: Path) -> None:
    tags = [f"a{i}" for i in range(10)] + ["die"] + [f"b{i}" for i in range(10)]

    async def body(pool: PreforkPool) -> list[Outcome]:
        await warm_up(pool)
        return list(await asyncio.gather(*batch_of(pool, tags, {"die": "die"})))

    outcomes = asyncio.run(with_pool(PreforkPool(1), body))
    by_tag = dict(zip(tags, outcomes, strict=True))
    assert by_tag["die"].state == FAILURE and isinstance(by_tag["die"].value, WorkerLostError)
    assert all(by_tag[t].state == SUCCESS and by_tag[t].value == t
               for t in tags if t != "die")
    counted = runs(record)
    assert counted["die"] == 1  # reported lost, not run again by the pool
    assert all(counted[f"b{i}"] == 1 for i in range(10))  # never started before the death
    # ran before the death: once, or twice if their results died with the child
    assert all(1 <= counted[f"a{i}"] <= 2 for i in range(10))
    assert len(pids(record)) == 2  # the replacement ran the rest


def test_sigkill_of_a_child_mid_batch(record: Path) -> None:
    tags = [f"a{i}" for i in range(5)] + ["wait"] + [f"b{i}" for i in range(5)]

    async def body(pool: PreforkPool) -> list[Outcome]:
        await warm_up(pool)
        futures = batch_of(pool, tags, {"wait": "wait"})
        deadline = time.monotonic() + 10
        while "wait" not in runs(record):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        os.kill(pool.child_pids()[0], signal.SIGKILL)
        return list(await asyncio.gather(*futures))

    outcomes = asyncio.run(with_pool(PreforkPool(1), body))
    by_tag = dict(zip(tags, outcomes, strict=True))
    assert isinstance(by_tag["wait"].value, WorkerLostError)
    assert "while running batches.note[id-wait]" in str(by_tag["wait"].value)
    assert all(by_tag[t].state == SUCCESS for t in tags if t != "wait")
    counted = runs(record)
    assert counted["wait"] == 1
    assert all(counted[f"b{i}"] == 1 for i in range(5))
    assert all(1 <= counted[f"a{i}"] <= 2 for i in range(5))


def test_hard_time_limit_mid_batch_kills_only_that_job(record: Path) -> None:
    tags = [f"a{i}" for i in range(5)] + ["slow"] + [f"b{i}" for i in range(5)]

    async def body(pool: PreforkPool) -> list[Outcome]:
        await warm_up(pool)
        return list(await asyncio.gather(*batch_of(pool, tags, {"slow": "sleep"}, 0.5)))

    began = time.monotonic()
    outcomes = asyncio.run(with_pool(PreforkPool(1), body))
    assert time.monotonic() - began < 20  # not the task's 30 s
    by_tag = dict(zip(tags, outcomes, strict=True))
    assert isinstance(by_tag["slow"].value, TimeLimitExceeded)
    assert all(by_tag[t].state == SUCCESS for t in tags if t != "slow")
    counted = runs(record)
    assert counted["slow"] == 1 and all(counted[f"b{i}"] == 1 for i in range(5))


def test_max_tasks_per_child_never_runs_a_job_twice(record: Path) -> None:
    tags = [f"t{i}" for i in range(20)]

    async def body(pool: PreforkPool) -> list[Outcome]:
        await warm_up(pool)
        return list(await asyncio.gather(*batch_of(pool, tags, {})))

    outcomes = asyncio.run(with_pool(PreforkPool(1, max_tasks_per_child=3), body))
    assert all(o.state == SUCCESS for o in outcomes)
    counted = runs(record)
    assert all(counted[t] == 1 for t in tags)  # a retiring child is no kill: no reruns
    assert len(pids(record)) >= 21 // 3


def test_max_memory_retires_a_child_mid_batch_and_the_rest_run_once(record: Path) -> None:
    tags = [f"t{i}" for i in range(6)]

    async def body(pool: PreforkPool) -> list[Outcome]:
        await warm_up(pool)
        return list(await asyncio.gather(*batch_of(pool, tags, {})))

    outcomes = asyncio.run(with_pool(PreforkPool(1, max_memory_per_child_kib=1), body))
    assert all(o.state == SUCCESS for o in outcomes)
    counted = runs(record)
    assert all(counted[t] == 1 for t in tags)
    assert len(pids(record)) == 7  # every child is over 1 KiB: one job each


def test_short_jobs_are_batched_and_long_ones_go_alone() -> None:
    from celeriac.worker.pools.pacing import Pacing

    pacing = Pacing(2)
    assert pacing.window(8) == 2  # nothing measured yet: one per child
    for _ in range(20):
        pacing.observe("short", 0.00001)
    assert pacing.window(8) == 128  # 64 per child for no-op tasks
    assert not pacing.is_long("short") and pacing.is_long("never-seen")
    for _ in range(50):
        pacing.observe("long", 1.0)
    assert pacing.window(8) == 2  # one per child: the rest stay in the broker
    assert pacing.is_long("long")


def test_sixty_short_jobs_cross_the_pipe_in_a_few_writes(record: Path) -> None:
    tags = [f"t{i}" for i in range(60)]
    sizes: list[int] = []

    async def body(pool: PreforkPool) -> list[Outcome]:
        await warm_up(pool)
        send = pool._send

        def counted(child: Any, batch: list[Any]) -> None:
            sizes.append(len(batch))
            send(child, batch)

        pool._send = counted  # type: ignore[method-assign]
        return list(await asyncio.gather(*batch_of(pool, tags, {})))

    outcomes = asyncio.run(with_pool(PreforkPool(2), body))
    assert [o.value for o in outcomes] == tags
    # far fewer writes than jobs (16 a batch at most; how many fit follows the measured
    # run times, which a busy machine can stretch)
    assert sum(sizes) == 60 and len(sizes) <= 30 and max(sizes) == 16
    assert all(n == 1 for n in runs(record).values())


def test_a_request_crosses_the_pipe_with_every_field() -> None:
    """request_to_wire/request_from_wire (plain tuples instead of the TaskCall and
    Message dataclasses): the child's request equals the parent's, field by field."""
    import pickle
    from dataclasses import fields

    from celeriac.context import WorkerRequest
    from celeriac.testing import drain, memory_app
    from celeriac.worker.pools.prefork_child import request_from_wire, request_to_wire

    lazy_app = memory_app("wire")
    seen: list[Context] = []

    @lazy_app.task(bind=True, name="t.wire")
    def wire(self: Any, x: int, y: str = "") -> None:
        seen.append(self.request)

    wire.apply_async((1,), {"y": "z"}, headers={"origin": "gen1@host"}, priority=5,
                     countdown=0.001, expires=600, reply_to="replies",
                     link=wire.si(2))
    assert drain(lazy_app) == 2  # the task and its link
    request = seen[0]
    assert isinstance(request, WorkerRequest)
    request.retries = 3  # set after the request was made: travels too
    child = request_from_wire(pickle.loads(pickle.dumps(request_to_wire(request))))
    assert isinstance(child, WorkerRequest)
    for field in fields(Context):
        assert getattr(child, field.name) == getattr(request, field.name), field.name
    assert child.delivery_info["priority"] == 5 and child.reply_to == "replies"
    assert child.callbacks and child.callbacks[0]["task"] == "t.wire"
    assert child.eta is not None and child.expires is not None
