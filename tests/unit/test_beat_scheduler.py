"""The beat loop on a memory broker with a hand-driven clock: runs sent once by two
leaders at once, a missed run sent once after downtime, clock jumps, bad entries."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pytest

from celeriac import Celery
from celeriac.beat import Scheduler, load_entries
from celeriac.beat.store_memory import MemoryStore
from celeriac.brokers.memory import MemoryBroker
from celeriac.errors import ConfigurationError
from celeriac.schedules import crontab
from celeriac.testing import memory_app


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def app_with(schedule: dict[str, Any]) -> Celery:
    app = memory_app("beat-unit")

    @app.task(name="tasks.ping")
    def ping(*args: Any, **kwargs: Any) -> None:
        return None

    app.conf.beat_schedule = schedule
    return app


def sent(app: Celery, queue: str = "celery") -> list[tuple[str, Any]]:
    """Take every message from the queue: (task name, args)."""
    async def take() -> list[tuple[str, Any]]:
        broker = await app.clients.broker()
        assert isinstance(broker, MemoryBroker)
        got = await broker.fetch([queue], 100_000, 0.0)
        await broker.ack(got)
        return [(d.message.task_name, json.loads(d.message.body)[0]) for d in got]
    return app.run_sync(take())


def leaders(app: Celery, clock: Clock, count: int = 2) -> list[Scheduler]:
    """``count`` schedulers that all believe they lead (a paused leader woke up)."""
    found = []
    for i in range(count):
        s = Scheduler(app, store=MemoryStore(app.broker_url), node=f"n{i}", clock=clock)
        s.leader = True
        s._refresh(s.entries, clock())
        found.append(s)
    return found


def test_two_leaders_send_each_run_once() -> None:
    app = app_with({"every-10": {"task": "tasks.ping", "schedule": 10.0, "args": (1,)}})
    clock = Clock(1_000.0)
    a, b = leaders(app, clock)
    counts = []
    for t in (1_000.0, 1_005.0, 1_010.0, 1_010.5, 1_020.0, 1_021.0, 1_030.0):
        clock.t = t
        a.tick()
        b.tick()
        counts.append(len(sent(app)))
    # first run one interval after the entry was first seen (Celery's rule)
    assert counts == [0, 0, 1, 0, 1, 0, 1]
    assert a.sent + b.sent == 3


def test_downtime_sends_a_missed_run_once_then_counts_from_now() -> None:
    app = app_with({"e": {"task": "tasks.ping", "schedule": 10.0},
                    "c": {"task": "tasks.ping", "schedule": crontab(minute="*/5")}})
    clock = Clock(1_700_000_000.0)
    (s,) = leaders(app, clock, 1)
    clock.t += 86_400  # a day of downtime: 8,640 missed intervals, 288 missed crontabs
    s.tick()
    assert len(sent(app)) == 2
    clock.t += 1
    s.tick()
    assert sent(app) == []
    clock.t += 9.5
    s.tick()
    assert len(sent(app)) == 1


def test_clock_jumps_cause_no_burst_and_no_silence(caplog: pytest.LogCaptureFixture) -> None:
    app = app_with({"e": {"task": "tasks.ping", "schedule": 10.0}})
    clock = Clock(1_000_000.0)
    (s,) = leaders(app, clock, 1)
    clock.t += 3_600  # forward an hour: one run, not 360
    s.tick()
    s.tick()
    assert len(sent(app)) == 1
    clock.t -= 7_200  # back two hours: re-based, not silent for two hours
    with caplog.at_level(logging.ERROR, logger="celeriac.beat"):
        s.tick()
        s.tick()
    assert "clock went back" in caplog.text
    assert sent(app) == []
    clock.t += 10.5
    s.tick()
    assert len(sent(app)) == 1


def test_a_restarted_scheduler_neither_repeats_nor_skips() -> None:
    app = app_with({"e": {"task": "tasks.ping", "schedule": 10.0}})
    clock = Clock(2_000.0)
    (first,) = leaders(app, clock, 1)
    clock.t = 2_010.0
    first.tick()
    assert len(sent(app)) == 1
    (second,) = leaders(app, clock, 1)  # a new process: state from the store
    clock.t = 2_015.0
    second.tick()
    assert sent(app) == []
    clock.t = 2_020.0
    second.tick()
    assert len(sent(app)) == 1


def test_entry_options_route_and_unknown_task_logs_once(
        caplog: pytest.LogCaptureFixture) -> None:
    app = app_with({
        "routed": {"task": "tasks.ping", "schedule": 1.0, "args": [2],
                   "kwargs": {"k": 1}, "options": {"queue": "q1"}},
        "ghost": {"task": "tasks.nowhere", "schedule": 1.0},
    })
    clock = Clock(3_000.0)
    with caplog.at_level(logging.WARNING, logger="celeriac.beat"):
        (s,) = leaders(app, clock, 1)
        for _ in range(3):
            clock.t += 1.0
            s.tick()
    assert caplog.text.count("tasks.nowhere") == 1
    assert sent(app, "q1") == [("tasks.ping", [2])] * 3
    assert sent(app) == [("tasks.nowhere", [])] * 3


def test_a_failed_send_gives_the_claim_back(caplog: pytest.LogCaptureFixture) -> None:
    app = app_with({"bad": {"task": "tasks.ping", "schedule": 1.0,
                            "args": [object()]},  # not JSON
                    "good": {"task": "tasks.ping", "schedule": 1.0}})
    clock = Clock(4_000.0)
    (s,) = leaders(app, clock, 1)
    before = s.store.load(["bad"])["bad"]
    with caplog.at_level(logging.ERROR, logger="celeriac.beat"):
        for _ in range(3):
            clock.t += 1.0
            s.tick()
    assert caplog.text.count("could not send entry 'bad'") == 1
    assert s.store.load(["bad"])["bad"] == before  # not marked as run
    assert len(sent(app)) == 3  # the good entry ran each time


@pytest.mark.parametrize(("spec", "message"), [
    ({"schedule": 1.0}, "'task'"),
    ({"task": "t"}, "'schedule' is missing"),
    ({"task": "t", "schedule": "often"}, "not a schedule"),
    ({"task": "t", "schedule": 1.0, "arg": ()}, "unknown keys"),
    ({"task": "t", "schedule": -1}, "positive"),
    ({"task": "t", "schedule": crontab(minute=61)}, "crontab minute=61: 61 is outside 0-59"),
    ({"task": "t", "schedule": crontab(hour="9", day_of_week="funday")},
     "crontab day_of_week='funday'"),
])
def test_bad_entries_name_the_entry(spec: dict[str, Any], message: str) -> None:
    app = memory_app("beat-bad")
    with pytest.raises(ConfigurationError, match=f"entry 'nightly'.*{message}"):
        load_entries(app, {"nightly": spec})


def test_a_bad_crontab_from_add_periodic_task_names_the_entry() -> None:
    """Built in an on_after_configure hook (Celery's pattern): beat refuses to start,
    naming the entry and the field; the hook itself does not fail."""
    app = memory_app("beat-bad-hook")

    @app.on_after_configure.connect
    def setup(sender: Celery, **kwargs: Any) -> None:
        sender.add_periodic_task(crontab(minute="*/15", hour="25"), "tasks.ping",
                                 name="quarter-hourly")
        sender.add_periodic_task(10.0, "tasks.ping", name="fine")

    with pytest.raises(ConfigurationError, match="beat_schedule entry 'quarter-hourly': "
                       "crontab hour='25': 25 is outside 0-23"):
        Scheduler(app, store=MemoryStore(app.broker_url))
    assert set(app.conf.beat_schedule) == {"quarter-hourly", "fine"}


def test_timedelta_and_relative_entries() -> None:
    app = memory_app("beat-td")
    entries = load_entries(app, {"td": {"task": "t", "schedule": dt.timedelta(minutes=5),
                                        "relative": True}})
    assert entries[0].schedule.run_every == dt.timedelta(minutes=5)
    assert entries[0].schedule.relative


def test_cron_starting_deadline_skips_a_run_missed_by_more() -> None:
    app = app_with({"c": {"task": "tasks.ping", "schedule": crontab(minute=0)}})
    app.conf.beat_cron_starting_deadline = 600
    clock = Clock(dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.UTC).timestamp())
    (s,) = leaders(app, clock, 1)
    clock.t += 3_600  # 13:30: the 13:00 run was missed by 30 minutes, more than 600 s
    s.tick()
    assert sent(app) == []
    clock.t += 1_800 + 60  # 14:01: one minute late, within the deadline
    s.tick()
    assert len(sent(app)) == 1


def test_old_upper_case_setting_names() -> None:
    app = memory_app("beat-old-names")
    app.config_from_object({"CELERYBEAT_SCHEDULE": {"x": {"task": "t", "schedule": 5}},
                            "CELERYBEAT_MAX_LOOP_INTERVAL": 7})
    assert app.conf.beat_schedule["x"]["schedule"] == 5
    assert app.conf.beat_max_loop_interval == 7


class FlakyStore(MemoryStore):
    """Fails the first ``failures`` claims, as a broker that went away for a moment."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures

    def claim(self, claims: Any) -> list[bool]:
        if self.failures and any(expected is not None for _, expected, _ in claims):
            self.failures -= 1
            raise ConnectionError("broker gone")
        return super().claim(claims)


def test_a_broker_error_in_a_tick_is_logged_once_and_the_loop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    import threading
    import time

    app = app_with({"e": {"task": "tasks.ping", "schedule": 0.05}})
    s = Scheduler(app, store=FlakyStore(app.broker_url, failures=3), max_interval_s=0.05)
    with caplog.at_level(logging.WARNING, logger="celeriac.beat"):
        thread = threading.Thread(target=s.run)
        thread.start()
        deadline = time.monotonic() + 30
        while s.sent < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        s.stop()
        thread.join(10)
    assert s.sent >= 2
    assert caplog.text.count("the broker failed a tick") == 1
    assert "the broker answers again" in caplog.text


def test_beat_schedule_changed_in_place_on_a_fresh_app() -> None:
    app = memory_app("beat-in-place")
    app.conf.beat_schedule.update({"a": {"task": "t", "schedule": 1.0}})
    app.conf.beat_schedule["b"] = {"task": "t", "schedule": 2.0}
    assert [e.name for e in load_entries(app)] == ["a", "b"]
    assert not app.conf.is_set("beat_schedule")
    assert memory_app("other").conf.beat_schedule == {}  # the default is not shared


def test_interval_runs_are_claimed_ahead_and_keep_their_due_instants() -> None:
    """A tick up to SEND_AHEAD_S early claims the run for its due instant (no drift);
    a tick a little late keeps the due instant too; one late by more than a quarter
    interval (or 1 s) counts from now."""
    from celeriac.beat.scheduler import SEND_AHEAD_S

    app = app_with({"e": {"task": "tasks.ping", "schedule": 10.0}})
    clock = Clock(1_000.0)
    (s,) = leaders(app, clock, 1)
    clock.t = 1_010.0 - SEND_AHEAD_S * 2  # too early: nothing claimed
    s.tick()
    assert sent(app) == [] and s.store.load(["e"])["e"] == "1000.0"
    clock.t = 1_010.0 - SEND_AHEAD_S / 2
    s.tick()
    assert len(sent(app)) == 1
    assert s.store.load(["e"])["e"] == "1010.0"  # the due instant, not the tick's time
    clock.t = 1_020.4  # 0.4 s late
    s.tick()
    assert len(sent(app)) == 1 and s.store.load(["e"])["e"] == "1020.0"
    clock.t = 1_035.0  # 5 s late: counts from now
    s.tick()
    assert len(sent(app)) == 1 and s.store.load(["e"])["e"] == "1035.0"


def test_a_run_claimed_ahead_is_published_at_its_due_instant() -> None:
    import time

    app = app_with({"e": {"task": "tasks.ping", "schedule": 1.0}})
    published: list[float] = []

    class Noting(Scheduler):
        def _publish(self, runs: Any, *rest: Any) -> None:
            published.append(time.time())
            super()._publish(runs, *rest)

    s = Noting(app, store=MemoryStore(app.broker_url))
    s.leader = True
    start = time.time()
    s._refresh(s.entries, start - 0.97)  # due 30 ms from now
    s.tick()
    assert s.sent == 1
    assert published[0] >= start + 0.03 - 0.002  # not before it was due
