"""Beat's lateness: 1,000 entries due every second, sent through a real broker.

Runs celeriac's Scheduler (the code ``celeriac beat`` runs) in this process on a broker
and measures, for every run sent, how late the broker had it: the time its publish
returned minus the time it was due (its last run + 1 s). Then an idle scheduler (one
entry a day) for 10 s: its CPU time.

    python bench/beat.py redis|sqlite|amqp [--entries 1000] [--seconds 20]
        [--url BROKER_URL] [--json]

``--json`` prints the numbers as one JSON line last (``make bench``'s beat row runs it
so, on the bench's own Redis db, vhost or SQLite file).

Messages go to a queue of their own (bench.beat), purged after, and beat's state is
deleted after (on RabbitMQ it is per vhost: the queues celeriac.beat.leader/.state).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from typing import Any

from celeriac import Celery
from celeriac.beat import Scheduler

BROKERS = {
    "redis": "redis://127.0.0.1:6379/14",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}
QUEUE = "bench.beat"


class Timed(Scheduler):
    """The scheduler, noting how late each run's publish returned, and for each publish
    when it began and how long it took (where a slow tick's time went)."""

    lateness_s: list[float]
    #: (began after due, took), seconds, per publish of runs that had a last run
    publishes: list[tuple[float, float]]

    def _publish(self, runs: list[Any], *rest: Any) -> None:
        began = time.time()
        super()._publish(runs, *rest)
        done = time.time()
        due = None
        for entry, previous in runs:
            if previous is not None:
                due = float(previous) + entry.schedule.seconds
                self.lateness_s.append(done - due)
        if due is not None:
            self.publishes.append((began - due, done - began))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def make_app(url: str, entries: int, every_s: float) -> Celery:
    app = Celery(f"bench-beat-{time.time_ns()}", broker=url, set_as_current=False)
    app.conf.task_default_queue = QUEUE
    app.task(name="bench.noop")(noop)  # registered: no "unknown task" warning per entry
    app.conf.beat_schedule = {f"e{i}": {"task": "bench.noop", "schedule": every_s,
                                        "args": (i,)} for i in range(entries)}
    if url.startswith("redis"):
        app.conf.broker_transport_options = {"global_keyprefix": f"bench-beat-{time.time_ns()}:"}
    return app


def noop(*args: Any) -> None:
    return None


def run_for(scheduler: Scheduler, seconds: float) -> None:
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    scheduler.stop()
    thread.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("broker", choices=("redis", "amqp", "sqlite"))
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--url", help="the broker (default: the local one for BROKER)")
    parser.add_argument("--json", action="store_true", help="print a JSON line last")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or BROKERS.get(args.broker, f"sqlite:///{tmp}/beat.db")
        app = make_app(url, args.entries, 1.0)
        busy = Timed(app)
        busy.lateness_s, busy.publishes = [], []
        run_for(busy, args.seconds)
        late = busy.lateness_s
        idle_app = make_app(url, 1, 86_400.0)
        idle = Scheduler(idle_app)
        thread = threading.Thread(target=idle.run, daemon=True)
        thread.start()
        time.sleep(1.0)
        cpu0 = time.process_time()
        time.sleep(10.0)
        idle_cpu_s = time.process_time() - cpu0
        idle.stop()
        thread.join(30)
        app.run_sync(_purge(app))
        for each in (app, idle_app):  # on RabbitMQ both share the vhost's state
            forget_state(each)
            each.close()
    result = {"broker": args.broker, "entries": args.entries, "seconds": args.seconds,
              "runs": len(late), "p50_ms": percentile(late, 0.5),
              "p99_ms": percentile(late, 0.99), "max_ms": max(late) * 1000,
              "idle_cpu_ms": idle_cpu_s * 1000, "idle_s": 10.0}
    began_s, took_s = max(busy.publishes, key=sum)  # the slowest tick: what made it slow
    result.update(worst_began_ms=began_s * 1000, worst_publish_ms=took_s * 1000)
    print(f"beat {args.broker}: {args.entries} entries every 1 s for {args.seconds:g} s: "
          f"{len(late)} runs sent, lateness p50 {result['p50_ms']:.1f} ms, "
          f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms (its publish "
          f"began {began_s * 1000:.1f} ms after due and took {took_s * 1000:.1f} ms); "
          f"idle scheduler CPU {idle_cpu_s * 1000:.1f} ms in 10 s")
    if args.json:
        print(json.dumps(result))


def forget_state(app: Celery) -> None:
    """Leave no beat state behind: the next run's entries (same names) start afresh."""
    url = app.broker_url
    if url.startswith("redis"):
        import redis

        prefix = app.conf.broker_transport_options["global_keyprefix"]
        client = redis.Redis.from_url(url)
        client.delete(prefix + "_celeriac.beat.state", prefix + "_celeriac.beat.leader")
        client.close()
    elif url.startswith("amqp"):
        from celeriac.beat.store_amqp import LEADER_QUEUE, STATE_QUEUE
        from celeriac.bridge import BRIDGE
        from celeriac.brokers.amqp.link import close_connection, open_connection, parse_url

        async def drop() -> None:
            conn = await open_connection(parse_url(url))
            channel = await conn.channel()
            await channel.queue_delete(LEADER_QUEUE)
            await channel.queue_delete(STATE_QUEUE)
            await close_connection(conn)

        BRIDGE.run(drop(), 30)


async def _purge(app: Celery) -> None:
    broker = await app.clients.broker()
    await broker.purge([QUEUE])


if __name__ == "__main__":
    main()
