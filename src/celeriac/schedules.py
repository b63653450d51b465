"""Periodic schedules with Celery's API: ``schedule``, ``crontab``, ``solar``.

Each answers ``is_due(last_run_at) -> (is_due, next_seconds)`` and
``remaining_estimate(last_run_at) -> timedelta`` as Celery's do; beat (celeriac.beat)
asks them. Times are aware datetimes; a naive one is read as UTC (Celery's
``maybe_make_aware``). Crontabs are matched in the app's ``timezone`` on the wall clock
and turned into real instants with zoneinfo, so daylight saving time is handled by rule:

- a wall time the clock skips (02:30 on a spring-forward day in Europe/Berlin) runs once,
  at the instant PEP 495 gives it (the offset before the change: 03:30 summer time);
- a wall time the clock shows twice (02:30 on a fall-back day) runs once, the first time,
  unless the crontab's hour field is every hour (``hour='*'``): then both, as cron does,
  so an hourly job has no two-hour gap.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from celeriac.errors import ConfigurationError

if TYPE_CHECKING:
    from celeriac.app import Celery

UTC = dt.UTC
NowFun = Callable[[], dt.datetime]

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                "nov", "dec")
#: crontabs that never match are said so after this many days of search (28 years: the
#: longest calendar cycle, e.g. 29 February on a Monday)
_MAX_SEARCH_DAYS = 366 * 29


class schedstate(NamedTuple):
    """``is_due``'s answer: run now?, and seconds until it is worth asking again."""

    is_due: bool
    next: float


class ParseException(ConfigurationError, ValueError):
    """An invalid crontab field (also a ValueError, as Celery raises)."""


@lru_cache(maxsize=64)
def zone(name: str | None) -> dt.tzinfo:
    """The tzinfo of a timezone name (None or 'UTC': UTC)."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError
        raise ConfigurationError(f"timezone {name!r}: unknown time zone ({exc})") from None


def maybe_make_aware(value: dt.datetime, tz: dt.tzinfo = UTC) -> dt.datetime:
    """A naive datetime gets ``tz`` (UTC by default, as Celery); aware ones are kept."""
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


class BaseSchedule:
    """What every schedule shares: the current time (``nowfun`` or the app's) and the
    app's time zone."""

    def __init__(self, nowfun: NowFun | None = None, app: Celery | None = None) -> None:
        self.nowfun = nowfun
        self._app = app

    @property
    def app(self) -> Celery | None:
        return self._app

    @app.setter
    def app(self, app: Celery | None) -> None:
        self._app = app

    @property
    def tz(self) -> dt.tzinfo:
        """The app's ``timezone`` (UTC without an app)."""
        app = self._app
        return zone(app.conf.timezone) if app is not None else UTC

    def now(self) -> dt.datetime:
        if self.nowfun is not None:
            return maybe_make_aware(self.nowfun())
        if self._app is not None:
            return self._app.now()
        return dt.datetime.now(UTC)

    def maybe_make_aware(self, value: dt.datetime) -> dt.datetime:
        return maybe_make_aware(value)

    def to_local(self, value: dt.datetime) -> dt.datetime:
        return maybe_make_aware(value).astimezone(self.tz)

    def remaining_estimate(self, last_run_at: dt.datetime) -> dt.timedelta:
        raise NotImplementedError

    def is_due(self, last_run_at: dt.datetime) -> schedstate:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BaseSchedule):
            return other.nowfun == self.nowfun
        return NotImplemented

    __hash__ = None  # type: ignore[assignment,unused-ignore]


class _AtInstants(BaseSchedule):
    """A schedule due at instants of its own (crontab, solar): due once the instant after
    the last run has passed; the next check is then at the instant after now."""

    def next_run_at(self, last_run_at: dt.datetime) -> dt.datetime:
        raise NotImplementedError

    def remaining_estimate(self, last_run_at: dt.datetime) -> dt.timedelta:
        return self.next_run_at(last_run_at) - self.now().astimezone(UTC)

    def is_due(self, last_run_at: dt.datetime) -> schedstate:
        remaining_s = self.remaining_estimate(last_run_at).total_seconds()
        if remaining_s > 0:
            return schedstate(False, remaining_s)
        return schedstate(True, max(self.remaining_estimate(self.now()).total_seconds(), 0))


