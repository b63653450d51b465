"""Where a drain's CPU goes, per task: the worker's processes and the broker's.

    python bench/cpu_split.py amqp default [-n 50000] [--runs 1] [--src A --src B]

Publishes N no-op tasks in bulk (as ``make bench``'s default phase does), starts the
worker through the CLI (``default``: ``worker -l info``; ``solo``: the fast worker),
and reads utime+stime from ``/proc/<pid>/stat`` of the worker's parent, each child and
the broker (``beam.smp`` or ``redis-server``) when the start marker runs and when the
end marker runs: the CPU each spent per task during the drain, and the rate.
``--src`` runs the same measurement with another checkout's ``src`` on PYTHONPATH,
alternating between them run by run (interleaved pairs on a noisy machine).
Environment as for ``bench/run.py`` (BENCH_REDIS_DB, BENCH_AMQP_VHOST).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import infra
import psutil
from run import Pair, PhaseError
from systems import SYSTEMS, WorkerConfig

TICK = os.sysconf("SC_CLK_TCK")
SPY = os.environ.get("PY_SPY", "py-spy")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def broker_pid(broker: str) -> int | None:
    name = {"amqp": "beam.smp", "redis": "redis-server"}.get(broker)
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == name:
            return int(proc.pid)
    return None


def waited_s(pid: int) -> float:
    """Seconds the process (all its threads) spent runnable, waiting for a CPU."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for label, pid in pids.items():
        try:
            out[label] = cpu_s(pid)
            out[f"{label}.wait"] = waited_s(pid)
        except OSError:
            out[label] = out[f"{label}.wait"] = float("nan")
    return out


def wait_file(path: Path, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not (path.exists() and path.stat().st_size > 0):
        if time.monotonic() > deadline:
            raise PhaseError(f"{path.name} did not appear in {limit_s:.0f}s")
        time.sleep(0.002)


def measure(pair: Pair, config: WorkerConfig, n: int, spy: str = "",
            workers: int = 1) -> dict[str, float]:
    start, end = pair.publish("bulk")
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(pair.worker(
            WorkerConfig(config.key, config.label, (*config.args, "-n", f"split{i}@%h")),
            f"split{i}")) for i in range(workers)]
        wait_file(start, 120)
        pids = {}
        for w, proc in enumerate(procs):
            root = psutil.Process(proc.proc.pid)
            label = "parent" if workers == 1 else f"w{w}"
            pids[label] = root.pid
            for i, child in enumerate(sorted(root.children(), key=lambda c: c.pid)):
                pids[f"{label}.child{i}" if workers > 1 else f"child{i}"] = child.pid
        bpid = broker_pid(pair.broker)
        if bpid is not None:
            pids["broker"] = bpid
        spying = None
        if spy:  # py-spy's collapsed stacks of the parent, for flame graphs
            rate = os.environ.get("SPY_RATE", "250")  # samples a second
            spying = subprocess.Popen([SPY, "record", "-p", str(procs[0].proc.pid), "-r",
                                       rate, "-f", "raw", "-o", spy, "--nonblocking"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = snapshot(pids)
        wait_file(end, max(180.0, n / 500))
        after = snapshot(pids)
        if spying is not None:
            spying.send_signal(signal.SIGINT)
            spying.wait(30)
    began, ended = float(start.read_text()), float(end.read_text())
    result = {k: (after[k] - before[k]) / n * 1e6 for k in before}
    result["total"] = sum(v for k, v in result.items() if not k.endswith(".wait"))
    result["rate"] = (n + 1) / (ended - began)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("broker", choices=("amqp", "redis"))
    parser.add_argument("config", choices=("default", "solo"))
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--src", action="append", default=[])
    parser.add_argument("--extra", default="", help="more worker arguments")
    parser.add_argument("--workers", type=int, default=1, help="workers side by side")
    parser.add_argument("--spy", default="", help="py-spy's raw stacks of the parent here")
    parser.add_argument("--wrap", default="", help="a script run instead of the CLI "
                        "(with the CLI's arguments)")
    args = parser.parse_args()
    os.environ["BENCH_N"] = str(args.n)
    import run
    run.N = args.n
    system = next(s for s in SYSTEMS if s.name == "celeriac")
    base = system.default if args.config == "default" else system.fast
    config = WorkerConfig(base.key, base.label, (*base.args, *args.extra.split()))
    if args.wrap:
        system = dataclasses.replace(system, cli="python", fast=config, default=config)
        config = WorkerConfig(config.key, config.label, (args.wrap, *config.args))
    srcs = args.src or [str(Path(__file__).resolve().parent.parent / "src")]
    workdir = Path(tempfile.mkdtemp(prefix="celeriac-split-"))
    rows = []
    try:
        for i in range(args.runs):
            for src in srcs:
                pair = Pair(system, args.broker, workdir / f"{i}-{srcs.index(src)}")
                pair.env["PYTHONPATH"] = os.pathsep.join((str(run.PEERS), src))
                pair.env.update({k: v for k, v in os.environ.items()
                                 if k.startswith("CELERIAC_")})
                result = measure(pair, config, args.n, args.spy, args.workers)
                result["src"] = src
                result["run"] = i
                rows.append(result)
                cols = " ".join(f"{k} {v:.1f}" for k, v in result.items()
                                if k not in ("rate", "src", "run"))
                print(f"{src}: {result['rate']:8,.0f}/s  us/task: {cols}", file=sys.stderr)
    finally:
        if args.broker == "amqp":
            infra.delete_vhost()
        else:
            infra.flush_redis()
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
