"""Soak (``make chaos-soak``, minutes): 5000 tasks while workers are SIGKILLed
and restarted over and over, on every broker; nothing may be lost."""

from __future__ import annotations

import random
import time

import pytest

from tests.chaos.harness import Scenario, tags

pytestmark = pytest.mark.soak


def test_repeated_worker_kills_over_thousands_of_tasks(scenario: Scenario) -> None:
    s = scenario
    env = {"CHAOS_LEASE_S": "3"}
    pools = [("threads", "8"), ("prefork", "2"), ("asyncio", "50")]
    workers = [s.worker("-P", p, "-c", c, **env) for p, c in pools[:2]]
    sent = s.publish(tags("soak", 5000), seconds=0.02)
    rng = random.Random(6)
    deadline = time.monotonic() + 240
    kills = 0
    while len(set(s.done()) & set(sent)) < len(sent) and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 1.5))
        victim = workers.pop(rng.randrange(len(workers)))
        victim.kill()
        kills += 1
        pool, conc = rng.choice(pools)
        workers.append(s.worker("-P", pool, "-c", conc, **env))
    s.wait_done(sent, timeout_s=120)
    row = s.tally(f"soak: {kills} SIGKILLs, 5000 tasks", sent)
    assert row.lost == 0 and row.completed == 5000
    assert kills >= 3
