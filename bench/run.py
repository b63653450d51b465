"""``make bench``: celeriac, Celery and Dramatiq on this machine, in one run.

Broker by broker (SQLite, Redis, RabbitMQ), each system in turn, so the numbers that are
compared are measured minutes apart; for each system and broker, in this order (the
queue is emptied before each publish):
 1. publish N no-op tasks with ``.delay()`` in a loop from one thread (timed), between
    a start and an end marker task;
 2. start one worker in the system's throughput configuration through its CLI and time
    the drain from the start marker's run to the end marker's run (consume rate);
 3. publish N with the system's bulk API, drain them with the tutorial's default worker;
 4. round-trip latency ``delay()`` -> ``get()`` with an idle (throughput) worker;
 5. celeriac only: the worker's RSS before and after 100,000 tasks are scheduled an hour
    ahead (they must stay in the broker);
 6. celeriac and Celery on Redis and RabbitMQ, results in Redis: a chord of 1,000 no-op
    tasks (BENCH_CHORD_N), from sending it to reading its body's result, with the fast
    worker (median of 3). ``bench/run.py --only chord`` (``make bench-chord``) runs
    only this row, for both systems and both brokers.
 7. Redis, celeriac and Celery: 2,000 tasks that block for 0.5 s on each pool with
    ``-c 1000``, and the RSS of 1,000 slots (bench/pools.py).
 8. Redis, celeriac: the fast worker's consume rate with and without ``-E``,
    interleaved runs (bench/events_cost.py).
 8b. celeriac only, every broker: beat with 1,000 entries due every second for 20 s, how
    late each run's publish returned (p50/p99), then an idle scheduler's CPU in 10 s
    (bench/beat.py, also ``make bench-beat BROKER=...``).
Marker tasks write ``time.time()`` to a file: the same small cost in every system, two
tasks out of N. The worker's peak RSS (process and children) is sampled every 50 ms.

Environment: BENCH_N (default 50,000; smaller is a quick run whose table goes to
results/raw/ only), BENCH_LATENCY_N (2,000), BENCH_DELAYED_N (100,000), BENCH_SYSTEMS
(e.g. ``celeriac,celery``), BENCH_BROKERS (e.g. ``sqlite,redis``), BENCH_PHASES (some of
``fast,default,latency,delayed,pools,chord,cpu,fair,events,beat,dashboard``: a run of
only those, whose table goes to results/raw/ only), BENCH_BLOCK_N (2,000: the blocking
tasks of ``pools``), BENCH_CPU_N (1,000).
Celery and celeriac only, on Redis and RabbitMQ:
 8. CPU-bound: CPU_N tasks that each burn 2 ms of CPU, published first, then drained by
    the default worker with ``-c 1`` and with ``-c 2`` (first start to last end), the
    pair run BENCH_CPU_ROUNDS (2) times interleaved, the best of each kept;
 9. long tasks: 20 tasks of 1 s published first, then two default workers ``-c 2``
    started together; first start to last end (ideal: 5 s); then 2 tasks of 10 s
    published before 18 of 1 s, the same way (ideal: 10 s; a worker that prefetches
    short tasks behind its two long ones holds them until those end).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import events_cost
import infra
import pools
import report
from progress import Bar
from systems import (
    PEERS,
    ROOT,
    SYSTEMS,
    System,
    WorkerConfig,
    broker_url,
    import_error,
    result_backend,
    versions,
)

FULL_N = 50_000
N = int(os.environ.get("BENCH_N", FULL_N))
LATENCY_N = int(os.environ.get("BENCH_LATENCY_N", 2000))
DELAYED_N = int(os.environ.get("BENCH_DELAYED_N", 100_000))
CHORD_N = int(os.environ.get("BENCH_CHORD_N", 1000))
#: the systems and brokers the chord row compares
CHORD_SYSTEMS, CHORD_BROKERS = ("celeriac", "celery"), ("redis", "amqp")
#: the CPU-bound row: tasks that each burn CPU_MS of CPU, drained by 1 then 2 children
CPU_N, CPU_MS = int(os.environ.get("BENCH_CPU_N", 1000)), 2.0
CPU_ROUNDS = int(os.environ.get("BENCH_CPU_ROUNDS", 2))
#: the long-task row: FAIR_N tasks of FAIR_S seconds, FAIR_WORKERS workers x 2 children
FAIR_N, FAIR_S, FAIR_WORKERS = 20, 1.0, 2
CLIENT = ROOT / "bench" / "client.py"
RESULTS = ROOT / "bench" / "results"
RAW = RESULTS / "raw"
BROKER_ORDER = ("sqlite", "redis", "amqp")
PHASES = ("fast", "default", "latency", "delayed", "pools", "chord", "cpu", "fair",
          "events", "beat", "dashboard")
BEAT = ROOT / "bench" / "beat.py"
DASHBOARD = ROOT / "bench" / "dashboard.py"


class PhaseError(Exception):
    pass


class Pair:
    """One system on one broker: its environment, files and results."""

    def __init__(self, system: System, broker: str, workdir: Path) -> None:
        self.system, self.broker = system, broker
        self.dir = workdir / f"{system.name}-{broker}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sqlite = self.dir / "bench.sqlite3"
        self.url = broker_url(broker, self.sqlite)
        backend, self.backend_note = result_backend(system, broker)
        self.env = clean_env()
        self.env.update({
            "BENCH_BROKER_URL": self.url, "BENCH_RESULT_BACKEND": backend,
            "BENCH_REDIS_URL": infra.REDIS_URL,
            # celeriac's venv holds this checkout (editable): its src first all the same,
            # so a venv shared with another checkout still runs this one's code
            "PYTHONPATH": os.pathsep.join((str(PEERS), str(ROOT / "src")))
            if system.name == "celeriac" else str(PEERS),
            "CELERIAC_HOME": str(self.dir), "PYTHONUNBUFFERED": "1",
        })
        self.results: dict[str, Any] = {"errors": [], "backend": self.backend_note}
        self._marks = 0

    # -- helpers ------------------------------------------------------------------------
    def reset(self) -> None:
        """An empty broker: flushed db, fresh vhost, or a new SQLite file."""
        if self.broker == "redis":
            infra.flush_redis()
        elif self.broker == "amqp":
            infra.create_vhost()
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite}{suffix}").unlink(missing_ok=True)

    def marks(self) -> tuple[Path, Path]:
        self._marks += 1
        return self.dir / f"start-{self._marks}", self.dir / f"end-{self._marks}"

    def client(self, *args: str, limit_s: float) -> dict[str, Any]:
        try:
            proc = subprocess.run(
                [self.system.python, str(CLIENT), self.system.name, *args], cwd=PEERS,
                env=self.env, stdout=subprocess.PIPE, text=True, timeout=limit_s)
        except subprocess.TimeoutExpired as exc:
            raise PhaseError(f"client {args[0]} took over {limit_s:.0f}s") from exc
        if proc.returncode != 0:
            raise PhaseError(f"client {args[0]} exited {proc.returncode}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    def worker(self, config: WorkerConfig, tag: str) -> Any:
        log = self.dir / f"worker-{tag}.log"
        return infra.worker(self.system.worker_argv(config), self.env, PEERS, log)

    def probe(self) -> infra.QueueProbe:
        queue = self.system.amqp_queue() if self.broker == "amqp" else self.system.queue()
        return infra.QueueProbe(self.broker, self.url, queue)

    # -- phases -------------------------------------------------------------------------
    def publish(self, mode: str) -> tuple[Path, Path]:
        self.reset()
        start, end = self.marks()
        self.results[f"publish_{mode}"] = self.client(
            "publish", "--mode", mode, "-n", str(N), "--start", str(start), "--end", str(end),
            limit_s=max(300.0, N / 100))
        return start, end

    def consume(self, config: WorkerConfig, start: Path, end: Path) -> None:
        total = N + 2
        bar = Bar(f"consume, {config.key} worker", total)
        probe = self.probe()
        last = [0.0]

        def tick() -> None:
            if time.monotonic() - last[0] >= 0.5:
                last[0] = time.monotonic()
                ready = probe.ready()
                if ready is not None:
                    bar.update(total - ready)

        limit_s = max(180.0, N / 80)
        try:
            with self.worker(config, f"consume-{config.key}") as proc:
                finished = infra.wait_for_file(end, proc, limit_s, tick)
                peak = proc.rss.peak_bytes
                if not finished:
                    why = "worker exited" if not proc.alive() else f"not done in {limit_s:.0f}s"
                    raise PhaseError(f"consume ({config.key}): {why}\n{proc.tail()}")
        finally:
            probe.close()
        began, ended = float(start.read_text()), float(end.read_text())
        seconds = ended - began
        rate = (N + 1) / seconds if seconds > 0 else float("inf")
        bar.done(f"{rate:,.0f} tasks/s, worker peak RSS {peak / 2**20:.0f} MB")
        self.results[f"consume_{config.key}"] = {
            "rate": rate, "seconds": seconds, "peak_rss_mb": peak / 2**20,
            "config": config.label}

    def latency(self) -> None:
        self.reset()
        waited = infra.settle_io()  # the phases before leave the disk busy for a while
        if waited >= 1.0:
            print(f"  waited {waited:.0f}s for the disk to settle", file=sys.stderr)
        with self.worker(self.system.fast, "latency") as proc:
            result = self.client("latency", "-n", str(LATENCY_N), limit_s=600)
            result["peak_rss_mb"] = proc.rss.peak_bytes / 2**20
        self.results["latency"] = result

    def delayed_rss(self) -> None:
        """The worker's RSS before and after DELAYED_N tasks are scheduled an hour ahead."""
        self.reset()
        with self.worker(self.system.fast, "delayed") as proc:
            start, end = self.marks()
            self.client("publish", "--mode", "delay", "-n", "0", "--start", str(start),
                        "--end", str(end), limit_s=120)
            if not infra.wait_for_file(end, proc, 60):
                raise PhaseError(f"delayed: the worker did not start\n{proc.tail()}")
            time.sleep(2.0)
            before = proc.rss.current()
            result = self.client("delayed", "-n", str(DELAYED_N), limit_s=600)
            # Where the client sends them to the queue with an eta header (Redis, by
            # default), the worker receives each and parks it in the delay store: the
            # RSS is read once the queue is empty, i.e. every one has passed the worker
            result["received_s"] = self.wait_for_empty_queue(limit_s=300)
            time.sleep(5.0)  # the worker goes on fetching (and promoting) meanwhile
            after = proc.rss.current()
            if not proc.alive():
                raise PhaseError(f"delayed: the worker died\n{proc.tail()}")
        result.update({"n": DELAYED_N, "rss_before_mb": before / 2**20,
                       "rss_after_mb": after / 2**20, "delta_mb": (after - before) / 2**20})
        print(f"  worker RSS {before / 2**20:.1f} MB -> {after / 2**20:.1f} MB with "
              f"{DELAYED_N:,} delayed tasks in the broker", file=sys.stderr)
        self.results["delayed"] = result

    def chord(self) -> None:
        """A chord of CHORD_N no-op tasks, send to the body's result, results in Redis."""
        self.reset()
        infra.flush_redis()
        saved = self.env["BENCH_RESULT_BACKEND"]
        self.env["BENCH_RESULT_BACKEND"] = infra.REDIS_URL
        try:
            with self.worker(self.system.fast, "chord") as proc:
                result = self.client("chord", "-n", str(CHORD_N), limit_s=900)
                result["peak_rss_mb"] = proc.rss.peak_bytes / 2**20
        finally:
            self.env["BENCH_RESULT_BACKEND"] = saved
        print(f"  chord of {CHORD_N:,}: median {result['median_s']:.3f} s "
              f"({result['rate']:,.0f} tasks/s)", file=sys.stderr)
        self.results["chord"] = result

    def beat(self) -> None:
        """celeriac's scheduler with 1,000 entries due every second (bench/beat.py)."""
        self.reset()
        try:
            proc = subprocess.run([self.system.python, str(BEAT), self.broker, "--url",
                                   self.url, "--json"], cwd=PEERS, env=self.env,
                                  stdout=subprocess.PIPE, text=True, timeout=180)
        except subprocess.TimeoutExpired as exc:
            raise PhaseError("beat took over 180s") from exc
        if proc.returncode != 0:
            raise PhaseError(f"beat exited {proc.returncode}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  {result['runs']:,} runs: lateness p50 {result['p50_ms']:.1f} ms, p99 "
              f"{result['p99_ms']:.1f} ms; idle CPU {result['idle_cpu_ms']:.1f} ms in 10 s",
              file=sys.stderr)
        self.results["beat"] = result

    def dashboard(self) -> None:
        """``celeriac dashboard`` fed 10,000 task events/s for 20 s (bench/dashboard.py):
        does it see every event, and does its memory stay flat."""
        try:
            proc = subprocess.run([self.system.python, str(DASHBOARD), "--seconds", "20",
                                   "--json"], cwd=PEERS, env=self.env, stdout=subprocess.PIPE,
                                  text=True, timeout=180)
        except subprocess.TimeoutExpired as exc:
            raise PhaseError("the dashboard bench took over 180s") from exc
        lines = proc.stdout.strip().splitlines()
        if not lines or not lines[-1].startswith("{"):
            raise PhaseError(f"the dashboard bench exited {proc.returncode}")
        result: dict[str, Any] = json.loads(lines[-1])
        print(f"  {result['sent']:,} events at {result['rate']:,.0f}/s: seen {result['seen']:,}"
              f", CPU {result['cpu_pct']:.0f}%, RSS {result['rss_middle_mb']:.0f} -> "
              f"{result['rss_end_mb']:.0f} MB", file=sys.stderr)
        self.results["dashboard"] = result

    def wait_for_empty_queue(self, limit_s: float) -> float:
        """Seconds until the queue has no ready message (or the limit)."""
        probe, began = self.probe(), time.monotonic()
        try:
            while time.monotonic() - began < limit_s and (probe.ready() or 0) > 0:
                time.sleep(0.1)
        finally:
            probe.close()
        return time.monotonic() - began

    def timed_batch(self, tag: str, groups: list[tuple[int, float, float]],
                    configs: list[WorkerConfig]) -> float:
        """Publish the timed tasks of ``groups`` ((count, cpu_ms, sleep_s) each, in that
        order), then start ``configs``' workers on them; seconds from the first task's
        start to the last one's end (from the tasks' own records)."""
        self.reset()
        path = self.dir / f"{tag}.record"
        path.unlink(missing_ok=True)
        for n, cpu_ms, sleep_s in groups:
            self.client("timed", "-n", str(n), "--path", str(path), "--cpu-ms", str(cpu_ms),
                        "--sleep-s", str(sleep_s), limit_s=300)
        total = sum(n for n, _, _ in groups)
        limit_s = 60 + sum(n * (cpu_ms / 1000 + sleep_s) for n, cpu_ms, sleep_s in groups)
        with contextlib.ExitStack() as stack:
            procs = [stack.enter_context(self.worker(c, f"{tag}-{i}"))
                     for i, c in enumerate(configs)]
            deadline = time.monotonic() + limit_s
            while _lines(path) < total:
                if time.monotonic() > deadline or not all(p.alive() for p in procs):
                    raise PhaseError(f"{tag}: {_lines(path)} of {total} tasks ran\n"
                                     f"{procs[0].tail()}")
                time.sleep(0.05)
        runs = [tuple(map(float, line.split())) for line in path.read_text().splitlines()]
        return max(end for _, end in runs) - min(start for start, _ in runs)

    def cpu_bound(self) -> None:
        """The default worker with 1 and with 2 children on CPU_MS tasks, interleaved
        CPU_ROUNDS times, the best of each (a busy machine only ever slows a run)."""
        seconds: dict[int, float] = {}
        for _ in range(CPU_ROUNDS):
            for children in (1, 2):
                config = WorkerConfig(f"cpu{children}", f"default, -c {children}",
                                      (*self.system.default.args, "-c", str(children)))
                took = self.timed_batch(f"cpu{children}", [(CPU_N, CPU_MS, 0.0)], [config])
                seconds[children] = min(took, seconds.get(children, took))
        speedup = seconds[1] / seconds[2]
        print(f"  {CPU_N:,} x {CPU_MS:g} ms CPU: 1 child {seconds[1]:.2f}s, 2 children "
              f"{seconds[2]:.2f}s ({speedup:.2f}x)", file=sys.stderr)
        self.results["cpu"] = {"n": CPU_N, "cpu_ms": CPU_MS, "one_s": seconds[1],
                               "two_s": seconds[2], "speedup": speedup}

    def long_tasks(self) -> None:
        """FAIR_WORKERS default workers x 2 children on FAIR_N tasks of FAIR_S, then on
        the mixed batch: 2 tasks of 10 s published before 18 of 1 s."""
        # each its own node name: two Celery workers named alike clash on RabbitMQ (the
        # exclusive pidbox queue) and the second one exits
        configs = [WorkerConfig("fair", "default, -c 2",
                                (*self.system.default.args, "-c", "2", "-n", f"fair{i}@%h"))
                   for i in range(FAIR_WORKERS)]
        equal = self.timed_batch("fair", [(FAIR_N, 0.0, FAIR_S)], configs)
        mixed = self.timed_batch("mixed", [(2, 0.0, 10.0), (18, 0.0, 1.0)], configs)
        ideal = FAIR_N * FAIR_S / (FAIR_WORKERS * 2)
        print(f"  {FAIR_N} x {FAIR_S:g} s on {FAIR_WORKERS} workers x 2 children: "
              f"{equal:.2f}s (ideal {ideal:g}s); 2 x 10 s + 18 x 1 s: {mixed:.2f}s "
              f"(ideal 10s)", file=sys.stderr)
        self.results["fair"] = {"n": FAIR_N, "task_s": FAIR_S, "workers": FAIR_WORKERS,
                                "seconds": equal, "ideal_s": ideal, "mixed_s": mixed}

    def run(self, only: str | None = None) -> dict[str, Any]:
        chord_row = self.system.name in CHORD_SYSTEMS and self.broker in CHORD_BROKERS
        phases = [("fast", "publish delay + consume (fast worker)",
                   lambda: self.consume(self.system.fast, *self.publish("delay"))),
                  ("default", "publish bulk + consume (default worker)",
                   lambda: self.consume(self.system.default, *self.publish("bulk"))),
                  ("latency", "latency", self.latency)]
        if self.system.name == "celeriac":
            phases.append(("delayed", "delayed tasks and RSS", self.delayed_rss))
        if self.broker == "redis" and self.system.name in pools.ROWS:
            phases.append(("pools", f"blocking tasks, -c {pools.CONCURRENCY}",
                           lambda: pools.run(self)))
        if chord_row:
            phases.append(("chord", f"chord of {CHORD_N:,}", self.chord))
        if self.system.name in ("celeriac", "celery") and self.broker != "sqlite":
            phases += [("cpu", f"CPU-bound, {CPU_N:,} x {CPU_MS:g} ms, 1 vs 2 children",
                        self.cpu_bound),
                       ("fair", f"long tasks, {FAIR_N} x {FAIR_S:g} s, {FAIR_WORKERS} workers "
                                f"x 2 children", self.long_tasks)]
        if self.broker == "redis" and self.system.name == "celeriac":
            phases.append(("events", "consume with and without -E (interleaved)",
                           lambda: events_cost.run(self)))
        if self.system.name == "celeriac":
            phases.append(("beat", "beat, 1,000 entries due every second", self.beat))
        if self.system.name == "celeriac" and self.broker == "redis":
            phases.append(("dashboard", "the dashboard at 10,000 events/s", self.dashboard))
        wanted = ("chord",) if only == "chord" else selected("BENCH_PHASES", PHASES)
        try:
            for _key, title, phase in (p for p in phases if p[0] in wanted):
                print(f"- {self.system.name} on {self.broker}: {title}", file=sys.stderr)
                try:
                    phase()
                except Exception as exc:
                    message = str(exc) if isinstance(exc, PhaseError) else \
                        traceback.format_exc(limit=3)
                    print(f"  FAILED: {message}", file=sys.stderr)
                    self.results["errors"].append(f"{title}: {message.splitlines()[0]}")
        finally:
            self.teardown()
        return self.results

    def teardown(self) -> None:
        try:
            if self.broker == "redis":
                infra.flush_redis()
            elif self.broker == "amqp":
                infra.delete_vhost()
        except Exception as exc:
            print(f"  clean-up of {self.broker} failed: {exc}", file=sys.stderr)


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def clean_env() -> dict[str, str]:
    """This process's environment without settings that would override the bench's."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("CELERIAC_", "CELERY_", "DRAMATIQ_", "dramatiq_"))}


def unavailable(system: System, broker: str) -> str | None:
    reason = {"redis": infra.redis_reason, "amqp": infra.amqp_reason,
              "sqlite": lambda: None}[broker]()
    if reason is None and system.name == "celeriac" and broker != "sqlite":
        error = import_error(system, f"celeriac.brokers.{broker}")
        if error is not None:
            reason = f"celeriac.brokers.{broker} does not import ({error})"
    return reason


def selected(variable: str, names: tuple[str, ...]) -> tuple[str, ...]:
    wanted = [w.strip() for w in os.environ.get(variable, "").split(",") if w.strip()]
    return tuple(n for n in names if not wanted or n in wanted)


def main() -> int:
    only = None
    if sys.argv[1:2] == ["--only"] and sys.argv[2:3]:
        only = sys.argv[2]
        if only != "chord":
            print(f"--only: unknown row {only!r} (chord)", file=sys.stderr)
            return 2
        os.environ.setdefault("BENCH_SYSTEMS", ",".join(CHORD_SYSTEMS))
        os.environ.setdefault("BENCH_BROKERS", ",".join(CHORD_BROKERS))
    started = time.monotonic()
    run: dict[str, Any] = {"n": N, "latency_n": LATENCY_N, "delayed_n": DELAYED_N,
                           "chord_n": CHORD_N,
                           "machine": report.machine(), "systems": {}, "configs": {}}
    print(f"celeriac bench: N={N:,} on {run['machine']['cpu']} "
          f"({run['machine']['cores']} cores)", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="celeriac-bench-"))
    try:
        systems = [s for s in SYSTEMS
                   if s.name in selected("BENCH_SYSTEMS", tuple(x.name for x in SYSTEMS))]
        for system in systems:
            run["configs"][system.name] = {"versions": versions(system),
                                           "fast": system.fast.label,
                                           "default": system.default.label,
                                           "fast_cmd": " ".join((system.cli,
                                                                 *system.fast.args)),
                                           "default_cmd": " ".join((system.cli,
                                                                    *system.default.args))}
            run["systems"][system.name] = {}
        # broker by broker, every system in turn: the numbers compared are measured
        # minutes apart, not a quarter of an hour (a shared VM's speed drifts)
        for broker in BROKER_ORDER:
            for system in systems:
                if broker not in selected("BENCH_BROKERS", system.brokers):
                    continue
                reason = unavailable(system, broker)
                if reason is not None:
                    print(f"- {system.name} on {broker}: skipped: {reason}", file=sys.stderr)
                    run["systems"][system.name][broker] = {"unavailable": reason}
                    continue
                pair = Pair(system, broker, workdir)
                run["systems"][system.name][broker] = pair.run(only)
    finally:
        keep = RAW / "last-run"
        shutil.rmtree(keep, ignore_errors=True)
        RAW.mkdir(parents=True, exist_ok=True)
        shutil.copytree(workdir, keep, ignore=shutil.ignore_patterns("*.sqlite3*"))
        shutil.rmtree(workdir, ignore_errors=True)
    run["minutes"] = (time.monotonic() - started) / 60
    if only == "chord":
        print(report.write_chord(run, RAW))
        return 0
    full = N >= FULL_N and not os.environ.get("BENCH_PHASES", "").strip()
    print(report.write(run, RESULTS if full else RAW))
    return 0


if __name__ == "__main__":
    sys.exit(main())
