"""Does the dashboard keep up with a busy fleet? ``make bench-dashboard``.

Starts ``celeriac -A <app> dashboard`` on Redis (db 14, a key prefix of its own), then
publishes task events as Celery's workers do (lists of 100 on the kombu fan-out channel
``<prefix>/14.celeryev/task.multi``, each a task's received, started and succeeded) at
RATE events/s for SECONDS, while sampling the dashboard's ``/api/state`` (events seen)
and its resident memory (/proc/<pid>/status) every second. It keeps up when, a second
after the last publish, every event was seen; memory is bounded when the RSS of the
last third of the run is not growing past the second third by more than 10%: the task
history stops at ``--max-tasks`` (its default 10,000; try 100,000).

    python bench/dashboard.py [--rate 10000] [--seconds 30] [--max-tasks 10000]

Redis PUB/SUB drops nothing for a reader that keeps up; a reader that falls behind is
disconnected past Redis's client-output-buffer-limit for pubsub (32 MB soft by default),
so falling behind shows as events missing, never as a queue growing unseen.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROKER = "redis://127.0.0.1:6379/14"
BATCH = 99  # 33 tasks x 3 events per message

APP = '''
import os
from celeriac import Celery
app = Celery("bench_dashboard", broker=os.environ["BD_BROKER"])
app.conf.broker_transport_options = {"global_keyprefix": os.environ["BD_PREFIX"]}
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def envelope(events: list[dict[str, object]], prefix_hostname: str) -> bytes:
    """kombu's Redis envelope, body as Celery's Dispatcher sends it (utf-8 JSON)."""
    return json.dumps({
        "body": json.dumps(events), "content-encoding": "utf-8",
        "content-type": "application/json", "headers": {"hostname": prefix_hostname},
        "properties": {"delivery_mode": 1, "priority": 0, "body_encoding": "utf-8",
                       "delivery_info": {"exchange": "celeryev",
                                         "routing_key": "task.multi"},
                       "delivery_tag": str(uuid.uuid4())}}).encode()


def batch_of_tasks(n_tasks: int, clock: int) -> list[dict[str, object]]:
    now = time.time()
    events: list[dict[str, object]] = []
    for i in range(n_tasks):
        task_id = str(uuid.uuid4())
        base = {"hostname": f"bench-{i % 4}@host", "timestamp": now, "uuid": task_id,
                "clock": clock + i, "pid": 1, "utcoffset": 0}
        events.append({**base, "type": "task-received", "name": f"bench.t{i % 5}",
                       "args": f"({i},)", "kwargs": "{}", "retries": 0})
        events.append({**base, "type": "task-started"})
        events.append({**base, "type": "task-succeeded", "result": "None", "runtime": 0.001})
    return events


def seen(url: str) -> int:
    with urllib.request.urlopen(url + "/api/state", timeout=10) as reply:
        return int(json.load(reply)["events_seen"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000, help="events per second")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--max-tasks", type=int, default=10_000)
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON line of the results (bench/run.py reads it)")
    args = parser.parse_args()
    import redis

    prefix = f"bench-dash-{uuid.uuid4().hex[:6]}:"
    channel = f"{prefix}/14.celeryev/task.multi"
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    (folder / "bench_dashboard_app.py").write_text(APP)
    env = {**os.environ, "BD_BROKER": BROKER, "BD_PREFIX": prefix,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(folder)])}
    with open(folder / "dashboard.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "bench_dashboard_app", "dashboard",
             "--port", str(port), "--max-tasks", str(args.max_tasks)],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = redis.Redis.from_url(BROKER)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                seen(url)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"dashboard did not start:\n"
                                     f"{(folder / 'dashboard.log').read_text()}") from None
                time.sleep(0.1)
        time.sleep(1.0)  # subscribed
        sent, samples = 0, []
        per_tick = max(1, args.rate // 10)  # ten publishes' worth of events per 0.1 s
        start = time.monotonic()
        cpu0 = cpu_s(proc.pid)
        next_sample = start + 1.0
        clock = 0
        while (now := time.monotonic()) - start < args.seconds:
            target = int((now - start) * args.rate)
            pipe = client.pipeline(transaction=False)
            while sent < min(target + per_tick, int(args.seconds * args.rate)):
                events = batch_of_tasks(BATCH // 3, clock)
                clock += len(events)
                pipe.publish(channel, envelope(events, "bench@host"))
                sent += len(events)
            pipe.execute()
            if now >= next_sample:
                samples.append((round(now - start), sent, seen(url), rss_mb(proc.pid)))
                next_sample += 1.0
            time.sleep(0.1)
        elapsed = time.monotonic() - start
        time.sleep(1.0)
        final = seen(url)
        cpu = cpu_s(proc.pid) - cpu0
        rss_end = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        client.close()
    print("  t(s)     sent     seen  behind  rss(MB)")
    for t, s, k, r in samples:
        print(f"{t:6d} {s:8d} {k:8d} {s - k:7d} {r:8.1f}")
    third = max(1, len(samples) // 3)
    middle = max(r for *_, r in samples[third:2 * third]) if len(samples) >= 3 else rss_end
    last = max(r for *_, r in samples[2 * third:]) if samples else rss_end
    keeps_up = final >= sent
    bounded = last <= middle * 1.10
    print(f"\nsent {sent} events in {elapsed:.1f} s ({sent / elapsed:,.0f}/s); the dashboard "
          f"saw {final} a second later ({'kept up' if keeps_up else 'FELL BEHIND'}); "
          f"its CPU {cpu / elapsed * 100:.0f}% of a core; RSS {middle:.1f} MB at the middle "
          f"third, {last:.1f} MB at the end ({'bounded' if bounded else 'GROWING'}); "
          f"history capped at {args.max_tasks} tasks")
    if args.json:
        print(json.dumps({"sent": sent, "seen": final, "seconds": elapsed,
                          "rate": sent / elapsed, "cpu_pct": cpu / elapsed * 100,
                          "rss_middle_mb": middle, "rss_end_mb": last,
                          "keeps_up": keeps_up, "bounded": bounded,
                          "max_tasks": args.max_tasks}))
    sys.exit(0 if keeps_up and bounded else 1)


if __name__ == "__main__":
    main()
