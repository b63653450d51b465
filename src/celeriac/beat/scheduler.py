"""The beat loop: which entries are due, who sends them, and sending them once.

Every scheduler (``celeriac beat``, ``worker -B``) runs this loop in a thread of its
own. Each ``beat_leader_timeout / 3`` it takes or renews the lease in the broker
(``BeatStore.lead``); only the holder evaluates entries. A due entry is first claimed
(``BeatStore.claim``: compare-and-set of its last-run value, all of a tick's claims in
one round trip) and only the winner sends it, through the app's normal send path
(``_build_message``: routing, the task's own options, the entry's ``options``). So:

- a run is sent once even if two schedulers lead at once (a paused leader waking up);
- a SIGKILLed leader's lease runs out and a standby sends within ``beat_leader_timeout``;
- the last run lives in the broker: a restart neither repeats nor skips a run;
- after downtime a missed run is sent once (Celery's rule: last run = when it was sent,
  so the schedule answers "due" once, then counts from now);
- a host clock jumping forward sends each entry once; one jumping back (a last run in
  the future) is re-based to now instead of silencing the entry until the clock catches up.

A claim is made before the send: should the send fail the claim is handed back, and a
process killed between the two loses that run rather than doubling it.

Interval entries (``schedule: 30.0``) are prepared ahead: ``SEND_AHEAD_S`` before a run
is due the leader claims it for its due instant and builds its messages, then sleeps
until that instant and only publishes. A tick of 1,000 runs so costs the due instant
one bulk publish, not the claim's round trip and the build as well; and their last run
is the due instant (not when the tick ran), so the schedule does not drift. A run late
by more than a quarter of its interval (or 1 s) counts from when it is sent, Celery's
rule after downtime.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from celeriac.beat.entries import Entry, load_entries
from celeriac.beat.store import BeatStore, Claim
from celeriac.protocol import Message, task_ids
from celeriac.schedules import crontab, schedule

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.beat")

#: how long before an interval entry's due instant it is claimed and its message built
#: (at most a quarter of its interval); the publish then happens at the due instant
SEND_AHEAD_S = 0.1
#: a run claimed by a tick: (entry, the last run it follows)
Run = tuple[Entry, "str | None"]
#: runs ready to publish: (runs, their messages or None, due timestamp, build error)
Built = tuple[list[Run], "Sequence[Message] | None", "float | None", "BaseException | None"]


def _stamp(t: float) -> str:
    return repr(round(t, 6))


class Scheduler:
    """One scheduler's loop. See the module docstring."""

    def __init__(self, app: Celery, *, store: BeatStore | None = None,
                 max_interval_s: float | None = None, node: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        from celeriac.beat.stores import create_store

        conf = app.conf
        self.app = app
        app.finalize()  # on_after_configure hooks add their periodic tasks here
        self.entries: list[Entry] = load_entries(app)
        self.store = store or create_store(app)
        self.node = node or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_s = float(conf.seconds("beat_leader_timeout") or 5.0)
        self.max_interval_s = float(max_interval_s or conf.seconds("beat_max_loop_interval")
                                    or 300.0)
        self.cron_deadline_s = conf.seconds("beat_cron_starting_deadline")
        self.clock = clock  # the wall clock (tests pass their own)
        if clock is not time.time:  # schedules without a nowfun of their own follow it
            for entry in self.entries:
                if getattr(entry.schedule, "nowfun", 0) is None:
                    entry.schedule.nowfun = self._now
        self.leader = False
        self._last_tick = 0.0
        self.sent = 0
        self._stop = threading.Event()
        self._told: set[tuple[str, str]] = set()
        self._failing: set[str] = set()
        tasks = app.tasks
        for entry in self.entries:
            if entry.task not in tasks:
                logger.warning("beat: entry %r names task %r, which this app does not "
                               "register; it is sent by name (a worker without it "
                               "dead-letters it)", entry.name, entry.task)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        """Lead or stand by until ``stop()``; then give the lease up."""
        next_renew = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_renew:
                    self._renew()
                    next_renew = time.monotonic() + self.lease_s / 3
                wait = self._tick_safely() if self.leader else self.max_interval_s
                wait = min(wait, next_renew - time.monotonic(), self.max_interval_s)
                if wait > 0:
                    self._stop.wait(wait)
        finally:
            self._close()

    def _tick_safely(self) -> float:
        """A tick; a broker error is logged once and retried in a second (the runs it
        did not claim stay due; the ones it claimed and could not send were handed back)."""
        try:
            wait = self.tick()
        except Exception as exc:
            self._once("tick", f"beat: the broker failed a tick ({exc!r}); retrying")
            return 1.0
        if ("tick", "") in self._told:
            self._told.discard(("tick", ""))
            logger.warning("beat: the broker answers again")
        return wait

    def stop(self) -> None:
        self._stop.set()

    def _close(self) -> None:
        try:
            if self.leader:
                self.store.resign(self.node)
                self.leader = False
        except Exception as exc:
            logger.warning("beat: could not give the lease up: %s", exc)
        self.store.close()

    def _renew(self) -> None:
        was = self.leader
        try:
            self.leader = self.store.lead(self.node, self.lease_s)
        except Exception as exc:
            self._once("lead", f"beat: cannot reach the broker for the lease: {exc}")
            self.leader = False
            return
        self._told.discard(("lead", ""))
        if self.leader and not was:
            try:
                self._refresh(self.entries, self.clock())
            except Exception as exc:  # lead again (and read again) at the next renewal
                self._once("lead", f"beat: cannot read the schedule's state: {exc!r}")
                self.leader = False
                return
            logger.info("beat: %s sends the schedule (%d entries)", self.node,
                        len(self.entries))
        elif was and not self.leader:
            logger.warning("beat: %s lost the lease; standing by", self.node)
        elif not self.leader and not was and ("standby", "") not in self._told:
            self._told.add(("standby", ""))
            logger.info("beat: %s standing by (another scheduler sends)", self.node)

    def _refresh(self, entries: Sequence[Entry], now: float) -> None:
        """Read the entries' last runs from the broker; an entry new to the broker starts
        counting from now (Celery: the first run is one interval after start)."""
        values = self.store.load([e.name for e in entries])
        fresh = [(e.name, None, _stamp(now)) for e in entries if values[e.name] is None]
        if fresh:
            self.store.claim(fresh)
            values.update(self.store.load([name for name, _, _ in fresh]))
        for entry in entries:
            entry.last_run = values[entry.name]
            entry.due_at = 0.0

    def tick(self) -> float:
        """Claim what is due (interval entries up to ``SEND_AHEAD_S`` ahead), then send
        each run at its due instant; returns seconds until the next entry to look at."""
        now = self.clock()
        if now < self._last_tick - 1.0:  # the clock went back: look at every entry again
            for entry in self.entries:
                entry.due_at = 0.0
        self._last_tick = now
        horizon = now + SEND_AHEAD_S
        due: list[tuple[Entry, Claim, float, bool, float]] = []
        for entry in self.entries:
            if entry.due_at <= horizon:
                found = self._evaluate(entry, now)
                if found is not None:
                    due.append((entry, *found))
        if due:
            won = self.store.claim([claim for _, claim, _, _, _ in due])
            lost = []
            sending: list[tuple[Entry, str | None, float]] = []
            for (entry, (_, previous, new), next_at, send, at), ok in zip(due, won,
                                                                          strict=True):
                if ok:
                    entry.last_run, entry.due_at = new, next_at
                    if send:
                        sending.append((entry, previous, at))
                else:
                    lost.append(entry)
            if lost:  # another scheduler ran these: read what it wrote
                self._refresh(lost, now)
            self._send(sending)
        soonest = min((e.due_at for e in self.entries), default=now + self.max_interval_s)
        return soonest - self.clock()

    def _evaluate(self, entry: Entry, now: float) -> tuple[Claim, float, bool, float] | None:
        """For a due entry: its claim, when to look at it next, whether the claim sends
        a run (False: it only re-bases the entry) and when to publish. None when it is
        not due yet; then ``entry.due_at`` says when to look again."""
        last = float(entry.last_run) if entry.last_run is not None else now
        if last > now + max(self.lease_s, 1.0):  # the clock went back: count from now
            self._once(entry.name, f"beat: entry {entry.name!r} last ran in the future "
                       f"({last - now:.0f}s ahead): the clock went back; counting from now")
            return (entry.name, entry.last_run, _stamp(now)), now + 0.001, False, now
        sched = entry.schedule
        if type(sched) is schedule and not sched.relative and sched.nowfun in (None, self._now):
            # Celery's schedule.is_due, in floats (1,000 entries a second cost 1 ms, not 14)
            every_s = sched.seconds
            ahead_s = min(SEND_AHEAD_S, every_s / 4)
            at = last + every_s
            if at - now > ahead_s:
                entry.due_at = min(at - ahead_s, now + self.max_interval_s)
                return None
            if now - at > min(every_s / 4, 1.0):  # missed (downtime): count from now
                at = now
            stamp = _stamp(at)
            return (entry.name, entry.last_run, stamp), float(stamp) + every_s - ahead_s, \
                True, at
        if entry.due_at > now:  # schedules of their own are asked when due, not ahead
            return None
        claim: Claim = (entry.name, entry.last_run, _stamp(now))
        try:
            is_due, next_s = sched.is_due(entry.last_run_at(now))
        except Exception as exc:
            self._once(entry.name, f"beat: entry {entry.name!r}: its schedule raised {exc!r}")
            entry.due_at = now + self.max_interval_s
            return None
        next_s = max(float(next_s), 0.001)
        if not is_due:
            entry.due_at = now + min(next_s, self.max_interval_s)
            return None
        if self.cron_deadline_s is not None and isinstance(entry.schedule, crontab):
            missed = now - entry.schedule.next_run_at(entry.last_run_at(now)).timestamp()
            if missed > self.cron_deadline_s:
                logger.info("beat: entry %r missed by %.0fs (> beat_cron_starting_"
                            "deadline): skipped", entry.name, missed)
                return claim, now + next_s, False, now
        return claim, now + next_s, True, now

    # -- sending ------------------------------------------------------------------------
    def _send(self, claimed: list[tuple[Entry, str | None, float]]) -> None:
        """Build every claimed run's message now, then publish each group at its due
        instant. Runs of one task with the same options go as one bulk send
        (``_build_many``, as ``send_many``: routing and the task's options apply); a run
        that cannot be sent gives its claim back."""
        by_time: dict[float, list[Run]] = {}
        for entry, previous, at in claimed:
            by_time.setdefault(at, []).append((entry, previous))
        plans = [(at, self._build(runs)) for at, runs in sorted(by_time.items())]
        for at, built in plans:
            delay_s = at - self.clock()
            if delay_s > 0:  # a claim made ahead: publish at the due instant
                time.sleep(min(delay_s, SEND_AHEAD_S))
            for item in built:
                self._publish(*item)

    def _build(self, runs: list[Run]) -> list[Built]:
        groups: dict[tuple[str, str], list[Run]] = {}
        for run in runs:
            groups.setdefault((run[0].task, repr(run[0].options)), []).append(run)
        built: list[Built] = []
        for group in groups.values():
            bulk = self._build_bulk(group) if len(group) > 1 else None
            if bulk is not None:
                built.append(bulk)
                continue
            for entry, previous in group:
                app = self.app
                try:
                    message, due_ts = app._build_message(
                        entry.task, list(entry.args), dict(entry.kwargs),
                        app.tasks.get(entry.task), dict(entry.options))
                except Exception as exc:
                    built.append(([(entry, previous)], None, None, exc))
                    continue
                built.append(([(entry, previous)], [message], due_ts, None))
        return built

    def _build_bulk(self, runs: list[Run]) -> Built | None:
        """The runs' messages as one batch (one template, ``protocol.CallBatch``); None
        when they must go one by one (a countdown, or one of them cannot be built)."""
        app, first = self.app, runs[0][0]
        try:
            messages, due_ts = app._build_many(
                first.task, [(e.args, e.kwargs or None) for e, _ in runs],
                app.tasks.get(first.task), dict(first.options))
        except Exception:
            return None
        if due_ts is not None:
            return None
        return runs, messages, None, None

    def _publish(self, runs: list[Run], messages: Sequence[Message] | None,
                 due_ts: float | None, error: BaseException | None) -> None:
        """One broker round trip for the runs (or give their claims back)."""
        if messages is None:
            self._give_back(runs, error or RuntimeError("not built"))
            return
        try:
            self.app.publish_many_blocking(messages, due_ts)
        except Exception as exc:
            self._give_back(runs, exc)
            return
        for (entry, previous), task_id in zip(runs, task_ids(messages), strict=True):
            self._sent(entry, task_id, previous)

    def _sent(self, entry: Entry, task_id: str, previous: str | None) -> None:
        self.sent += 1
        if entry.name in self._failing:
            self._failing.discard(entry.name)
            self._told.discard((entry.name, ""))
        if logger.isEnabledFor(logging.INFO):
            # after=: the last run this one follows (its claim's expected value); two
            # sends after the same run would be a run sent twice
            logger.info("Scheduler: Sending due task %s (%s) id=%s after=%s", entry.name,
                        entry.task, task_id, previous)

    def _give_back(self, failed: list[tuple[Entry, str | None]], exc: BaseException) -> None:
        for entry, _ in failed:
            self._failing.add(entry.name)
            self._once(entry.name, f"beat: could not send entry {entry.name!r} "
                       f"(task {entry.task!r}): {exc!r}")
        try:
            back = self.store.claim([(e.name, e.last_run, p) for e, p in failed
                                     if e.last_run is not None and p is not None])
        except Exception:
            back = []
        for (entry, previous), ok in zip(failed, back, strict=False):
            if ok:
                entry.last_run = previous
                entry.due_at = self.clock() + min(5.0, self.max_interval_s)

    def _once(self, key: str, text: str) -> None:
        """Log a problem once until it goes away (not once per tick)."""
        if (key, "") not in self._told:
            self._told.add((key, ""))
            logger.error("%s", text)


def run_threaded(scheduler: Scheduler) -> threading.Thread:
    """Start ``scheduler.run`` in a daemon thread (``worker -B``)."""
    thread = threading.Thread(target=_run_logged, args=(scheduler,), name="celeriac-beat",
                              daemon=True)
    thread.start()
    return thread


def _run_logged(scheduler: Scheduler) -> None:
    try:
        scheduler.run()
    except Exception:
        logger.exception("beat: the embedded scheduler stopped")

