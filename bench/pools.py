"""Blocking tasks at ``-c 1000`` (issue 22): the tutorial's ``worker -l info -P eventlet
-c 1000``, whose point is a blocking SMS SDK called a thousand times at once.

For each pool, on Redis: BLOCK_N tasks (default 2,000) that each block for 0.5 s
(``time.sleep``; ``asyncio.sleep`` in the ``async def`` row) wait in the queue behind a
start marker; one worker with ``-c 1000`` starts through its CLI and the time is from
the marker's run to the last task's end (each task appends the time it ended to a
file). 2,000 x 0.5 s at 1,000 at once is 1.0 s at best. Memory: the worker's RSS at
rest before any task (a worker life of its own), and at rest after the burst, when
every slot has been used (celeriac's threads stay; Celery's greenlets end with their
task): the difference is what 1,000 slots cost.

``BENCH_PHASES=pools`` runs just these rows (bench/run.py).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import infra
from progress import Bar
from systems import WorkerConfig

CONCURRENCY = 1000
BLOCK_N = int(os.environ.get("BENCH_BLOCK_N", 2000))
BLOCK_S = 0.5
SETTLE_S = 2.0  # at rest: the worker's memory after this long with nothing to do


@dataclass(frozen=True)
class PoolRow:
    pool: str          # what -P says
    coroutine: bool    # async def tasks (asyncio.sleep) instead of time.sleep
    runs_as: str       # what runs the tasks, for the table

    @property
    def key(self) -> str:
        return f"{self.pool}-async" if self.coroutine else self.pool


#: the rows per system; Celery's eventlet pool is the one the tutorial runs
ROWS = {
    "celeriac": (PoolRow("eventlet", False, "OS threads (-P eventlet runs threads)"),
                 PoolRow("gevent", False, "OS threads (-P gevent runs threads)"),
                 PoolRow("threads", False, "OS threads"),
                 PoolRow("asyncio", False, "OS threads (sync tasks)"),
                 PoolRow("asyncio", True, "the event loop (async def tasks)")),
    "celery": (PoolRow("eventlet", False, "greenlets (monkey-patched)"),
               PoolRow("gevent", False, "greenlets (monkey-patched)"),
               PoolRow("threads", False, "OS threads")),
}


def worker_config(system: str, row: PoolRow) -> WorkerConfig:
    """The tutorial's command with this pool: ``worker -l info -P POOL -c 1000``."""
    app = f"{system}_app"
    return WorkerConfig(f"pool-{row.key}", f"-P {row.pool} -c {CONCURRENCY}",
                        ("-A", app, "worker", "-l", "info", "-P", row.pool,
                         "-c", str(CONCURRENCY)))


def run(pair: Any) -> None:
    """Every row of ``pair.system`` (a run.Pair on Redis) into ``pair.results['pools']``."""
    results: dict[str, Any] = {}
    pair.results["pools"] = results
    for row in ROWS.get(pair.system.name, ()):
        print(f"  -P {row.pool} -c {CONCURRENCY}{', async def' if row.coroutine else ''}",
              file=sys.stderr)
        config = worker_config(pair.system.name, row)
        try:
            cell = {"runs_as": row.runs_as, "pool": row.pool, "coroutine": row.coroutine,
                    "rss_rest_mb": _rss_at_rest(pair, config)}
            cell.update(_burst(pair, config, row))
        except Exception as exc:  # one row failing leaves the others
            cell = {"runs_as": row.runs_as, "pool": row.pool, "coroutine": row.coroutine,
                    "error": str(exc).splitlines()[0]}
            pair.results["errors"].append(f"-P {row.pool}: {cell['error']}")
        results[row.key] = cell


