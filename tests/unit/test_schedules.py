"""celeriac.schedules: Celery's parser and is_due semantics, and crontab firing times in
three zones (Europe/Berlin and America/New_York through both DST changes of 2026,
Asia/Tokyo without DST), against times computed by hand."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys

import pytest

from celeriac import Celery
from celeriac.errors import ConfigurationError
from celeriac.schedules import crontab, maybe_schedule, schedule, solar

UTC = dt.UTC


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def app_in(zone: str) -> Celery:
    app = Celery(f"sched-{zone}", broker="memory://", set_as_current=False)
    app.conf.timezone = zone
    return app


def firings(c: crontab, start: str, count: int) -> list[str]:
    """The next ``count`` firing instants after ``start`` (UTC, minute precision)."""
    out, at = [], utc(start)
    for _ in range(count):
        at = c.next_run_at(at)
        out.append(at.strftime("%Y-%m-%d %H:%M"))
    return out


# -- hand-computed tables -------------------------------------------------------------
# Europe/Berlin 2026: CET (+1) -> CEST (+2) on 29 March at 02:00 local (01:00Z);
# back to CET on 25 October at 03:00 local (01:00Z), 02:00-02:59 shown twice.
# America/New_York 2026: EST (-5) -> EDT (-4) on 8 March at 02:00 local (07:00Z);
# back on 1 November at 02:00 local (06:00Z), 01:00-01:59 shown twice.
# Asia/Tokyo: JST (+9), no DST.
TABLE = [
    # zone, crontab kwargs, after (UTC), expected firings (UTC)
    ("Europe/Berlin", {"minute": 30, "hour": 2}, "2026-03-28 12:00",
     # 28th 02:30 passed; 29th 02:30 does not exist -> once, at 03:30 CEST (01:30Z)
     ["2026-03-29 01:30", "2026-03-30 00:30", "2026-03-31 00:30"]),
    ("Europe/Berlin", {"minute": 30, "hour": 2}, "2026-10-24 12:00",
     # 25th 02:30 CEST (00:30Z) once, not again at 02:30 CET (01:30Z); 26th 02:30 CET
     ["2026-10-25 00:30", "2026-10-26 01:30", "2026-10-27 01:30"]),
    ("Europe/Berlin", {"minute": 30}, "2026-10-24 23:00",
     # hour='*': both 02:30s run (00:30Z and 01:30Z), as cron does
     ["2026-10-24 23:30", "2026-10-25 00:30", "2026-10-25 01:30", "2026-10-25 02:30"]),
    ("Europe/Berlin", {"minute": 30}, "2026-03-28 23:00",
     # hour='*' on spring forward: 01:30 CET (00:30Z), then 03:30 CEST (01:30Z) once
     ["2026-03-28 23:30", "2026-03-29 00:30", "2026-03-29 01:30", "2026-03-29 02:30"]),
    ("Europe/Berlin", {"minute": 0, "hour": 9, "day_of_week": "mon-fri"},
     "2026-03-27 09:00",  # Friday 10:00 CET -> Monday 09:00 CEST (07:00Z)
     ["2026-03-30 07:00", "2026-03-31 07:00"]),
    ("America/New_York", {"minute": 30, "hour": 2}, "2026-03-07 12:00",
     # 8 March 02:30 does not exist -> 03:30 EDT (07:30Z); 9 March 02:30 EDT = 06:30Z
     ["2026-03-08 07:30", "2026-03-09 06:30"]),
    ("America/New_York", {"minute": 30, "hour": 1}, "2026-10-31 12:00",
     # 1 November 01:30 EDT (05:30Z) once, not 01:30 EST (06:30Z); 2 November 06:30Z
     ["2026-11-01 05:30", "2026-11-02 06:30"]),
    ("America/New_York", {"minute": 30}, "2026-11-01 04:00",
     ["2026-11-01 04:30", "2026-11-01 05:30", "2026-11-01 06:30", "2026-11-01 07:30"]),
    ("America/New_York", {"minute": "*/15", "hour": "9-10", "day_of_week": "sat,sun"},
     "2026-03-06 00:00",  # Friday -> Saturday 7 March 09:00 EST = 14:00Z
     ["2026-03-07 14:00", "2026-03-07 14:15", "2026-03-07 14:30", "2026-03-07 14:45",
      "2026-03-07 15:00"]),
    ("Asia/Tokyo", {"minute": 30, "hour": 2}, "2026-03-28 12:00",
     # 02:30 JST is 17:30Z the day before, every day, DST dates change nothing
     ["2026-03-28 17:30", "2026-03-29 17:30", "2026-03-30 17:30"]),
    ("Asia/Tokyo", {"minute": 30, "hour": 2}, "2026-10-24 12:00",
     ["2026-10-24 17:30", "2026-10-25 17:30"]),
    ("Asia/Tokyo", {"minute": 0, "hour": 0, "day_of_month": 31}, "2026-04-01 00:00",
     # 31 May 00:00 JST = 30 May 15:00Z; then 31 July
     ["2026-05-30 15:00", "2026-07-30 15:00"]),
    ("Asia/Tokyo", {"minute": 0, "hour": 0, "day_of_month": 29, "month_of_year": "feb"},
     "2026-01-01 00:00", ["2028-02-28 15:00"]),  # the next 29 February is in 2028
    ("Asia/Tokyo", {"minute": 0, "hour": 12, "month_of_year": "1-3/2",
                    "day_of_month": "1"}, "2026-01-02 00:00",
     ["2026-03-01 03:00", "2027-01-01 03:00"]),
]


@pytest.mark.parametrize(("zone", "fields", "after", "expected"), TABLE)
def test_crontab_firings_by_hand(zone: str, fields: dict[str, object], after: str,
                                 expected: list[str]) -> None:
    c = crontab(app=app_in(zone), **fields)  # type: ignore[arg-type]
    assert firings(c, after, len(expected)) == expected


def test_berlin_daily_runs_once_on_each_dst_day_under_a_simulated_clock() -> None:
    """Drive is_due as beat does (last_run_at = when it ran) across both change days."""
    app = app_in("Europe/Berlin")
    for start, expected in (("2026-03-28 12:00", ["2026-03-29 01:30"]),
                            ("2026-10-24 12:00", ["2026-10-25 00:30"])):
        now = [utc(start)]
        c = crontab(minute=30, hour=2, app=app, nowfun=lambda now=now: now[0])
        last, runs = now[0], []
        while now[0] < utc(start) + dt.timedelta(hours=24):
            due, _next = c.is_due(last)
            if due:
                runs.append(now[0].strftime("%Y-%m-%d %H:%M"))
                last = now[0]
            now[0] += dt.timedelta(seconds=30)
        assert runs == expected


# -- Celery's is_due semantics --------------------------------------------------------
def test_schedule_is_due_and_remaining() -> None:
    now = utc("2026-01-01 12:00:00")
    s = schedule(dt.timedelta(seconds=30), nowfun=lambda: now)
    assert s.is_due(now - dt.timedelta(seconds=10)) == (False, 20.0)
    assert s.is_due(now - dt.timedelta(seconds=30)) == (True, 30.0)
    assert s.is_due(now - dt.timedelta(hours=5)) == (True, 30.0)  # missed: once
    assert s.remaining_estimate(now - dt.timedelta(seconds=10)) == dt.timedelta(seconds=20)
    assert s.seconds == 30.0


def test_schedule_naive_last_run_is_utc_and_relative_rounds() -> None:
    now = utc("2026-01-01 12:00:10")
    s = schedule(60, nowfun=lambda: now)
    assert s.is_due(dt.datetime(2026, 1, 1, 11, 59, 30)) == (False, 20.0)
    r = schedule(60, relative=True, nowfun=lambda: now)
    # 11:59:30 + 60 s = 12:00:30, rounded to the minute: 12:00:00, due
    assert r.is_due(utc("2026-01-01 11:59:30")).is_due


def test_crontab_is_due_gives_seconds_to_the_next_after_now() -> None:
    now = [utc("2026-01-01 12:00:05")]
    c = crontab(minute="*/15", nowfun=lambda: now[0])
    assert c.is_due(utc("2026-01-01 11:45:00")) == (True, 895.0)
    assert c.is_due(utc("2026-01-01 12:00:05")) == (False, 895.0)
    # after a day of downtime: due once, next in 895 s (not 96 times)
    assert c.is_due(utc("2025-12-31 12:00:00")) == (True, 895.0)


def test_parser_syntax() -> None:
    assert crontab(minute="*/15").minute == {0, 15, 30, 45}
    assert crontab(minute="1,13,30-45,50-59/2").minute == (
        {1, 13} | set(range(30, 46)) | set(range(50, 60, 2)))
    assert crontab(hour="0,8-17/2").hour == {0, 8, 10, 12, 14, 16}
    assert crontab(hour="22-2").hour == {22, 23, 0, 1, 2}  # wraps
    assert crontab(day_of_week="mon-fri").day_of_week == {1, 2, 3, 4, 5}
    assert crontab(day_of_week="fri-mon").day_of_week == {5, 6, 0, 1}
    assert crontab(day_of_week="sunday,Saturday").day_of_week == {0, 6}
    assert crontab(day_of_week=7).day_of_week == {0}
    assert crontab(day_of_month="*/3").day_of_month == set(range(1, 32, 3))
    assert crontab(month_of_year="2-12/2").month_of_year == {2, 4, 6, 8, 10, 12}
    assert crontab(month_of_year="jan,dec").month_of_year == {1, 12}
    assert crontab(minute=[0, 30], hour=range(9, 12)).hour == {9, 10, 11}


@pytest.mark.parametrize(("field", "value"), [
    ("minute", 60), ("minute", "*/0"), ("minute", "-5"), ("minute", "1,,2"),
    ("hour", "24"), ("hour", "nine"), ("day_of_week", "funday"),
    ("day_of_month", 0), ("day_of_month", "32"), ("month_of_year", 13),
    ("month_of_year", "mon"),
])
def test_invalid_field_names_the_field(field: str, value: object) -> None:
    bad = crontab(**{field: value})  # type: ignore[arg-type]
    assert isinstance(bad.error, ValueError)  # Celery raises ValueError (at once)
    with pytest.raises(ConfigurationError, match=f"crontab {field}=") as info:
        bad.is_due(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))  # first use raises
    assert isinstance(info.value, ValueError)
    assert crontab(minute=5).error is None


def test_maybe_schedule() -> None:
    app = app_in("Asia/Tokyo")
    assert maybe_schedule(10) == schedule(10)
    assert maybe_schedule(dt.timedelta(minutes=1)).run_every == dt.timedelta(minutes=1)
    c = crontab()
    assert maybe_schedule(c, app=app) is c and c.app is app
    assert maybe_schedule("x") == "x"


def test_solar_without_ephem_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ephem", None)  # import ephem -> ImportError
    with pytest.raises(ConfigurationError, match="pip install"):
        solar("sunrise", 52.5, 13.4)


@pytest.mark.skipif(importlib.util.find_spec("ephem") is None, reason="no ephem")
@pytest.mark.parametrize("event", ["sunrise", "sunset", "solar_noon", "dawn_civil",
                                   "dusk_astronomical"])
def test_solar_agrees_with_celery(event: str) -> None:
    celery_schedules = pytest.importorskip("celery.schedules")
    now = utc("2026-06-21 00:00")
    ours = solar(event, 52.52, 13.405, nowfun=lambda: now)
    theirs = celery_schedules.solar(event, 52.52, 13.405, nowfun=lambda: now)
    last = utc("2026-06-20 23:00")
    gap = ours.remaining_estimate(last) - theirs.remaining_estimate(last)
    assert abs(gap.total_seconds()) < 60
    if event == "sunrise":  # Berlin, midsummer: 04:43 CEST
        assert ours.next_run_at(last).strftime("%H:%M") in ("02:42", "02:43", "02:44")


def test_solar_rejects_bad_event_and_coordinates() -> None:
    with pytest.raises(ConfigurationError, match="unknown event"):
        solar("teatime", 0, 0)
    with pytest.raises(ConfigurationError, match="latitude"):
        solar("sunrise", 91, 0)