class schedule(BaseSchedule):
    """Every ``run_every`` (seconds or a timedelta). ``relative=True`` rounds the next
    run to the resolution of the interval (whole minutes for 60 s, ...), as Celery."""

    def __init__(self, run_every: float | dt.timedelta | None = None, relative: bool = False,
                 nowfun: NowFun | None = None, app: Celery | None = None) -> None:
        super().__init__(nowfun, app)
        if run_every is None:
            raise ConfigurationError("schedule: run_every is required")
        if not isinstance(run_every, dt.timedelta):
            run_every = dt.timedelta(seconds=float(run_every))
        if run_every.total_seconds() <= 0:
            raise ConfigurationError(f"schedule: run_every must be positive, not {run_every}")
        self.run_every = run_every
        self.relative = relative

    @property
    def seconds(self) -> float:
        return self.run_every.total_seconds()

    @property
    def human_seconds(self) -> str:
        s = self.seconds
        return f"{s:g} seconds" if s != 1 else "1 second"

    def next_run_at(self, last_run_at: dt.datetime) -> dt.datetime:
        """The instant the run after ``last_run_at`` is due."""
        end = maybe_make_aware(last_run_at) + self.run_every
        if self.relative:
            end = _resolution(end, self.run_every)
        return end

    def remaining_estimate(self, last_run_at: dt.datetime) -> dt.timedelta:
        return self.next_run_at(last_run_at).astimezone(UTC) - self.now().astimezone(UTC)

    def is_due(self, last_run_at: dt.datetime) -> schedstate:
        remaining_s = max(self.remaining_estimate(last_run_at).total_seconds(), 0.0)
        if remaining_s == 0:
            return schedstate(True, self.seconds)
        return schedstate(False, remaining_s)

    def __repr__(self) -> str:
        return f"<freq: {self.human_seconds}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, schedule):
            return self.run_every == other.run_every
        return self.run_every == other

    __hash__ = None  # type: ignore[assignment,unused-ignore]

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.run_every, self.relative, self.nowfun)