def _rss_at_rest(pair: Any, config: WorkerConfig) -> float:
    """MB: the worker up (its marker task ran), then SETTLE_S with nothing to do."""
    pair.reset()
    start, end = pair.marks()
    with pair.worker(config, f"{config.key}-rest") as proc:
        pair.client("publish", "--mode", "delay", "-n", "0", "--start", str(start),
                    "--end", str(end), limit_s=120)
        if not infra.wait_for_file(end, proc, 60):
            raise RuntimeError(f"the worker did not start\n{proc.tail()}")
        time.sleep(SETTLE_S)
        rss: int = proc.rss.current()
    return rss / 2**20


def _burst(pair: Any, config: WorkerConfig, row: PoolRow) -> dict[str, Any]:
    """BLOCK_N blocking tasks queued, then a worker: seconds from the marker's run to
    the last task's end, peak RSS, and RSS at rest after."""
    pair.reset()
    start, _ = pair.marks()
    done = pair.dir / f"done-{row.key}"
    done.unlink(missing_ok=True)
    args = ["block", "-n", str(BLOCK_N), "--seconds", str(BLOCK_S), "--start", str(start),
            "--end", str(done)]
    pair.client(*args, *(["--coroutine"] if row.coroutine else []), limit_s=300)
    bar = Bar(f"{BLOCK_N:,} x {BLOCK_S} s", BLOCK_N)
    limit_s = max(120.0, BLOCK_N * BLOCK_S / 10)
    with pair.worker(config, config.key) as proc:
        deadline = time.monotonic() + limit_s
        while (ended := _lines(done)) < BLOCK_N:
            if not proc.alive() or time.monotonic() > deadline:
                why = "the worker exited" if not proc.alive() else f"not done in {limit_s:.0f}s"
                raise RuntimeError(f"{ended:,} of {BLOCK_N:,} ended: {why}\n{proc.tail()}")
            bar.update(ended)
            time.sleep(0.02)
        peak = proc.rss.peak_bytes
        time.sleep(SETTLE_S)
        after = proc.rss.current()
    seconds = max(map(float, done.read_text().split())) - float(start.read_text())
    bar.done(f"{seconds:.2f} s, {BLOCK_N * BLOCK_S / seconds:,.0f} at once on average")
    return {"seconds": seconds, "n": BLOCK_N, "block_s": BLOCK_S,
            "at_once": BLOCK_N * BLOCK_S / seconds, "peak_rss_mb": peak / 2**20,
            "rss_after_mb": after / 2**20}


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def section(run: dict[str, Any]) -> list[str]:
    """The Markdown section for results.md (empty when no pool row ran)."""
    cells = [(system, cell) for system, brokers in run["systems"].items()
             for cell in brokers.get("redis", {}).get("pools", {}).values()]
    if not cells:
        return []
    lines = [f"## Blocking tasks, `-c {CONCURRENCY}` (Redis)", "",
             f"`worker -l info -P POOL -c {CONCURRENCY}`, {BLOCK_N:,} queued tasks that each "
             f"block for {BLOCK_S} s (`time.sleep`, standing in for the tutorial's SMS SDK; "
             "`asyncio.sleep` in the `async def` row): 1.0 s at best; tasks at once is "
             "2,000 x 0.5 s over the seconds. RSS at rest: before any task (its own worker "
             "life), and after the burst, when all 1,000 slots have been used. The growth "
             "is the slots' and the burst's own (the `async def` row has no threads: what "
             "the thread rows grew more is what 1,000 idle threads cost).", "",
             "| system | `-P` | tasks run in | seconds | tasks at once | RSS at rest MB "
             "| after the burst MB | growth MB |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for system, cell in cells:
        pool = f"{cell['pool']}{' (async def)' if cell['coroutine'] else ''}"
        if "error" in cell:
            lines.append(f"| {system} | {pool} | {cell['runs_as']} | failed | - | - | - | - |")
            continue
        lines.append(
            f"| {system} | {pool} | {cell['runs_as']} | {cell['seconds']:.2f} | "
            f"{cell['at_once']:,.0f} | {cell['rss_rest_mb']:.1f} | {cell['rss_after_mb']:.1f} "
            f"| {cell['rss_after_mb'] - cell['rss_rest_mb']:+.1f} |")
    return [*lines, ""]
