"""The Lamport clock that stamps control replies and events: it ticks without a lock
(``next()`` on an ``itertools.count``), so these check what the lock gave before: no
value handed out twice by threads ticking at once, and adjust never going back."""

from __future__ import annotations

import itertools
import threading

from celeriac.control.wire import LamportClock


def test_forward_ticks_and_reports_the_last_value() -> None:
    clock = LamportClock()
    assert (clock.forward(), clock.forward(2), clock.forward()) == (1, 3, 4)
    assert clock.value == 4


def test_threads_ticking_at_once_never_share_a_value() -> None:
    clock = LamportClock()
    seen: list[list[int]] = [[] for _ in range(8)]

    def tick(into: list[int]) -> None:
        for _ in range(5_000):
            into.append(clock.forward())

    threads = [threading.Thread(target=tick, args=(s,)) for s in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    values = [v for s in seen for v in s]
    assert len(set(values)) == len(values) == 40_000
    assert all(a < b for s in seen for a, b in itertools.pairwise(s))  # each rises


def test_adjust_moves_past_another_clock_and_never_back() -> None:
    clock = LamportClock()
    clock.forward(5)
    assert clock.adjust(100) == 101
    assert clock.forward() == 102
    adjusted = clock.adjust(3)  # an older clock: ours still moves on
    assert adjusted > 102 and clock.value == adjusted
    assert clock.forward() == adjusted + 1
    assert clock.adjust("junk") == clock.value  # not a clock value: unchanged
    assert clock.adjust(True) == clock.value
