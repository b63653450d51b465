"""The beat store contract (celeriac/beat/store.py), run on every broker's store.

A subclass gives ``new_store``: a fixture returning a factory of stores that share one
broker namespace (separate connections, as separate beat processes have). ``lease_s`` is
short so takeover is tested in seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from celeriac.beat.store import BeatStore

NewStore = Callable[[], BeatStore]
LEASE_S = 1.0


def lead_within(store: BeatStore, node: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if store.lead(node, LEASE_S):
            return True
        time.sleep(0.1)
    return False


class BeatStoreContract:
    #: False where only the lease holder may claim (RabbitMQ): there two schedulers
    #: never claim at once, and the concurrent-claim test does not apply
    claims_without_lease = True

    def test_one_leader_at_a_time(self, new_store: NewStore) -> None:
        a, b = new_store(), new_store()
        assert lead_within(a, "a", 3.0)
        for _ in range(3):
            assert a.lead("a", LEASE_S)  # renewal
            assert not b.lead("b", LEASE_S)

    def test_a_dead_leader_is_replaced_within_the_lease(self, new_store: NewStore) -> None:
        a, b = new_store(), new_store()
        assert lead_within(a, "a", 3.0)
        assert not b.lead("b", LEASE_S)
        a.close()  # dies without resigning: no renewal from here on
        started = time.monotonic()
        assert lead_within(b, "b", LEASE_S * 3 + 1.0)
        assert time.monotonic() - started < LEASE_S * 3 + 1.0

    def test_resign_hands_over_at_once(self, new_store: NewStore) -> None:
        a, b = new_store(), new_store()
        assert lead_within(a, "a", 3.0)
        a.resign("a")
        assert lead_within(b, "b", LEASE_S / 2 + 0.6)

    def test_claim_is_a_compare_and_set(self, new_store: NewStore) -> None:
        a = new_store()
        assert lead_within(a, "a", 3.0)
        assert a.load(["x", "y"]) == {"x": None, "y": None}
        assert a.claim([("x", None, "1")]) == [True]
        assert a.claim([("x", None, "2")]) == [False]  # it exists now
        assert a.claim([("x", "1", "2"), ("x", "1", "3"), ("y", None, "9")]) == [
            True, False, True]
        assert a.load(["x", "y"]) == {"x": "2", "y": "9"}

    def test_state_outlives_the_process(self, new_store: NewStore) -> None:
        a = new_store()
        assert lead_within(a, "a", 3.0)
        assert a.claim([("x", None, "1.5"), ("z", None, "7")]) == [True, True]
        a.resign("a")
        a.close()
        b = new_store()
        assert lead_within(b, "b", 3.0)
        assert b.load(["x", "z", "w"]) == {"x": "1.5", "z": "7", "w": None}
        assert b.claim([("x", "1.5", "2.5")]) == [True]

    def test_a_stale_reader_loses(self, new_store: NewStore) -> None:
        a, b = new_store(), new_store()
        assert lead_within(a, "a", 3.0)
        assert a.claim([("x", None, "1")]) == [True]
        assert a.claim([("x", "1", "2")]) == [True]
        # b (a paused ex-leader) still believes x is "1"
        assert b.claim([("x", "1", "3")]) == [False]
        assert a.load(["x"]) == {"x": "2"}

    def test_concurrent_claims_of_one_run_win_once(self, new_store: NewStore) -> None:
        if not self.claims_without_lease:
            return
        stores = [new_store() for _ in range(3)]
        wins = [0, 0, 0]
        previous: list[str | None] = [None]
        for round_ in range(30):
            barrier = threading.Barrier(3)
            expected = previous[0]

            def race(i: int, expected: str | None = expected, round_: int = round_,
                     barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                if stores[i].claim([("r", expected, f"{round_}-{i}")]) == [True]:
                    wins[i] += 1

            threads = [threading.Thread(target=race, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            previous[0] = stores[0].load(["r"])["r"]
            assert previous[0] is not None and previous[0].startswith(f"{round_}-")
        assert sum(wins) == 30
