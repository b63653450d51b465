"""The app integration tests run a real worker for (``celeriac -A taskapp worker``).

The broker comes from CELERIAC_BROKER_URL, set by each test. Executions are appended to
the file named by ITEST_RECORD, outside the worker, so tests can count every run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

from celeriac import Celery, SoftTimeLimitExceeded, Task
from celeriac.contrib.abortable import AbortableTask
from celeriac.exceptions import Ignore, Reject
from celeriac.utils.log import get_task_logger

app = Celery("itest")
if os.environ.get("ITEST_OWN_LOGGING"):  # an application that configures logging itself
    logging.basicConfig(format="OWN %(name)s %(message)s", level=logging.INFO,
                        stream=sys.stdout)
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


@app.task(name="abortable_loop", bind=True, base=AbortableTask)
def abortable_loop(self: AbortableTask, limit_s: float) -> str:
    """Polls is_aborted() every 20 ms until a client aborts it (or ``limit_s`` passes)."""
    record(f"abortable started {self.request.id}")
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if self.is_aborted():
            record(f"abortable aborted {self.request.id}")
            return "aborted"
        time.sleep(0.02)
    return "ran out"


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


@app.task(name="stuck", time_limit=1)
def stuck(seconds: float, tag: str) -> str:
    """Like code that never returns to Python: SIGALRM (the hard limit raised in the
    task) stays blocked while it sleeps."""
    record(f"start {tag}")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    record(f"done {tag}")
    return tag


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


@app.task(name="shout")
def shout(tag: str) -> str:
    print(f"shouted {tag}")  # worker_redirect_stdouts: a log record, not a bare line
    return tag


@app.task(name="note", ignore_result=True)
def note(tag: str) -> None:
    record(f"note {tag}")


class RecordsFailures(Task):
    """Records each on_failure call, so a test can count them across processes."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict,
                   einfo: object) -> None:
        record(f"on_failure {task_id} {type(exc).__name__}")


@app.task(name="unencodable", base=RecordsFailures)
def unencodable() -> object:
    """A result JSON cannot carry (and pickle can: prefork sends it to the parent)."""
    return object()


@app.task(name="unpicklable", base=RecordsFailures)
def unpicklable() -> object:
    """A result that cannot leave a prefork child (a local function does not pickle)."""
    return lambda: None


def _refuse_to_load() -> None:
    raise RuntimeError("this value does not load")


class LoadsBadly:
    """Pickles, but cannot be unpickled: the prefork parent cannot read it."""

    def __reduce__(self) -> tuple:
        return (_refuse_to_load, ())


@app.task(name="unloadable", base=RecordsFailures)
def unloadable() -> object:
    return LoadsBadly()


@app.task(name="errback")
def errback(task_id: str) -> None:
    record(f"errback {task_id}")


# -- Celery's task API: hooks, class-based tasks, progress, Reject/Ignore, logging -------

task_logger = get_task_logger(__name__)


class Hooked(app.Task):  # type: ignore[misc,name-defined]
    """Records each hook with the process it ran in."""

    def before_start(self, task_id: str, args: tuple, kwargs: dict) -> None:
        record(f"hook before_start {task_id} {os.getpid()}")

    def on_success(self, retval: object, task_id: str, args: tuple, kwargs: dict) -> None:
        record(f"hook on_success {task_id} {os.getpid()} {retval}")

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict,
                   einfo: object) -> None:
        record(f"hook on_failure {task_id} {os.getpid()} {type(exc).__name__} "
               f"{'Traceback' in str(einfo)}")

    def on_retry(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict,
                 einfo: object) -> None:
        record(f"hook on_retry {task_id} {os.getpid()} {type(exc).__name__}")

    def after_return(self, status: str, retval: object, task_id: str, args: tuple,
                     kwargs: dict, einfo: object) -> None:
        record(f"hook after_return {task_id} {os.getpid()} {status}")


@app.task(name="hooked", base=Hooked, bind=True)
def hooked(self: Task, mode: str) -> int:
    record(f"hook run {self.request.id} {os.getpid()}")
    if mode == "fail":
        raise KeyError("nope")
    if mode == "retry" and self.request.retries == 0:
        raise self.retry(exc=RuntimeError("again"), countdown=0.1)
    return os.getpid()


class Multiply(app.Task):  # type: ignore[misc,name-defined]
    """A class-based task, registered as Celery 5 apps do."""

    name = "multiply"

    def run(self, x: int, y: int) -> int:
        task_logger.info("multiplying %s by %s", x, y)
        return x * y


app.register_task(Multiply())


@app.task(name="progress", bind=True)
def progress(self: Task, flag: str) -> str:
    """Reports PROGRESS, then waits until the test creates ``flag``."""
    self.update_state(state="PROGRESS", meta={"done": 1, "pid": os.getpid()})
    deadline = time.monotonic() + 20
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "finished"


@app.task(name="rejecting", bind=True)
def rejecting(self: Task, tag: str, requeue: bool) -> str:
    record(f"rejecting {tag}")
    if count(f"rejecting {tag}") == 1:
        raise Reject(f"not now: {tag}", requeue=requeue)
    return tag


@app.task(name="ignoring")
def ignoring(tag: str) -> None:
    record(f"ignoring {tag}")
    raise Ignore()


@app.task(name="request_fields", bind=True)
def request_fields(self: Task) -> dict:
    r = self.request
    return {"correlation_id": r.correlation_id, "reply_to": r.reply_to, "group": r.group,
            "chord": r.chord, "callbacks": r.callbacks, "errbacks": r.errbacks,
            "timelimit": list(r.timelimit), "origin": r.origin,
            "delivery_info": r.delivery_info, "hostname": r.hostname, "id": r.id}


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
