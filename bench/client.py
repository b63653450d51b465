"""The producer side of the benchmark, run inside each system's own venv.

    python bench/client.py SYSTEM publish --mode delay|bulk -n N --start PATH --end PATH
    python bench/client.py SYSTEM latency -n 2000
    python bench/client.py SYSTEM delayed -n 100000       (celeriac only)
    python bench/client.py SYSTEM chord -n 1000 --repeat 3   (Redis results)
    python bench/client.py SYSTEM block -n 2000 --seconds 0.5 --start PATH --end PATH [--coroutine]
    python bench/client.py SYSTEM timed -n 20 --path P --cpu-ms 0 --sleep-s 1

SYSTEM is celeriac, celery or dramatiq: the module ``<SYSTEM>_app`` in bench/peers (on
PYTHONPATH) gives the tasks and the calls. The result is one JSON line on stdout;
progress goes to stderr. Only the stdlib and the system under test are imported here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from typing import Any

from progress import Bar

WARMUP = 50


def publish(peer: Any, mode: str, n: int, start: str, end: str) -> dict[str, Any]:
    peer.send_mark(start)  # the consume phase times from this task's run ...
    if n == 0:
        peer.send_mark(end)
        return {"seconds": 0.0, "rate": 0.0}
    bar = Bar(f"publish {mode}", n)
    began = time.perf_counter()
    if mode == "delay":
        delay = peer.delay_noop
        for i in range(n):
            delay()
            if i & 1023 == 0:
                bar.update(i)
    else:
        peer.bulk_noop(n, bar.update)
    seconds = time.perf_counter() - began
    bar.done(f"{n / seconds:,.0f} tasks/s")
    peer.send_mark(end)  # ... to this one's
    return {"seconds": seconds, "rate": n / seconds}


def latency(peer: Any, n: int) -> dict[str, Any]:
    for _ in range(WARMUP):  # also waits for the worker to be up
        peer.roundtrip()
    bar = Bar("round trips", n)
    samples = []
    for i in range(n):
        began = time.perf_counter()
        peer.roundtrip()
        samples.append(time.perf_counter() - began)
        bar.update(i)
    samples.sort()
    p50 = samples[len(samples) // 2] * 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    bar.done(f"p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    return {"p50_ms": p50, "p99_ms": p99, "mean_ms": statistics.fmean(samples) * 1000,
            "max_ms": samples[-1] * 1000}


def delayed(peer: Any, n: int) -> dict[str, Any]:
    bar = Bar("schedule delayed (countdown 1 h)", n)
    began = time.perf_counter()
    peer.bulk_noop(n, bar.update, countdown_s=3600.0)
    seconds = time.perf_counter() - began
    bar.done()
    return {"seconds": seconds}


def chords(peer: Any, n: int, repeat: int) -> dict[str, Any]:
    """A chord of ``n`` no-op tasks, send to the body's result, ``repeat`` times (after
    a chord of 10 that also waits for the worker to be up)."""
    peer.chord_noop(10)
    seconds = []
    for _ in range(repeat):
        seconds.append(peer.chord_noop(n))
        print(f"  chord of {n:,}: {seconds[-1]:.3f} s", file=sys.stderr)
    median = statistics.median(seconds)
    return {"n": n, "seconds": seconds, "median_s": median, "rate": n / median}


def blocks(peer: Any, n: int, seconds: float, start: str, done: str,
           coroutine: bool) -> dict[str, Any]:
    """A start marker, then ``n`` tasks that block for ``seconds`` and append the time
    they ended to ``done`` (bench/pools.py)."""
    peer.send_mark(start)
    began = time.perf_counter()
    peer.send_blocks(n, seconds, done, coroutine)
    return {"publish_s": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system")
    parser.add_argument("command",
                        choices=("publish", "latency", "delayed", "chord", "block", "timed"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", default="delay")
    parser.add_argument("-n", type=int, required=True)
    parser.add_argument("--start", default="")
    parser.add_argument("--end", default="")
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--coroutine", action="store_true")
    parser.add_argument("--path", default="")
    parser.add_argument("--cpu-ms", type=float, default=0.0)
    parser.add_argument("--sleep-s", type=float, default=0.0)
    args = parser.parse_args()
    peer = importlib.import_module(f"{args.system}_app")
    try:
        if args.command == "publish":
            result = publish(peer, args.mode, args.n, args.start, args.end)
        elif args.command == "block":
            result = blocks(peer, args.n, args.seconds, args.start, args.end, args.coroutine)
        elif args.command == "timed":
            peer.send_timed(args.n, args.path, args.cpu_ms, args.sleep_s)
            result = {"sent": args.n}
        elif args.command == "latency":
            result = latency(peer, args.n)
        elif args.command == "chord":
            result = chords(peer, args.n, args.repeat)
        else:
            result = delayed(peer, args.n)
    finally:
        peer.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
