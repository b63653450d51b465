"""The chord join of each backend: a part counts once per (task id, index) however many
times it is stored (a redelivered or retried header task), the body is claimed once
when workers race on the last parts, and a late duplicate after the body was sent
claims nothing. Redis runs against a real server on Celery's keys."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.chords.base import HELD, NO_SIZE, ChordJoin, Claim
from celeriac.chords.memory import MemoryChordJoin
from celeriac.chords.sqlite import SQLiteChordJoin


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def join(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChordJoin]:
    if request.param == "memory":
        yield MemoryChordJoin(MemoryBackend(f"memory://{uuid.uuid4().hex}").url, 600, 600, 5)
    elif request.param == "sqlite":
        backend = SQLiteBackend(f"sqlite:///{tmp_path}/results.db")
        yield SQLiteChordJoin(backend, 600, 600, 5)
        await backend.close()
    else:
        from tests.services import need_redis

        need_redis()
        from celeriac.backends.redis import RedisBackend
        from celeriac.chords.redis import RedisChordJoin

        prefix = f"chordtest-{uuid.uuid4().hex[:8]}:"
        backend = RedisBackend("redis://127.0.0.1:6379/8", {"global_keyprefix": prefix})
        await backend.connect()
        yield RedisChordJoin(backend, 600, 600, 5)
        [keys] = await backend.redis.run(("KEYS", f"{prefix}*"))
        if keys:
            await backend.redis.run(("DEL", *keys))
        await backend.close()


async def test_parts_in_header_order_and_one_claim(join: ChordJoin) -> None:
    await join.set_size("g", 3)
    assert await join.add_part("g", "c", 2, "SUCCESS", 30) is None
    assert await join.add_part("g", "a", 0, "SUCCESS", 10) is None
    claim = await join.add_part("g", "b", 1, "SUCCESS", 20)
    assert claim is not None
    assert [p[2] for p in claim.parts] == [10, 20, 30]
    assert await join.add_part("g", "b", 1, "SUCCESS", 20) is HELD  # the claim is held
    assert await join.reclaim("g") is HELD
    await join.done("g", claim)
    assert await join.add_part("g", "c", 2, "SUCCESS", 30) is None  # a late duplicate
    assert await join.reclaim("g") is None


async def test_a_part_stored_twice_counts_once(join: ChordJoin) -> None:
    """A header task redelivered after its worker died (result stored, not acked) stores
    its part again: the header must still wait for the others."""
    await join.set_size("g", 2)
    assert await join.add_part("g", "a", 0, "SUCCESS", 1) is None
    assert await join.add_part("g", "a", 0, "SUCCESS", 1) is None
    assert await join.add_part("g", "a", 0, "FAILURE", {"exc_type": "X"}) is None
    claim = await join.add_part("g", "b", 1, "SUCCESS", 2)
    assert claim is not None and [p[2] for p in claim.parts] == [1, 2]


async def test_racing_last_parts_claim_once(join: ChordJoin) -> None:
    n = 50
    await join.set_size("g", n)
    for i in range(n - 2):
        await join.add_part("g", f"t{i}", i, "SUCCESS", i)
    last = [join.add_part("g", f"t{i}", i, "SUCCESS", i)
            for _ in range(5) for i in (n - 2, n - 1)]
    claims = [c for c in await asyncio.gather(*last) if isinstance(c, Claim)]
    assert len(claims) == 1
    assert [p[2] for p in claims[0].parts] == list(range(n))


async def test_saved_groups(join: ChordJoin) -> None:
    await join.save_group("g", b'{"result": 1}')
    assert await join.restore_group("g") == b'{"result": 1}'
    await join.delete_group("g")
    assert await join.restore_group("g") is None


async def test_an_expired_claim_is_taken_over_once(join: ChordJoin) -> None:
    """The holder's worker died between the claim and ``done``: once its claim expires,
    a redelivered part (or a waiter asking again) takes it over, and only one does."""
    join.claim_expires_s = 1
    await join.set_size("g", 2)
    await join.add_part("g", "a", 0, "SUCCESS", 1)
    first = await join.add_part("g", "b", 1, "SUCCESS", 2)
    assert isinstance(first, Claim)
    assert await join.add_part("g", "b", 1, "SUCCESS", 2) is HELD
    await asyncio.sleep(1.3)
    taken = await asyncio.gather(*(join.reclaim("g") for _ in range(5)))
    claims = [c for c in taken if isinstance(c, Claim)]
    assert len(claims) == 1 and all(c is HELD for c in taken if c is not claims[0])
    assert claims[0].token != first.token and [p[2] for p in claims[0].parts] == [1, 2]
    await join.done("g", first)  # the old holder's late done changes nothing
    assert await join.reclaim("g") is HELD
    assert not await join.confirm("g", first, 1.0)
    await join.done("g", claims[0])
    assert await join.reclaim("g") is None
    assert await join.add_part("g", "b", 1, "SUCCESS", 2) is None


async def test_a_failed_header_is_done(join: ChordJoin) -> None:
    await join.set_size("g", 1)
    claim = await join.add_part("g", "a", 0, "FAILURE", {"exc_type": "X"})
    assert isinstance(claim, Claim)
    await join.failed("g", claim)
    assert await join.add_part("g", "a", 0, "FAILURE", {"exc_type": "X"}) is None
    assert await join.reclaim("g") is None


async def test_accept_keeps_the_first_token_per_task(join: ChordJoin) -> None:
    """Two copies of a body sent under two claims: the first to arrive runs (and its
    redelivery), the other is dropped; each task id of a group body on its own."""
    assert await join.accept("g", "body", "t1")
    assert await join.accept("g", "body", "t1")  # a redelivery of the same message
    assert not await join.accept("g", "body", "t2")
    assert await join.accept("g", "other", "t2")
    assert not await join.accept("g", "other", "t1")
    assert await join.accept("h", "body", "t2")
    results = await asyncio.gather(*(join.accept("g", "raced", f"t{i}") for i in range(8)))
    assert sum(results) == 1


async def test_size_recorded_late_and_saved_group_ids(join: ChordJoin) -> None:
    """A part before the size says NO_SIZE (the worker watches for it); a saved group's
    id cannot become a chord's; a done join counts as a known size."""
    assert not await join.size_known("g")
    assert await join.add_part("g", "a", 0, "SUCCESS", 1) is NO_SIZE
    assert await join.set_size("g", 2)
    assert await join.size_known("g")
    claim = await join.add_part("g", "b", 1, "SUCCESS", 2)
    assert isinstance(claim, Claim) and [p[2] for p in claim.parts] == [1, 2]
    await join.done("g", claim)
    assert await join.size_known("g")
    await join.save_group("saved", b'{"result": 1}')
    assert await join.group_exists("saved") and not await join.group_exists("g")
    assert not await join.set_size("saved", 3)
    assert not await join.size_known("saved")


