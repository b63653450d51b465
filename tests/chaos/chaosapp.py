"""The app chaos tests run real workers for (``celeriac -A chaosapp worker``).

Everything comes from the environment, set by each test: CELERIAC_BROKER_URL, the
record file (CHAOS_RECORD), the Redis key prefix (CHAOS_KEYPREFIX), the lease
(CHAOS_LEASE_S), an optional Redis socket timeout (CHAOS_SOCKET_TIMEOUT_S).
Executions are appended to the record file by the task itself, one line each, with
O_APPEND so lines from several processes never interleave: the record lives outside
the worker and survives any fault the test injects into it.
"""

from __future__ import annotations

import asyncio
import os
import time

from celeriac import Celery, SoftTimeLimitExceeded

app = Celery("chaos")
_options: dict[str, object] = {
    "visibility_timeout": float(os.environ.get("CHAOS_LEASE_S", "60")),
    "polling_interval": 0.02,
    "global_keyprefix": os.environ.get("CHAOS_KEYPREFIX", ""),
    "retry_timeout": float(os.environ.get("CHAOS_RETRY_TIMEOUT_S", "60")),
}
if os.environ.get("CHAOS_SOCKET_TIMEOUT_S"):
    _options["socket_timeout"] = float(os.environ["CHAOS_SOCKET_TIMEOUT_S"])
app.conf.broker_transport_options = _options
if os.environ.get("CHAOS_SECURITY_KEY"):
    app.conf.security_key = os.environ["CHAOS_SECURITY_KEY"]


def record(line: str) -> None:
    """Append one line to the record file (atomic for lines this short)."""
    path = os.environ.get("CHAOS_RECORD")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


@app.task(name="chaos.work", ignore_result=True)
def work(tag: str, seconds: float = 0.0) -> None:
    """Sleep, then record ``done <tag> <pid>``: a run counts once it finished."""
    if seconds:
        time.sleep(seconds)
    record(f"done {tag} {os.getpid()}")


@app.task(name="chaos.awork", ignore_result=True)
async def awork(tag: str, seconds: float = 0.0) -> None:
    if seconds:
        await asyncio.sleep(seconds)
    record(f"done {tag} {os.getpid()}")


@app.task(name="chaos.limited", ignore_result=True, rate_limit="10/s")
def limited(tag: str, seconds: float = 0.0) -> None:
    record(f"limited {tag} {time.time():.4f}")


@app.task(name="chaos.alimited", ignore_result=True, rate_limit="10/s")
async def alimited(tag: str, seconds: float = 0.0) -> None:
    record(f"limited {tag} {time.time():.4f}")


@app.task(name="chaos.soft", ignore_result=True, soft_time_limit=0.5)
def soft(tag: str, seconds: float = 0.0) -> None:
    """Busy for up to 5 s; a soft time limit must interrupt it."""
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            time.sleep(0.01)
    except SoftTimeLimitExceeded:
        record(f"soft-caught {tag}")
        return
    record(f"soft-missed {tag}")


@app.task(name="chaos.asoft", ignore_result=True, soft_time_limit=0.5)
async def asoft(tag: str, seconds: float = 0.0) -> None:
    try:
        await asyncio.sleep(5)
    except SoftTimeLimitExceeded:
        record(f"soft-caught {tag}")
        raise
    record(f"soft-missed {tag}")


@app.task(name="chaos.hard", ignore_result=True, time_limit=1)
def hard(tag: str, seconds: float = 0.0) -> None:
    """Runs far past its hard limit; the worker must end it and go on."""
    record(f"hard-start {tag}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.01)
    record(f"hard-finished {tag}")


@app.task(name="chaos.ahard", ignore_result=True, time_limit=1)
async def ahard(tag: str, seconds: float = 0.0) -> None:
    record(f"hard-start {tag}")
    await asyncio.sleep(30)
    record(f"hard-finished {tag}")
