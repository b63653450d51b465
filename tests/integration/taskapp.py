"""The app integration tests run a real worker for (``celeriac -A taskapp worker``).

The broker comes from CELERIAC_BROKER_URL, set by each test. Executions are appended to
the file named by ITEST_RECORD, outside the worker, so tests can count every run.
"""

from __future__ import annotations

import asyncio
import os
import time

from celeriac import Celery, SoftTimeLimitExceeded, Task

app = Celery("itest")
app.conf.broker_transport_options = {
    "visibility_timeout": float(os.environ.get("ITEST_LEASE_S", "60")),
    "polling_interval": 0.02,
    "global_keyprefix": os.environ.get("ITEST_KEYPREFIX", ""),
}


def record(line: str) -> None:
    path = os.environ.get("ITEST_RECORD")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def count(prefix: str) -> int:
    path = os.environ.get("ITEST_RECORD")
    if not path or not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.startswith(prefix))


@app.task(name="add")
def add(x: int, y: int) -> int:
    record(f"add {x} {y}")
    return x + y


@app.task(name="aadd")
async def aadd(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    record(f"aadd {x} {y}")
    return x + y


@app.task(name="loop_kind")
async def loop_kind() -> str:
    """The module of the event loop async tasks run on (uvloop or asyncio)."""
    return type(asyncio.get_running_loop()).__module__


@app.task(name="fail")
def fail() -> None:
    raise ValueError("bad value", 42)


@app.task(name="slow")
def slow(seconds: float, tag: str) -> str:
    record(f"start {tag}")
    time.sleep(seconds)
    record(f"done {tag}")
    return tag


@app.task(name="flaky", bind=True, retry_backoff=1, retry_jitter=False)
def flaky(self: Task, tag: str, fail_times: int) -> dict:
    record(f"flaky {tag} {self.request.retries}")
    if count(f"flaky {tag} ") <= fail_times:
        raise self.retry(exc=RuntimeError("flaky"), max_retries=3)
    return {"tag": tag, "retries": self.request.retries}


@app.task(name="soft", soft_time_limit=0.5)
def soft() -> str:
    try:
        time.sleep(5)
    except SoftTimeLimitExceeded:
        return "caught"
    return "not interrupted"


@app.task(name="hard", time_limit=1)
def hard() -> None:
    time.sleep(30)


@app.task(name="pid")
def pid() -> int:
    return os.getpid()


@app.task(name="whoami", bind=True)
def whoami(self: Task, x: int) -> dict:
    r = self.request
    return {"id": r.id, "args": r.args, "kwargs": r.kwargs, "retries": r.retries,
            "hostname": r.hostname, "delivery_info": r.delivery_info, "is_eager": r.is_eager,
            "root_id": r.root_id, "parent_id": r.parent_id, "eta": str(r.eta),
            "expires": str(r.expires)}


@app.task(name="early", acks_late=False)
def early(seconds: float, tag: str) -> str:
    record(f"start {tag}")
    time.sleep(seconds)
    record(f"done {tag}")
    return tag


@app.task(name="note", ignore_result=True)
def note(tag: str) -> None:
    record(f"note {tag}")


# -- how many tasks a pool runs at once (test_pool_concurrency.py), counted in Redis ------
#: count this task in as running and raise the most seen at once; returns that most
_ARRIVE = """local now = redis.call('INCR', KEYS[1])
if now > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], now) end
return redis.call('GET', KEYS[2])"""
#: a blocking task waits at least OVERLAP_MIN_S and, for the others to start, at most this
OVERLAP_MIN_S, OVERLAP_LIMIT_S = 0.5, 15.0
_sync_redis: object = None
_async_redis: object = None


def _overlap_keys(key: str) -> list[str]:
    prefix = os.environ.get("ITEST_KEYPREFIX", "")
    return [f"{prefix}{key}:now", f"{prefix}{key}:most"]


@app.task(name="overlap", bind=True)
def overlap(self: Task, key: str, expected: int) -> int:
    """Blocks the thread it runs in (time.sleep: the tutorial's SMS call) for 0.5 s and
    until ``expected`` tasks have run at once (or 15 s); records the most seen at once."""
    global _sync_redis
    import redis

    if _sync_redis is None:
        _sync_redis = redis.Redis.from_url(os.environ["CELERIAC_BROKER_URL"],
                                           max_connections=1000)
    r: redis.Redis = _sync_redis  # type: ignore[assignment]
    now, most = _overlap_keys(key)
    seen = int(r.eval(_ARRIVE, 2, now, most))
    began = time.monotonic()
    while time.monotonic() - began < OVERLAP_MIN_S or (
            seen < expected and time.monotonic() - began < OVERLAP_LIMIT_S):
        time.sleep(0.05)
        seen = int(r.get(most) or 0)
    r.decr(now)
    record(f"overlap {self.request.id} {seen}")
    return seen


@app.task(name="aoverlap", bind=True)
async def aoverlap(self: Task, key: str, expected: int) -> int:
    """``overlap`` for async def tasks: awaits instead of blocking."""
    global _async_redis
    import redis.asyncio

    if _async_redis is None:
        _async_redis = redis.asyncio.Redis.from_url(os.environ["CELERIAC_BROKER_URL"],
                                                    max_connections=1000)
    r: redis.asyncio.Redis = _async_redis  # type: ignore[assignment]
    now, most = _overlap_keys(key)
    seen = int(await r.eval(_ARRIVE, 2, now, most))
    began = time.monotonic()
    while time.monotonic() - began < OVERLAP_MIN_S or (
            seen < expected and time.monotonic() - began < OVERLAP_LIMIT_S):
        await asyncio.sleep(0.05)
        seen = int(await r.get(most) or 0)
    await r.decr(now)
    record(f"overlap {self.request.id} {seen}")
    return seen