def _resolution(when: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """Celery's ``delta_resolution``: drop the units smaller than the interval's."""
    s = delta.total_seconds()
    if s >= 86400:
        return when.replace(hour=0, minute=0, second=0, microsecond=0)
    if s >= 3600:
        return when.replace(minute=0, second=0, microsecond=0)
    if s >= 60:
        return when.replace(second=0, microsecond=0)
    return when.replace(microsecond=0)


# -- crontab --------------------------------------------------------------------------
_PART = re.compile(r"^(?:(?P<star>\*)|(?P<lo>\w+?)(?:-(?P<hi>\w+))?)(?:/(?P<step>\w*))?$")


class crontab_parser:
    """Expand one crontab field (``'*/15'``, ``'1,13,30-45,50-59/2'``, ``'mon-fri'``) to
    the set of numbers it names, between ``min_`` and ``min_ + max_ - 1``."""

    def __init__(self, max_: int = 60, min_: int = 0, names: tuple[str, ...] = ()) -> None:
        self.max_ = max_
        self.min_ = min_
        self.names = names

    def parse(self, spec: str) -> set[int]:
        found: set[int] = set()
        for part in str(spec).replace(" ", "").split(","):
            if not part:
                raise ParseException(f"empty part in {spec!r}")
            found.update(self._part(part))
        return found

    def _part(self, part: str) -> list[int]:
        m = _PART.match(part)
        if m is None:
            raise ParseException(f"cannot parse {part!r}")
        top = self.min_ + self.max_ - 1
        if m["star"]:
            values = list(range(self.min_, top + 1))
        else:
            lo = self._number(m["lo"])
            hi = self._number(m["hi"]) if m["hi"] else None
            if hi is None:
                # 'a/n' is 'a-max/n' (cron); plain 'a' is just a
                values = list(range(lo, top + 1)) if m["step"] is not None else [lo]
            elif hi < lo:  # wraps around: 'fri-mon', '22-2'
                values = list(range(lo, top + 1)) + list(range(self.min_, hi + 1))
            else:
                values = list(range(lo, hi + 1))
        if m["step"] is not None:
            if not m["step"].isdigit() or int(m["step"]) == 0:
                raise ParseException(f"bad step in {part!r}")
            values = values[::int(m["step"])]
        return values

    def _number(self, token: str) -> int:
        if token.isdigit():
            value = int(token)
        else:
            key = token.lower()[:3]
            if self.names and key in self.names and token.lower() in (
                    key, _full_name(self.names, key)):
                value = self.names.index(key) + (1 if self.names is _MONTH_NAMES else 0)
            else:
                raise ParseException(f"invalid literal {token!r}")
        top = self.min_ + self.max_ - 1
        if value == 7 and self.names is _DAY_NAMES:
            value = 0  # cron's Sunday as 7
        if not self.min_ <= value <= top:
            raise ParseException(f"{value} is outside {self.min_}-{top}")
        return value


def _full_name(names: tuple[str, ...], key: str) -> str:
    full = {"sun": "sunday", "mon": "monday", "tue": "tuesday", "wed": "wednesday",
            "thu": "thursday", "fri": "friday", "sat": "saturday", "jan": "january",
            "feb": "february", "mar": "march", "apr": "april", "jun": "june",
            "jul": "july", "aug": "august", "sep": "september", "oct": "october",
            "nov": "november", "dec": "december", "may": "may"}
    return full[key]


_FIELDS = {  # name: (count, first value, names)
    "minute": (60, 0, ()),
    "hour": (24, 0, ()),
    "day_of_week": (7, 0, _DAY_NAMES),
    "day_of_month": (31, 1, ()),
    "month_of_year": (12, 1, _MONTH_NAMES),
}


def _expand(field: str, spec: Any) -> frozenset[int]:
    count, first, names = _FIELDS[field]
    try:
        if isinstance(spec, int):
            values = crontab_parser(count, first, names).parse(str(spec))
        elif isinstance(spec, str):
            values = crontab_parser(count, first, names).parse(spec)
        elif isinstance(spec, Iterable):
            values = set()
            for item in spec:
                values |= crontab_parser(count, first, names).parse(str(item))
        else:
            raise ParseException(f"not a crontab value: {type(spec).__name__}")
    except ParseException as exc:
        raise ParseException(f"crontab {field}={spec!r}: {exc}") from None
    if not values:
        raise ParseException(f"crontab {field}={spec!r}: matches nothing")
    return frozenset(values)


class crontab(_AtInstants):
    """Cron-like: run when the minute, hour, day of week, day of month and month all
    match (Celery's rule: every field must match, not cron's day OR weekday).

    An invalid field does not raise here (Celery raises a ValueError at once): the
    ``ParseException`` (a ConfigurationError and a ValueError, naming the field) is kept
    in ``error`` and raised when beat reads the entry, naming it too, or when the
    schedule is first used."""

    def __init__(self, minute: Any = "*", hour: Any = "*", day_of_week: Any = "*",
                 day_of_month: Any = "*", month_of_year: Any = "*",
                 nowfun: NowFun | None = None, app: Celery | None = None) -> None:
        super().__init__(nowfun, app)
        self._orig = (minute, hour, day_of_week, day_of_month, month_of_year)
        #: an invalid field, kept until beat reads the entry (so the error can name the
        #: entry, which a crontab built inside a beat_schedule dict cannot know)
        self.error: ParseException | None = None
        try:
            fields = [_expand(name, spec) for name, spec in zip(_FIELDS, self._orig,
                                                                strict=True)]
        except ParseException as exc:
            self.error = exc
            fields = [frozenset()] * 5
        self.minute, self.hour, self.day_of_week, self.day_of_month, \
            self.month_of_year = fields
        self._times = sorted((h, m) for h in self.hour for m in self.minute)
        self._every_hour = len(self.hour) == 24

    def _day_matches(self, day: dt.date) -> bool:
        return (day.month in self.month_of_year and day.day in self.day_of_month
                and day.isoweekday() % 7 in self.day_of_week)

    def _instants(self, day: dt.date, tz: dt.tzinfo) -> list[dt.datetime]:
        """The UTC instants this crontab fires on one local day, in order."""
        start = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
        end = start + dt.timedelta(hours=23, minutes=59)
        shifts = start.utcoffset() != end.utcoffset()
        found: set[dt.datetime] = set()
        for h, m in self._times:
            wall = dt.datetime(day.year, day.month, day.day, h, m, tzinfo=tz)
            first = wall.astimezone(UTC)
            found.add(first)
            if shifts and self._every_hour:
                second = wall.replace(fold=1).astimezone(UTC)
                # a wall time shown twice (both round-trip) runs twice for hour='*'
                if second != first and second.astimezone(tz).replace(tzinfo=None) == \
                        wall.replace(tzinfo=None):
                    found.add(second)
        return sorted(found)

    def next_run_at(self, last_run_at: dt.datetime) -> dt.datetime:
        """The first instant after ``last_run_at`` that matches, in the app's zone."""
        if self.error is not None:
            raise ParseException(str(self.error))
        tz = self.tz
        after = maybe_make_aware(last_run_at).astimezone(UTC)
        day = after.astimezone(tz).date() - dt.timedelta(days=1)
        for _ in range(_MAX_SEARCH_DAYS):
            if self._day_matches(day):
                for instant in self._instants(day, tz):
                    if instant > after:
                        return instant
            day += dt.timedelta(days=1)
        raise ConfigurationError(f"{self!r} never matches a date")

    def __repr__(self) -> str:
        m, h, dow, dom, moy = (_spec_repr(v) for v in self._orig)
        return f"<crontab: {m} {h} {dow} {dom} {moy} (m/h/dM/MY/d)>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, crontab):
            return (self.minute, self.hour, self.day_of_week, self.day_of_month,
                    self.month_of_year) == (other.minute, other.hour, other.day_of_week,
                                            other.day_of_month, other.month_of_year)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment,unused-ignore]

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, self._orig


