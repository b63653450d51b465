"""The sync producer on a real Redis (db 9, a key prefix per test): the reply window never
lets a refused publish pass silently (next call, flush, interpreter exit), and a lost
connection or a flushed script cache re-sends what was not answered."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from celeriac.brokers.redis.broker import RedisBroker
from celeriac.errors import BrokerConnectionError, UnconfirmedPublish
from tests.chaos.proxy import FaultProxy
from tests.messages import task
from tests.services import REDIS_HOST, REDIS_PORT, need_redis

DB = 9
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DB}"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    need_redis()
    yield redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DB)


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    prefix = f"celeriac-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def broker_for(prefix: str, **options: object) -> RedisBroker:
    return RedisBroker(URL, {"global_keyprefix": prefix, **options})


def test_publishes_are_answered_by_flush(client: redis.Redis, prefix: str) -> None:
    broker = broker_for(prefix)
    for _ in range(300):
        broker.publish_blocking([task("q")])
    broker.flush_blocking()
    assert broker._publisher().unconfirmed == 0
    assert client.llen(f"{prefix}q") == 300
    assert client.llen(f"{prefix}_celeriac.wake.q") == 64  # tokens, capped
    broker._publisher().close()


def test_refused_publish_raises_on_a_later_call_then_once(client: redis.Redis,
                                                          prefix: str) -> None:
    client.set(f"{prefix}wrong", "a string, not a list")  # LPUSH onto it fails
    broker = broker_for(prefix)
    broker.publish_blocking([task("wrong", "refused-1")])  # written; reply not read yet
    time.sleep(0.2)
    with pytest.raises(UnconfirmedPublish, match="refused-1") as info:
        broker.publish_blocking([task("q", "next")])
    assert info.value.task_ids == ["refused-1"]
    assert "WRONGTYPE" in str(info.value) and "sent nothing" in str(info.value)
    broker.flush_blocking()  # reported once, then the window is clean
    assert client.llen(f"{prefix}q") == 0  # the call that raised sent nothing
    broker._publisher().close()


def test_refused_publish_raises_at_flush(client: redis.Redis, prefix: str) -> None:
    client.set(f"{prefix}wrong", "x")
    broker = broker_for(prefix)
    broker.publish_blocking([task("wrong", "refused-2")])
    with pytest.raises(UnconfirmedPublish, match="refused-2"):
        broker.flush_blocking()
    broker._publisher().close()


def test_window_bounds_unanswered_publishes(client: redis.Redis, prefix: str) -> None:
    broker = broker_for(prefix, confirm_window=8)
    for _ in range(100):
        broker.publish_blocking([task("q")])
        assert broker._publisher().unconfirmed <= 8
    broker.flush_blocking()
    assert client.llen(f"{prefix}q") == 100
    broker._publisher().close()


def test_window_zero_makes_every_publish_wait_for_its_reply(client: redis.Redis,
                                                            prefix: str) -> None:
    client.set(f"{prefix}wrong", "x")
    broker = broker_for(prefix, confirm_window=0)
    for _ in range(20):
        broker.publish_blocking([task("q")])
        assert broker._publisher().unconfirmed == 0
    with pytest.raises(UnconfirmedPublish, match="refused-0") as info:
        broker.publish_blocking([task("wrong", "refused-0")])  # raised by the call itself
    assert "were sent" in str(info.value)
    assert client.llen(f"{prefix}q") == 20
    broker._publisher().close()


def test_lost_connection_resends_unanswered(client: redis.Redis, prefix: str) -> None:
    proxy = FaultProxy(REDIS_PORT)
    url = f"redis://127.0.0.1:{proxy.port}/{DB}"
    broker = RedisBroker(url, {"global_keyprefix": prefix})
    try:
        broker.publish_blocking([task("q")])
        broker.flush_blocking()
        proxy.delay(0.5)  # the next publishes are held on the way: none reaches Redis
        for _ in range(50):
            broker.publish_blocking([task("q")])
        assert broker._publisher().unconfirmed == 50
        proxy.cut()  # the connection drops with all 50 unanswered (and never delivered)
        proxy.heal()
        broker.publish_blocking([task("q")])  # finds the link dead: reconnects, re-sends
        broker.flush_blocking()
        assert broker._publisher().unconfirmed == 0
        assert client.llen(f"{prefix}q") == 52
    finally:
        broker._publisher().close()
        proxy.close()


def test_flushed_script_cache_is_reloaded(client: redis.Redis, prefix: str) -> None:
    broker = broker_for(prefix)
    broker.publish_blocking([task("q")])
    broker.flush_blocking()
    client.script_flush()  # every later EVALSHA gets NOSCRIPT until it is loaded again
    for _ in range(30):
        broker.publish_blocking([task("q")])
    broker.flush_blocking()
    assert client.llen(f"{prefix}q") == 31
    broker._publisher().close()


def test_delay_blocking_keeps_messages_in_the_delayed_zset(client: redis.Redis,
                                                           prefix: str) -> None:
    broker = broker_for(prefix)
    due = time.time() + 3600
    broker.delay_blocking([(task("q"), due), (task("q"), due + 1)])
    broker.flush_blocking()
    scores = [score for _, score in client.zrange(f"{prefix}_celeriac.delayed", 0, -1,
                                                  withscores=True)]
    assert scores == [pytest.approx(due), pytest.approx(due + 1)]
    assert client.llen(f"{prefix}q") == 0
    broker._publisher().close()


def test_unreachable_redis_fails_within_retry_timeout_with_the_password_masked() -> None:
    broker = RedisBroker("redis://:s3cret@127.0.0.1:1/0", {"retry_timeout": 0.5})
    began = time.monotonic()
    with pytest.raises(BrokerConnectionError) as info:
        broker.publish_blocking([task("q", "never-sent")])
    assert time.monotonic() - began < 5
    assert "s3cret" not in str(info.value) and "never-sent" in str(info.value)


def test_refused_publish_is_reported_at_exit(client: redis.Redis, prefix: str) -> None:
    client.set(f"{prefix}wrong", "x")
    script = textwrap.dedent(f"""
        from celeriac.brokers.redis.broker import RedisBroker
        from tests.messages import task
        broker = RedisBroker({URL!r}, {{"global_keyprefix": {prefix!r}}})
        broker.publish_blocking([task("wrong", "refused-at-exit")])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert "refused-at-exit" in done.stderr
    assert "UnconfirmedPublish" in done.stderr


