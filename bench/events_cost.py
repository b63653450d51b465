"""The cost of ``-E`` (issue 17): celeriac's fast worker draining N no-op tasks on Redis,
with and without task events, in interleaved runs (plain, -E, then -E, plain, ... so a
drift of the machine's speed falls on both), each run as the ``fast`` phase measures it
(publish N with ``.delay()``, start the worker, first to last execution). The issue asks
that -E take at most 15% off the consume rate; the row gives each run, the medians, and
the drop as the median of each pair's own drop: the two runs of a pair are a minute
apart, the pairs several, and this VM's speed drifts by 2x within an hour, so a pair's
ratio cancels most of the drift that a ratio of the two medians keeps. Heartbeats are on
in both (they are by default).

``BENCH_PHASES=events`` runs just this row; BENCH_EVENTS_ROUNDS (default 9) pairs.
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Any

from systems import WorkerConfig

ROUNDS = int(os.environ.get("BENCH_EVENTS_ROUNDS", 9))
LIMIT = 0.15


def events_config(fast: WorkerConfig) -> WorkerConfig:
    return WorkerConfig("fast-events", f"{fast.label}, -E", (*fast.args, "-E"))


def run(pair: Any) -> None:
    fast = pair.system.fast
    configs = {"plain": fast, "events": events_config(fast)}
    saved = pair.results.get(f"consume_{fast.key}")  # the fast phase's own row
    rates: dict[str, list[float]] = {"plain": [], "events": []}
    try:
        for i in range(ROUNDS):
            order = ("plain", "events") if i % 2 == 0 else ("events", "plain")
            for key in order:
                config = configs[key]
                pair.consume(config, *pair.publish("delay"))
                rates[key].append(pair.results.pop(f"consume_{config.key}")["rate"])
    finally:
        if saved is not None:
            pair.results[f"consume_{fast.key}"] = saved
    plain, events = statistics.median(rates["plain"]), statistics.median(rates["events"])
    drop = statistics.median(1 - e / p for p, e in zip(rates["plain"], rates["events"],
                                                        strict=True))
    pair.results["events_cost"] = {"plain": rates["plain"], "events": rates["events"],
                                   "plain_median": plain, "events_median": events,
                                   "drop": drop, "rounds": ROUNDS}
    print(f"  -E: {events:,.0f}/s vs {plain:,.0f}/s without (medians); the median pair "
          f"drop {drop:+.1%} (limit {LIMIT:.0%})", file=sys.stderr)


def section(run_: dict[str, Any]) -> list[str]:
    cell = run_["systems"].get("celeriac", {}).get("redis", {}).get("events_cost")
    if not cell:
        return []
    each = ", ".join(f"{p:,.0f} / {e:,.0f}" for p, e in zip(cell["plain"], cell["events"],
                                                             strict=True))
    verdict = "met" if cell["drop"] <= LIMIT else "MISSED"
    return ["## The cost of task events (-E), Redis", "",
            f"celeriac's fast worker, {run_['n']:,} no-op tasks per run, {cell['rounds']} "
            "interleaved pairs of runs; heartbeats on in both.", "",
            "| without -E, median | with -E, median | drop (median of the pairs') | goal | "
            "| runs (without / with) |",
            "|---:|---:|---:|---:|---|---|",
            f"| {cell['plain_median']:,.0f} /s | {cell['events_median']:,.0f} /s | "
            f"{cell['drop']:.1%} | <= {LIMIT:.0%} | {verdict} | {each} |", ""]
