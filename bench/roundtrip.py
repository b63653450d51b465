"""Where a ``delay().get()`` round trip's time goes: ``make bench-roundtrip``.

Starts one solo worker through the CLI (``celeriac -A roundtrip_app worker``) on an idle
queue of its own, then times N round trips of a task that returns
``time.perf_counter()``. That clock is CLOCK_MONOTONIC, the same in every process on
Linux, so each call splits into: ``delay()`` returning, the task starting (after the
call began), and ``get()`` returning (after the task ran). p50 and p99 of each.

    python bench/roundtrip.py redis|amqp|sqlite [-n 2000]

Results in Redis (db 14) on Redis, over ``rpc://`` on RabbitMQ (vhost /), in the same
file on SQLite. The VM's speed drifts, so compare builds in interleaved runs:
``PYTHONPATH=<other checkout>/src python bench/roundtrip.py redis``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROKERS = {
    "redis": ("redis://127.0.0.1:6379/14", "redis://127.0.0.1:6379/14"),
    "amqp": ("amqp://guest:guest@127.0.0.1:5672//", "rpc://"),
}
WARMUP = 100

APP = '''
import os, time
from celeriac import Celery
app = Celery("roundtrip", broker=os.environ["RT_BROKER"],
             backend=os.environ.get("RT_BACKEND") or None)
app.conf.task_default_queue = os.environ["RT_QUEUE"]

@app.task(name="roundtrip.stamp")
def stamp():
    return time.perf_counter()
'''


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("broker", choices=("redis", "amqp", "sqlite"))
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "roundtrip_app.py").write_text(APP)
        broker, backend = BROKERS.get(args.broker, (f"sqlite:///{tmp}/rt.db", ""))
        queue = "bench.roundtrip"  # one fixed name: a run leaves nothing new behind
        env = {**os.environ, "RT_BROKER": broker, "RT_BACKEND": backend, "RT_QUEUE": queue,
               "PYTHONPATH": os.pathsep.join([tmp, *sys.path])}
        os.environ.update(env)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "roundtrip_app", "worker", "-P", "solo",
             "-Q", queue, "-l", "warning"], env=env, cwd=tmp, stdout=subprocess.DEVNULL)
        try:
            sys.path.insert(0, tmp)
            from roundtrip_app import app, stamp  # type: ignore[import-not-found]

            for _ in range(WARMUP):  # also waits for the worker to be up
                stamp.delay().get(timeout=30)
            delay, to_task, to_get, total = [], [], [], []
            for _ in range(args.n):
                began = time.perf_counter()
                result = stamp.delay()
                sent = time.perf_counter()
                ran = result.get(timeout=10)
                done = time.perf_counter()
                delay.append(sent - began)
                to_task.append(ran - began)
                to_get.append(done - ran)
                total.append(done - began)
            app.close()
        finally:
            worker.terminate()
            worker.wait(30)
    print(f"{args.broker}, {args.n} round trips, p50 / p99 ms:")
    for name, values in (("delay() returns", delay), ("task starts", to_task),
                         ("get() returns after the task", to_get), ("round trip", total)):
        print(f"  {name:30s} {percentile(values, 0.5):6.3f} / {percentile(values, 0.99):6.3f}")


if __name__ == "__main__":
    main()
