"""RedisBroker on the wire: kombu's exact layout, checked against captured Celery 5.7 data.

Needs a real Redis (db 11, a fresh key prefix per test, keys dropped afterwards).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac import Celery
from celeriac.brokers import create_broker
from celeriac.brokers.redis.broker import RedisBroker
from celeriac.brokers.redis.connection import redis_client
from celeriac.errors import BrokerConnectionError, ConfigurationError
from celeriac.protocol import build_task_message, from_envelope, parse_task
from tests.services import REDIS_HOST, REDIS_PORT, need_redis

DB = 11
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"
ACCEPT = frozenset({"application/json"})
CAPTURE = Path(__file__).resolve().parents[1] / "data" / "redis-capture-celery-5.7.txt"
ETA_ID, PLAIN_ID = "22222222-2222-2222-2222-222222222222", "11111111-1111-1111-1111-111111111111"


def captured() -> dict[str, dict[str, Any]]:
    """The two envelopes Celery 5.7 pushed, by task id."""
    text = CAPTURE.read_text()
    blocks = re.findall(r"^b'celery[^']*' list\n(\{.*?^\})", text, re.S | re.M)
    envelopes = [json.loads(block) for block in blocks]
    return {e["headers"]["id"]: e for e in envelopes}


def kombu_dumps(value: Any) -> bytes:
    """What kombu writes: stdlib json with its default separators."""
    return json.dumps(value).encode()


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    need_redis()
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"celeriac-wire-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def make(raw: aioredis.Redis, prefix: str) -> AsyncIterator[Any]:
    brokers: list[RedisBroker] = []

    async def make(**options: Any) -> RedisBroker:
        broker = RedisBroker(URL, {"global_keyprefix": prefix, **options})
        await broker.connect()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        await broker.close()
    keys = [k async for k in raw.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await raw.delete(*keys)


def shape(value: Any) -> Any:
    """Key structure of a JSON document (dict keys, recursively), values dropped."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__ if value is not None else None