def test_app_wait_for_publishes_raises_what_redis_refused(client: redis.Redis,
                                                          prefix: str) -> None:
    from celeriac import Celery

    client.set(f"{prefix}wrong", "x")
    app = Celery("blocking", broker=URL)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    ok = app.send_task("t.noop", queue="q")
    refused = app.send_task("t.noop", queue="wrong")
    with pytest.raises(UnconfirmedPublish) as info:
        app.wait_for_publishes(timeout=10)
    assert info.value.task_ids == [refused.id]
    assert client.llen(f"{prefix}q") == 1 and ok.id
    app.wait_for_publishes()  # reported once


def test_app_close_waits_for_replies_and_closes_the_connection(client: redis.Redis,
                                                               prefix: str) -> None:
    from celeriac import Celery

    app = Celery("closing", broker=URL, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    with app:
        app.send_many("t.noop", [((i,), None) for i in range(3_000)], queue="q")
        producer = app._blocking_producer()
        assert isinstance(producer, RedisBroker)
        publisher = producer._publisher()
    assert publisher.unconfirmed == 0 and producer._blocking is None
    assert client.llen(f"{prefix}q") == 3_000
    app.send_task("t.noop", queue="q")  # the app stays usable
    app.close()
    assert client.llen(f"{prefix}q") == 3_001