def _spec_repr(value: Any) -> str:
    if isinstance(value, (str, int)):
        return str(value)
    return ",".join(str(v) for v in value)


# -- solar ----------------------------------------------------------------------------
#: event: (horizon, method, use the sun's centre), as Celery's solar events
_SOLAR_EVENTS: dict[str, tuple[str, str, bool]] = {
    "dawn_astronomical": ("-18", "next_rising", True),
    "dawn_nautical": ("-12", "next_rising", True),
    "dawn_civil": ("-6", "next_rising", True),
    "sunrise": ("-0:34", "next_rising", False),
    "solar_noon": ("0", "next_transit", False),
    "sunset": ("-0:34", "next_setting", False),
    "dusk_civil": ("-6", "next_setting", True),
    "dusk_nautical": ("-12", "next_setting", True),
    "dusk_astronomical": ("-18", "next_setting", True),
}


class solar(_AtInstants):
    """At a solar event (``'sunrise'``, ``'dusk_civil'``, ...) seen from a latitude and
    longitude. Needs the optional ``ephem`` package (``pip install celeriac[solar]``)."""

    def __init__(self, event: str, lat: float, lon: float, nowfun: NowFun | None = None,
                 app: Celery | None = None) -> None:
        super().__init__(nowfun, app)
        if event not in _SOLAR_EVENTS:
            raise ConfigurationError(f"solar: unknown event {event!r}; one of "
                                     f"{', '.join(_SOLAR_EVENTS)}")
        if not -90 <= float(lat) <= 90:
            raise ConfigurationError(f"solar: latitude {lat} is outside -90..90")
        if not -180 <= float(lon) <= 180:
            raise ConfigurationError(f"solar: longitude {lon} is outside -180..180")
        try:
            import ephem  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            raise ConfigurationError(
                "solar schedules need the 'ephem' package: pip install 'celeriac[solar]'"
            ) from None
        self._ephem = ephem
        self.event, self.lat, self.lon = event, float(lat), float(lon)

    def next_run_at(self, last_run_at: dt.datetime) -> dt.datetime:
        ephem = self._ephem
        horizon, method, centre = _SOLAR_EVENTS[self.event]
        observer = ephem.Observer()
        observer.lat, observer.lon = str(self.lat), str(self.lon)
        observer.elevation = 0
        observer.pressure = 0  # the horizons above already allow for refraction
        observer.horizon = horizon
        after = maybe_make_aware(last_run_at).astimezone(UTC)
        observer.date = after.replace(tzinfo=None)
        sun = ephem.Sun()
        start = observer.date
        for _ in range(400):
            try:
                if method == "next_transit":
                    when = observer.next_transit(sun, start=start)
                else:
                    when = getattr(observer, method)(sun, start=start, use_center=centre)
                break
            except ephem.CircumpolarError:
                # no such event that day here (polar day or night): look on from the
                # sun's next lowest point, until a day that has one
                start = ephem.Date(observer.next_antitransit(sun, start=start) + ephem.minute)
        else:
            raise ConfigurationError(f"{self!r}: the event does not happen within a year")
        instant: dt.datetime = when.datetime().replace(tzinfo=UTC)
        return instant

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude: {self.lon}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, solar):
            return (self.event, self.lat, self.lon) == (other.event, other.lat, other.lon)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment,unused-ignore]

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.event, self.lat, self.lon)


def maybe_schedule(value: Any, relative: bool = False,
                   app: Celery | None = None) -> BaseSchedule | Any:
    """Seconds or a timedelta -> ``schedule``; a schedule gets the app; else as given."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = dt.timedelta(seconds=value)
    if isinstance(value, dt.timedelta):
        return schedule(value, relative, app=app)
    if isinstance(value, BaseSchedule) and app is not None:
        value.app = app
    return value