async def test_published_envelope_has_celerys_exact_structure(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    celery = captured()[ETA_ID]
    eta = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    message = build_task_message(
        "proj.tasks.add", (1, 2), {"z": 3}, task_id=ETA_ID, eta=eta,
        expires=eta + dt.timedelta(hours=1), time_limit=30, soft_time_limit=20, priority=5)
    await broker.publish([message])
    # priority 5 lands in bucket 3, like the captured message
    [item] = await raw.lrange(f"{prefix}celery\x06\x163", 0, -1)
    ours = json.loads(item)
    assert list(ours) == list(celery)
    assert list(ours["headers"]) == list(celery["headers"])
    assert set(ours["properties"]) == set(celery["properties"])
    assert ours["properties"]["delivery_info"] == celery["properties"]["delivery_info"]
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(
        base64.b64decode(celery["body"]))
    assert {k: v for k, v in ours["headers"].items() if k not in ("eta", "expires", "origin")} \
        == {k: v for k, v in celery["headers"].items() if k not in ("eta", "expires", "origin")}
    plain = build_task_message("proj.tasks.add", (2, 2), task_id=PLAIN_ID)
    await broker.publish([plain])
    [bare] = await raw.lrange(f"{prefix}celery", 0, -1)
    assert shape(json.loads(bare)) == shape(captured()[PLAIN_ID])


async def test_captured_celery_envelopes_are_fetched_and_parsed(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    envelopes = captured()
    await raw.lpush(f"{prefix}celery\x06\x163", kombu_dumps(envelopes[ETA_ID]))
    await raw.lpush(f"{prefix}celery", kombu_dumps(envelopes[PLAIN_ID]))
    got = await broker.fetch(["celery"], 10, 1.0)
    assert [d.message.task_id for d in got] == [PLAIN_ID, ETA_ID]  # bucket 0 first
    plain, eta = (parse_task(d.message, ACCEPT) for d in got)
    assert plain.name == "proj.tasks.add" and plain.args == [2, 2] and plain.kwargs == {}
    assert eta.args == [1, 2] and eta.kwargs == {"z": 3} and eta.timelimit == (30.0, 20.0)
    assert eta.eta == dt.datetime(2026, 11, 23, 20, 42, 43, 930952, tzinfo=dt.UTC)
    # the delivery tag is the envelope's, as kombu uses it
    assert got[0].tag == envelopes[PLAIN_ID]["properties"]["delivery_tag"]
    assert got[0].queue == "celery" and not got[0].redelivered
    await broker.ack(got)


async def test_unacked_records_are_kombus(make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    envelope = captured()[PLAIN_ID]
    tag = envelope["properties"]["delivery_tag"]
    await raw.lpush(f"{prefix}celery", kombu_dumps(envelope))
    before = time.time()
    [delivery] = await broker.fetch(["celery"], 1, 1.0)
    record = json.loads(await raw.hget(f"{prefix}unacked", tag))
    assert record == [envelope, "", "celery"]  # [payload, exchange, routing_key]
    score = await raw.zscore(f"{prefix}unacked_index", tag)
    assert before - 1 <= score <= time.time() + 1
    lease = await raw.zscore(f"{prefix}_celeriac.leases", tag)
    assert lease == pytest.approx(score + broker.lease_s, abs=1)
    await broker.ack([delivery])
    assert await raw.hlen(f"{prefix}unacked") == 0
    for zset in (f"{prefix}unacked_index", f"{prefix}_celeriac.leases"):  # only the anchor
        [(member, score)] = await raw.zrange(zset, 0, -1, withscores=True)
        assert member.startswith(b"_celeriac.anchor") and score == float("inf")


async def test_index_zsets_stay_skiplists_and_their_anchor_is_never_restored(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    # a listpack-encoded zset makes every ZADD of fetch.lua a scan of the whole set
    broker = await make(lease_timeout=0.2, sweep_interval=3600)
    await broker.publish([build_task_message("t", task_id=f"m{i}", queue="q") for i in (1, 2)])
    got = await broker.fetch(["q"], 2, 1.0)
    for zset in (f"{prefix}unacked_index", f"{prefix}_celeriac.leases"):
        assert await raw.object("encoding", zset) == b"skiplist"
        assert await raw.zcard(zset) == 3  # two deliveries and the anchor
    await asyncio.sleep(0.4)
    assert await broker.sweep() == 2  # the lapsed deliveries, not the anchor
    # kombu's restore_visible reads index scores up to now - visibility_timeout
    assert len(await raw.zrevrangebyscore(f"{prefix}unacked_index", time.time() + 3600, 0)) == 0
    back = await broker.fetch(["q"], 5, 1.0)
    assert sorted(d.message.task_id for d in back) == ["m1", "m2"]
    await broker.ack([*got, *back])
    assert await raw.hlen(f"{prefix}unacked") == 0


@pytest.mark.parametrize("headers", [
    {},  # the common case: fetch.lua reads tag, exchange and routing key without cjson
    {"exchange": "not-this-one", "routing_key": "nor-this"},  # look-alikes: ignored
    {"delivery_tag": "not-this-tag"},  # the tag's key twice: the cjson path
    {"delivery_info": {"exchange": "x", "routing_key": "y"}},  # info twice: cjson too
    {"note": 'a "delivery_tag":"quoted" value', "x_tag": "y"},  # escaped look-alikes
])
async def test_unacked_records_of_our_envelopes_name_their_exchange_and_key(
        make: Any, raw: aioredis.Redis, prefix: str, headers: dict[str, Any]) -> None:
    broker = await make()
    message = build_task_message("proj.tasks.add", (1, 2), headers=headers or None,
                                 exchange="tasks", routing_key="celery")
    await broker.publish([message])
    [item] = await raw.lrange(f"{prefix}celery", 0, -1)
    [delivery] = await broker.fetch(["celery"], 1, 1.0)
    assert delivery.tag == json.loads(item)["properties"]["delivery_tag"]
    record = json.loads(await raw.hget(f"{prefix}unacked", delivery.tag))
    assert record == [json.loads(item), "tasks", "celery"]
    await broker.ack([delivery])
    assert await raw.hlen(f"{prefix}unacked") == 0


async def write_celery_unacked(raw: aioredis.Redis, prefix: str, envelope: dict[str, Any],
                               delivered_at: float) -> str:
    """An in-flight delivery exactly as a Celery worker records it."""
    tag = envelope["properties"]["delivery_tag"]
    await raw.hset(f"{prefix}unacked", tag, kombu_dumps([envelope, "", "celery"]))
    await raw.zadd(f"{prefix}unacked_index", {tag: delivered_at})
    return tag


async def test_celery_stale_entry_restored_only_after_visibility_timeout(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()  # Celery's default visibility_timeout: 3600 s
    envelopes = captured()
    fresh = await write_celery_unacked(raw, prefix, envelopes[ETA_ID], time.time() - 3500)
    stale = await write_celery_unacked(raw, prefix, envelopes[PLAIN_ID], time.time() - 3601)
    # a Celery worker holds unacked_mutex: the sweep leaves Celery's entries alone
    await raw.set(f"{prefix}unacked_mutex", "celery-worker-token", px=5000)
    assert await broker.sweep() == 0
    assert await raw.llen(f"{prefix}celery") == 0
    await raw.delete(f"{prefix}unacked_mutex")
    assert await broker.sweep() == 1
    assert await raw.hexists(f"{prefix}unacked", fresh)
    assert not await raw.hexists(f"{prefix}unacked", stale)
    assert not await raw.exists(f"{prefix}unacked_mutex")  # released after the sweep
    [item] = await raw.lrange(f"{prefix}celery", 0, -1)
    restored = json.loads(item)
    assert restored["headers"]["redelivered"] is True
    assert restored["properties"]["delivery_info"]["redelivered"] is True
    assert restored["body"] == envelopes[PLAIN_ID]["body"]
    [again] = await broker.fetch(["celery"], 5, 1.0)
    assert again.message.task_id == PLAIN_ID and again.redelivered
    await broker.ack([again])


async def test_restored_message_is_served_before_newer_ones(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make(visibility_timeout=600)
    envelope = captured()[PLAIN_ID]
    await write_celery_unacked(raw, prefix, envelope, time.time() - 601)
    await broker.publish([build_task_message("t", task_id="newer", queue="celery")])
    await broker.sweep()
    got = await broker.fetch(["celery"], 5, 1.0)
    assert [d.message.task_id for d in got] == [PLAIN_ID, "newer"]
    await broker.ack(got)


async def test_lapsed_lease_is_restored_and_an_extended_one_is_not(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make(lease_timeout=0.5, sweep_interval=3600)  # sweeps only when told
    await broker.publish([build_task_message("t", task_id=f"m{i}", queue="q") for i in (1, 2)])
    kept, dropped = await broker.fetch(["q"], 2, 1.0)
    for _ in range(4):
        await asyncio.sleep(0.2)
        await broker.extend([kept])
    assert await broker.sweep() == 1
    assert await raw.hexists(f"{prefix}unacked", kept.tag)
    assert not await raw.hexists(f"{prefix}unacked", dropped.tag)
    [back] = await broker.fetch(["q"], 5, 1.0)
    assert back.message.task_id == "m2" and back.redelivered
    assert back.tag != dropped.tag  # a fresh delivery tag...
    await broker.ack([dropped])  # ...so the lapsed holder's late ack changes nothing
    assert await raw.hexists(f"{prefix}unacked", back.tag)
    await broker.ack([kept, back])


async def test_extend_keeps_celerys_sweep_off_a_long_running_delivery(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    await broker.publish([build_task_message("t", task_id="long", queue="q")])
    [delivery] = await broker.fetch(["q"], 1, 1.0)
    # pretend it was delivered two hours ago and has been extended all along
    await raw.zadd(f"{prefix}unacked_index", {delivery.tag: time.time() - 7200})
    await broker.extend([delivery])
    # kombu's restore_visible query: index entries older than its visibility_timeout
    ceiling = time.time() - 3600
    assert await raw.zrevrangebyscore(f"{prefix}unacked_index", ceiling, 0) == []
    assert await broker.sweep() == 0
    await broker.ack([delivery])


async def test_delayed_messages_live_in_a_sorted_set(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    month = time.time() + 30 * 86400
    await broker.delay([(build_task_message("t", task_id="later", queue="q"), month),
                        (build_task_message("t", task_id="soon", queue="q", priority=9),
                         time.time() - 1)])
    assert await raw.zcard(f"{prefix}_celeriac.delayed") == 2
    got = await broker.fetch(["q"], 5, 0.5)
    assert [d.message.task_id for d in got] == ["soon"]
    [(member, score)] = await raw.zrange(f"{prefix}_celeriac.delayed", 0, -1, withscores=True)
    assert score == pytest.approx(month)
    envelope, _, target = member.partition(b"\n")
    assert json.loads(envelope)["headers"]["id"] == "later" and target == b"0q"
    assert await broker.fetch(["q"], 5, 0.2) == []
    await broker.ack(got)


async def test_dead_letters_keep_the_original_envelope(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    envelope = captured()[PLAIN_ID]
    await raw.lpush(f"{prefix}celery", kombu_dumps(envelope))
    [delivery] = await broker.fetch(["celery"], 1, 1.0)
    await broker.dead_letter(delivery, "unregistered task 'proj.tasks.add'")
    assert await raw.hlen(f"{prefix}unacked") == 0
    [letter] = await broker.dead_letters()
    assert letter.queue == "celery" and letter.reason.startswith("unregistered")
    assert letter.message.headers == envelope["headers"]
    assert await broker.requeue_dead() == 1
    [item] = await raw.lrange(f"{prefix}celery", 0, -1)
    assert json.loads(item) == envelope
    assert await broker.dead_letters() == []


async def test_undecodable_envelope_comes_with_an_error_and_can_be_dead_lettered(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    await raw.lpush(f"{prefix}q", b"\xffnot json")
    [delivery] = await broker.fetch(["q"], 1, 1.0)
    assert delivery.envelope_error and delivery.message.body == b"\xffnot json"
    await broker.dead_letter(delivery, "undecodable")
    [letter] = await broker.dead_letters()
    assert letter.message.body == b"\xffnot json"
    assert await broker.requeue_dead([letter.id]) == 1
    assert await raw.lrange(f"{prefix}q", 0, -1) == [b"\xffnot json"]


async def test_our_envelope_broken_as_json_is_restored_and_dead_lettered_verbatim(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    """fetch.lua splices our envelopes into the unacked record without decoding them;
    one that is not JSON (a colon lost, tag, exchange and key intact) must still come
    back from a requeue and from the dead-letter store byte for byte."""
    broker = await make()
    await broker.publish([build_task_message("t", (1,), queue="q")])
    [good] = await raw.lrange(f"{prefix}q", 0, -1)
    broken = good.replace(b'"lang":', b'"lang"', 1)
    await raw.delete(f"{prefix}q")
    await raw.lpush(f"{prefix}q", broken)
    [delivery] = await broker.fetch(["q"], 1, 1.0)
    assert delivery.envelope_error
    with pytest.raises(ValueError):  # the record itself is not JSON: the case at hand
        json.loads(await raw.hget(f"{prefix}unacked", delivery.tag))
    await broker.requeue([delivery])  # what a restart or a lapsed lease does
    assert await raw.lrange(f"{prefix}q", 0, -1) == [broken]
    [delivery] = await broker.fetch(["q"], 1, 1.0)
    await broker.dead_letter(delivery, "undecodable")
    [letter] = await broker.dead_letters()
    assert letter.reason == "undecodable" and letter.message.body == broken
    assert await broker.requeue_dead([letter.id]) == 1
    assert await raw.lrange(f"{prefix}q", 0, -1) == [broken]


async def test_requeue_marks_redelivered_and_serves_it_next(
        make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    await broker.publish([build_task_message("t", task_id=f"m{i}", queue="q") for i in (1, 2)])
    first = await broker.fetch(["q"], 1, 1.0)
    await broker.requeue(first)
    assert await raw.hlen(f"{prefix}unacked") == 0
    again = await broker.fetch(["q"], 2, 1.0)
    assert [d.message.task_id for d in again] == ["m1", "m2"]
    assert again[0].redelivered and not again[1].redelivered
    await broker.ack(again)


async def test_priority_buckets_across_several_queues(make: Any) -> None:
    broker = await make()
    await broker.publish([
        build_task_message("t", task_id="a9", queue="a", priority=9),
        build_task_message("t", task_id="b0", queue="b", priority=0),
        build_task_message("t", task_id="a4", queue="a", priority=4),
        build_task_message("t", task_id="b7", queue="b", priority=7),
    ])
    got = await broker.fetch(["a", "b"], 10, 1.0)
    assert [d.message.task_id for d in got] == ["b0", "a4", "b7", "a9"]
    assert await broker.queue_size("a") == 0
    await broker.ack(got)


async def test_every_key_carries_the_prefix(make: Any, raw: aioredis.Redis, prefix: str) -> None:
    broker = await make()
    await broker.publish([build_task_message("t", task_id="x", queue="q")])
    await broker.delay([(build_task_message("t", task_id="y", queue="q"), time.time() + 60)])
    got = await broker.fetch(["q"], 1, 1.0)
    await broker.dead_letter(got[0], "why")
    keys = {k.decode() async for k in raw.scan_iter(match=f"{prefix}*")}
    assert keys == {f"{prefix}_celeriac.delayed", f"{prefix}_celeriac.dead",
                    f"{prefix}_celeriac.dead.index",
                    f"{prefix}unacked_index", f"{prefix}_celeriac.leases"}  # their anchors


async def test_wrong_password_fails_fast_with_masked_url() -> None:
    need_redis()
    url = f"redis://nobody:s3cret@{REDIS_HOST}:{REDIS_PORT}/{DB}"
    broker = create_broker(url)
    started = time.monotonic()
    with pytest.raises(BrokerConnectionError) as info:
        await broker.connect()
    assert time.monotonic() - started < 2
    assert "s3cret" not in str(info.value)
    assert f"redis://nobody:**@{REDIS_HOST}:{REDIS_PORT}/{DB}" in str(info.value)
    await broker.close()


async def test_unreachable_port_fails_fast_with_masked_url() -> None:
    broker = RedisBroker("redis://:pw@127.0.0.1:1/0")
    started = time.monotonic()
    with pytest.raises(BrokerConnectionError, match=r"redis://:\*\*@127\.0\.0\.1:1/0"):
        await broker.connect()
    assert time.monotonic() - started < 2
    await broker.close()


def test_url_forms() -> None:
    kw = redis_client("redis://:p%40ss@h:7000/3").connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"], kw["password"]) == ("h", 7000, 3, "p@ss")
    kw = redis_client("redis+socket:///tmp/r.sock?virtual_host=2").connection_pool.connection_kwargs
    assert (kw["path"], kw["db"]) == ("/tmp/r.sock", 2)
    kw = redis_client("rediss://h/1?ssl_cert_reqs=CERT_NONE").connection_pool.connection_kwargs
    assert kw["ssl_cert_reqs"] == "none"
    client = redis_client("sentinel://:pw@s1:26379/4;sentinel://s2:26380",
                          {"master_name": "mymaster"})
    pool: Any = client.connection_pool
    assert pool.service_name == "mymaster" and pool.connection_kwargs["db"] == 4
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs[
        "port"]) for s in pool.sentinel_manager.sentinels] == [("s1", 26379), ("s2", 26380)]
    with pytest.raises(ConfigurationError, match="master_name"):
        redis_client("sentinel://s1:26379")


def test_broker_reads_time_out_by_default_so_a_half_open_link_cannot_hang() -> None:
    broker = RedisBroker("redis://127.0.0.1:6379/11")
    kw = broker.redis.client.connection_pool.connection_kwargs
    assert kw["socket_timeout"] == 10.0
    chosen = RedisBroker("redis://127.0.0.1:6379/11", {"socket_timeout": 2.5})
    assert chosen.redis.client.connection_pool.connection_kwargs["socket_timeout"] == 2.5


async def test_bulk_sends_store_each_call_as_its_own_envelope(
        raw: aioredis.Redis, prefix: str) -> None:
    """delay_many on Redis splices each call into one encoded template (CallBatch): what
    lands in the list must read back as each call, with its own id and tag."""
    app = Celery("bulk-wire", broker=URL, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}

    @app.task(name="bulk.add")
    def add(x: Any, y: Any) -> Any:
        return x + y

    calls = [(i, f"y{i} \"%s\" ✓") for i in range(7)]
    results = await asyncio.to_thread(add.delay_many, calls, batch_size=3)
    await asyncio.to_thread(app.wait_for_publishes)
    items = [json.loads(i) for i in reversed(await raw.lrange(f"{prefix}celery", 0, -1))]
    assert [e["headers"]["id"] for e in items] == [r.id for r in results]
    assert len({e["properties"]["delivery_tag"] for e in items}) == len(calls)
    for envelope, (x, y) in zip(items, calls, strict=True):
        ident = envelope["headers"]["id"]
        assert envelope["headers"]["root_id"] == ident
        assert envelope["properties"]["correlation_id"] == ident
        assert envelope["headers"]["argsrepr"] == repr((x, y))
        call = parse_task(from_envelope(json.dumps(envelope)), ACCEPT)
        assert (call.id, call.args, call.kwargs) == (ident, [x, y], {})
    first, last = items[0], items[-1]
    for key in ("id", "root_id", "argsrepr"):
        first["headers"].pop(key), last["headers"].pop(key)
    assert first["headers"] == last["headers"]  # the options are the template's


async def test_bulk_sends_with_a_countdown_wait_in_the_delay_store_spliced(
        raw: aioredis.Redis, prefix: str) -> None:
    """delay_many(countdown=...) on Redis: each call's envelope (spliced, DueBatch) in
    the delayed zset with the batch's due time and its bucket and queue after it
    (``broker_delay_store = True``: a celeriac-only fleet's opt-in)."""
    app = Celery("bulk-delay", broker=URL, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.broker_delay_store = True

    @app.task(name="bulk.later")
    def later(x: Any) -> Any:
        return x

    before = time.time()
    results = await asyncio.to_thread(later.delay_many, [(i,) for i in range(5)],
                                      countdown=600, priority=9, batch_size=2)
    await asyncio.to_thread(app.wait_for_publishes)
    members = await raw.zrange(f"{prefix}_celeriac.delayed", 0, -1, withscores=True)
    assert await raw.llen(f"{prefix}celery") == 0
    by_id = {}
    for member, score in members:
        envelope, where = member.rsplit(b"\n", 1)
        assert where == b"9celery"  # bucket of priority 9, then the queue
        assert before + 600 <= score <= time.time() + 600
        message = from_envelope(envelope)
        call = parse_task(message, ACCEPT)
        by_id[call.id] = call.args
        assert message.priority == 9 and message.routing_key == "celery"
        assert message.headers["eta"] and message.headers["root_id"] == call.id
    assert by_id == {r.id: [i] for i, r in enumerate(results)}