async def test_add_to_chord_waits_for_one_more(join: ChordJoin) -> None:
    await join.set_size("g", 1)
    await join.add_to_chord("g")
    assert await join.add_part("g", "a", 0, "SUCCESS", 1) is None
    claim = await join.add_part("g", "added", 0, "SUCCESS", 2)
    assert isinstance(claim, Claim) and sorted(p[2] for p in claim.parts) == [1, 2]


async def test_sqlite_sweeps_expired_chord_rows(tmp_path: Path) -> None:
    """The SQLite join's tables do not grow without end: a sweep deletes every row whose
    expiry passed (joins, their parts, sent bodies, saved groups) and keeps the rest."""
    backend = SQLiteBackend(f"sqlite:///{tmp_path}/results.db")
    join = SQLiteChordJoin(backend, 600, 600, 5)
    try:
        await join.set_size("old", 2)
        await join.add_part("old", "a", 0, "SUCCESS", 1)  # one part: not complete
        claim = await join.add_part("old", "b", 1, "SUCCESS", 2)
        assert claim is not None
        await join.done("old", claim)
        await join.accept("old", "body", claim.token)
        await join.save_group("old", b"meta")
        await join.set_size("open", 3)
        await join.add_part("open", "x", 0, "SUCCESS", 1)

        def counts() -> list[int]:
            db = backend._db()
            return [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("chord_joins", "chord_parts", "chord_sends", "groups")]

        assert counts() == [2, 1, 1, 1]  # the done join's parts went with done()
        assert join.sweep() == 0  # nothing expired yet
        assert join.sweep(now=time.time() + 601) == 5
        assert counts() == [0, 0, 0, 0]
    finally:
        await backend.close()
