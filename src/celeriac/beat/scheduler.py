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
process killed between the two (microseconds) loses that run rather than doubling it.
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
from celeriac.protocol import task_ids
from celeriac.schedules import crontab, schedule

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.beat")


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
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

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
        """Claim and send what is due; returns seconds until the next entry is due."""
        now = self.clock()
        if now < self._last_tick - 1.0:  # the clock went back: look at every entry again
            for entry in self.entries:
                entry.due_at = 0.0
        self._last_tick = now
        due: list[tuple[Entry, Claim, float, bool]] = []
        for entry in self.entries:
            if entry.due_at <= now:
                found = self._evaluate(entry, now)
                if found is not None:
                    due.append((entry, *found))
        if due:
            won = self.store.claim([claim for _, claim, _, _ in due])
            lost = []
            sending: list[tuple[Entry, str | None]] = []
            for (entry, (_, previous, new), next_s, send), ok in zip(due, won, strict=True):
                if ok:
                    entry.last_run, entry.due_at = new, now + next_s
                    if send:
                        sending.append((entry, previous))
                else:
                    lost.append(entry)
            if lost:  # another scheduler ran these: read what it wrote
                self._refresh(lost, now)
            self._send(sending)
        soonest = min((e.due_at for e in self.entries), default=now + self.max_interval_s)
        return soonest - self.clock()

    def _evaluate(self, entry: Entry, now: float) -> tuple[Claim, float, bool] | None:
        """For a due entry: its claim, seconds to its next check, and whether the claim
        sends a run (False: it only re-bases the entry). None when it is not due."""
        claim: Claim = (entry.name, entry.last_run, _stamp(now))
        last = float(entry.last_run) if entry.last_run is not None else now
        if last > now + max(self.lease_s, 1.0):  # the clock went back: count from now
            self._once(entry.name, f"beat: entry {entry.name!r} last ran in the future "
                       f"({last - now:.0f}s ahead): the clock went back; counting from now")
            return claim, 0.001, False
        sched = entry.schedule
        if type(sched) is schedule and not sched.relative and sched.nowfun in (None, self._now):
            # Celery's schedule.is_due, in floats (1,000 entries a second cost 1 ms, not 14)
            remaining_s = last + sched.seconds - now
            if remaining_s > 0:
                entry.due_at = now + min(remaining_s, self.max_interval_s)
                return None
            return claim, sched.seconds, True
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
                return claim, next_s, False
        return claim, next_s, True

    # -- sending ------------------------------------------------------------------------
    def _send(self, claimed: list[tuple[Entry, str | None]]) -> None:
        """Send claimed runs through the app's send path. Runs of one task with the same
        options go as one bulk send (``_build_many``, as ``send_many``: routing and the
        task's options apply); a run that cannot be sent gives its claim back."""
        groups: dict[tuple[str, str], list[tuple[Entry, str | None]]] = {}
        for entry, previous in claimed:
            groups.setdefault((entry.task, repr(entry.options)), []).append((entry, previous))
        for runs in groups.values():
            if len(runs) > 1 and self._send_bulk(runs):
                continue
            for run in runs:
                self._send_one(*run)

    def _send_bulk(self, runs: list[tuple[Entry, str | None]]) -> bool:
        """One broker round trip for the runs; False when they must go one by one (a
        countdown in the options, or one of them cannot be built)."""
        app, first = self.app, runs[0][0]
        try:
            messages, due_ts = app._build_many(
                first.task, [(e.args, e.kwargs or None) for e, _ in runs],
                app.tasks.get(first.task), dict(first.options))
        except Exception:
            return False
        if due_ts is not None:
            return False
        try:
            app.publish_many_blocking(messages, None)
        except Exception as exc:
            self._give_back(runs, exc)
            return True
        for (entry, previous), task_id in zip(runs, task_ids(messages), strict=True):
            self._sent(entry, task_id, previous)
        return True

    def _send_one(self, entry: Entry, previous: str | None) -> None:
        app = self.app
        try:
            message, due_ts = app._build_message(
                entry.task, list(entry.args), dict(entry.kwargs), app.tasks.get(entry.task),
                dict(entry.options))
            app.publish_blocking(message, due_ts)
        except Exception as exc:
            self._give_back([(entry, previous)], exc)
            return
        self._sent(entry, message.task_id, previous)

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

