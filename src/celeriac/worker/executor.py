"""One delivery, start to finish: the worker's pipeline in the order it happens.

``Executor.process`` is where a message becomes a task run:
 1. parse the message (bad envelope, body or content type -> dead letter)
 2. find the task (unknown name -> dead letter) and check its arguments (-> dead letter)
 3. expired -> REVOKED, ack; eta still in the future -> into the broker's delay store, ack
 4. ack now if the task acks early (``acks_late=False``)
 5. run it in the pool
 6. record the outcome: SUCCESS (result, callbacks, chain), RETRY (republish through
    the delay store), FAILURE (result, errbacks; out of retries -> dead letter);
    ``raise Reject`` -> back to the queue (requeue=True) or dead letter, no state stored;
    ``raise Ignore`` -> no state stored, acked
 7. ack (batched), unless step 4 did, or the delivery went back to the queue.
Nothing here raises into the consumer: every path ends in ack, requeue or dead letter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Container
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from celeriac import chords, serialization, signals, signing, states, task_hooks
from celeriac.backends.base import (
    ResultBackend,
    exception_to_result,
    format_traceback,
    make_meta,
    result_route,
)
from celeriac.brokers.base import Broker, Delivery
from celeriac.context import Context, WorkerRequest
from celeriac.errors import (
    BackendStoreError,
    DecodeError,
    EncodeError,
    NotRegistered,
    TaskMessageError,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
)
from celeriac.execution import Outcome, check_arguments
from celeriac.protocol import Message, TaskCall, parse_task, utcnow
from celeriac.task import Task
from celeriac.worker.acks import Acker
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.board import TERMINATED, TIME_LIMIT

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.worker")
#: the longest dead-letter reason kept (a reason may quote the bad value in full)
REASON_LIMIT = 2000


class Executor:
    """Runs deliveries through the pipeline above. One per worker."""

    def __init__(self, app: Celery, broker: Broker, backend: ResultBackend, pool: Pool,
                 acker: Acker, hostname: str) -> None:
        self.app = app
        self.broker = broker
        self.backend = backend
        self.pool = pool
        self.acker = acker
        self.hostname = hostname
        conf = app.conf
        self.accept = serialization.accepted_types(conf.accept_content)
        self.acks_late_default = bool(conf.task_acks_late)
        self.result_expires_s = conf.seconds("result_expires")
        self.time_limit_s = conf.seconds("task_time_limit")
        self.soft_time_limit_s = conf.seconds("task_soft_time_limit")
        self.ignore_result_default = bool(conf.task_ignore_result)
        self.track_started = bool(conf.task_track_started)
        #: result_extended: name, args, kwargs, worker, retries, queue stored with results
        self.extended = bool(conf.result_extended)
        #: off: a failed task's message is dead-lettered instead of acked (acks_late)
        self.acks_on_failure = bool(conf.task_acks_on_failure_or_timeout)
        self.store_errors_ignored = bool(conf.task_store_errors_even_if_ignored)
        self.reject_on_worker_lost = bool(conf.task_reject_on_worker_lost)
        #: set: unsigned or tampered messages are dead-lettered (celeriac.signing)
        self.security_key: str | None = conf.security_key or None
        self.tasks = app.tasks
        self.processed = 0
        #: False only in celeriac.testing.drain, which runs delayed tasks at once
        self.honour_eta = True
        #: revoked ids, refused on receipt (celeriac.control.revoked sets it)
        self.revoked: Container[str] = frozenset()
        #: tasks run, by name (inspect stats: "total")
        self.totals: Counter[str] = Counter()
        #: running task id -> the asyncio task awaiting it; ids being terminated
        self.running: dict[str, asyncio.Task[Any] | None] = {}
        self.terminating: set[str] = set()
        #: the event dispatcher while task events are on (-E), else None
        self.events: Any = None
        #: called with (task name, state, run time or None) for each outcome, in this
        #: process whatever the pool (celeriac.observe.metrics counts here)
        self.on_outcome: list[Callable[[str, str, float | None], None]] = []
        #: in a consumer child: (times lost, why) of a task id that was running in a
        #: child when it died (worker/pools/board.py), else None
        self.lost_tasks: Callable[[str], tuple[int, int]] | None = None

    async def process(self, delivery: Delivery) -> None:
        try:
            await self._process(delivery)
        except Exception as exc:  # a bug here must not lose the message
            await self._internal_error(delivery, exc)
        finally:
            self.processed += 1

    async def _internal_error(self, delivery: Delivery, exc: Exception) -> None:
        """A bug or an input nobody foresaw: requeue once, then dead-letter, so a poison
        message can neither be lost nor loop through the worker forever."""
        if delivery.redelivered:
            logger.exception("internal error handling a redelivered message")
            await self._dead_letter(delivery, f"internal error (twice): "
                                              f"{type(exc).__name__}: {exc}")
            return
        logger.exception("internal error handling a message; returning it to the queue")
        try:
            await self.broker.requeue([delivery])
        except Exception:
            logger.error("requeue failed too (%s); the lease will bring it back", exc)

    async def _process(self, delivery: Delivery) -> None:  # noqa: C901, RUF100 (the pipeline, in order)
        props = delivery.message.properties
        result_route.set((props.get("reply_to"), props.get("correlation_id")))
        if delivery.envelope_error:
            return await self._dead_letter(delivery, f"undecodable envelope: "
                                                     f"{delivery.envelope_error}")
        if self.security_key:
            problem = signing.verify(delivery.message, self.security_key)
            if problem:
                return await self._dead_letter(delivery, problem)
        try:
            call = parse_task(delivery.message, self.accept)
            task = self.tasks.get(call.name)
            if task is None:
                signals.send(signals.task_unknown, self, name=call.name, id=call.id,
                             message=delivery.message, exc=NotRegistered(call.name))
                return await self._dead_letter(
                    delivery, f"unregistered task {call.name!r}: no task by that name is "
                              f"registered in this worker", call)
            check_arguments(task, call.args, call.kwargs)
            _check_canvas(call)
            request = self._request(call, delivery, task)
            if chords.CLAIM_HEADER in call.headers \
                    and not await chords.accept_body(self.app, self.backend, call):
                return self._drop_second_copy(delivery, call)
        except TaskMessageError as exc:
            signals.send(signals.task_rejected, self, message=delivery.message, exc=exc)
            return await self._dead_letter(delivery, f"{type(exc).__name__}: {exc}")
        except (TypeError, ValueError, OverflowError) as exc:  # a header of the wrong type
            return await self._dead_letter(delivery, f"bad header: {type(exc).__name__}: "
                                                     f"{exc}", call)

        # a task that died with a consumer child (its end is recorded, not run again)
        lost = self._lost_outcome(call) if delivery.redelivered and self.lost_tasks \
            else None
        if lost is None and (call.expires is not None or call.eta is not None
                             or call.id in self.revoked) \
                and await self._expired_or_early(delivery, call):
            return
        acks_late = self.acks_late_default if task.acks_late is None else task.acks_late
        if not acks_late:
            self.acker.ack(delivery)
        logger.info("Task %s[%s] received", call.name, call.id)
        signals.send(signals.task_received, self, request=request)
        if self.track_started and not request.ignore_result:
            started = {"pid": None, "hostname": self.hostname}
            await self._store(call, make_meta(call.id, states.STARTED, started,
                                              extra=self._extended(call, request)))
        outcome = lost
        if outcome is None:
            outcome = await self._run(task, call, request)
        elif self.events is not None:  # its end, as its run would have sent it
            self.events.task_finished(call, outcome)
        if self.on_outcome:
            self._observe(call.name, outcome.state, outcome.runtime_s)
        if outcome.state in _PREDICATES:
            settled = await self._predicate(call, delivery, outcome, acks_late)
        else:
            settled = await self._record(task, call, request, delivery, outcome)
        if acks_late and not settled:
            self.acker.ack(delivery)

    async def _expired_or_early(self, delivery: Delivery, call: TaskCall) -> bool:
        """Settle a delivery revoked or past its expiry (REVOKED) or before its eta
        (parked in the broker's delay store); True when it was."""
        expires, eta, now = call.expires, call.eta, utcnow()
        if call.id in self.revoked or (expires is not None and expires <= now):
            await self._expire(delivery, call)
            return True
        if eta is not None and self.honour_eta and (eta - now).total_seconds() > 0.01:
            logger.info("Task %s[%s] received with eta %s: kept in the broker until then",
                        call.name, call.id, eta.isoformat())
            self.acker.park(delivery, eta.timestamp())
            return True
        return False

    async def _run(self, task: Task[Any, Any], call: TaskCall, request: Context
                   ) -> Outcome:
        """Run it in the pool; REVOKED when remote control terminated it."""
        self.totals[call.name] += 1
        self.running[call.id] = asyncio.current_task()
        events = self.events
        if events is not None:
            events.task_began(call)  # task-received and task-started
        outcome = None
        try:
            outcome = await self.pool.run(task, call.args, call.kwargs, request)
        except asyncio.CancelledError:  # control's terminate on an async task
            if call.id not in self.terminating:
                raise
            uncancel = getattr(asyncio.current_task(), "uncancel", None)
            if uncancel is not None:  # Python 3.11+: this task goes on
                uncancel()
        finally:
            self.running.pop(call.id, None)
        if self.terminating and call.id in self.terminating:
            self.terminating.discard(call.id)
            outcome = Outcome(states.REVOKED, TaskRevokedError("terminated"))
        assert outcome is not None
        if events is not None:
            events.task_finished(call, outcome)
        return outcome

    def _lost_outcome(self, call: TaskCall) -> Outcome | None:
        """A redelivered message whose task died with a consumer child: its failure
        (WorkerLostError, or TimeLimitExceeded when killed at its hard limit; REVOKED
        when remote control terminated it), as the
        prefork parent reports it; None to run it (never lost, or lost once, not at its
        time limit, and ``task_reject_on_worker_lost`` asks for one more run)."""
        assert self.lost_tasks is not None
        times, why = self.lost_tasks(call.id)
        if not times:
            return None
        if why == TERMINATED:
            return Outcome(states.REVOKED, TaskRevokedError("terminated"))
        if self.reject_on_worker_lost and times == 1 and why != TIME_LIMIT:
            logger.error("Task %s[%s] lost its worker process (its child died); running "
                         "it again", call.name, call.id)
            return None
        exc: BaseException = TimeLimitExceeded(
            "hard time limit exceeded: its child process was killed") if why == TIME_LIMIT \
            else WorkerLostError(f"Worker exited prematurely: the child process running "
                                 f"{call.name}[{call.id}] died")
        return Outcome(states.FAILURE, exc, format_traceback(exc))

    def _request(self, call: TaskCall, delivery: Delivery, task: Task[Any, Any]) -> Context:
        """``task.request``: what the worker reads itself now, the rest when the task
        reads it (WorkerRequest)."""
        hard_s, soft_s = call.timelimit
        hard_s = hard_s or task.time_limit or self.time_limit_s
        soft_s = soft_s or task.soft_time_limit or self.soft_time_limit_s
        headers = call.headers
        get = headers.get
        return WorkerRequest.from_fields({
            "id": call.id, "task": call.name, "args": call.args, "kwargs": call.kwargs,
            "retries": call.retries, "headers": headers, "parent_id": get("parent_id"),
            "ignore_result": bool(get("ignore_result") or task.ignore_result
                                  or (task.ignore_result is None
                                      and self.ignore_result_default)),
            "timelimit": (hard_s, soft_s), "is_eager": False, "called_directly": False,
            "retries_exhausted": False,
            "_source": (call, delivery.message, delivery.redelivered, self.hostname),
        })

    # -- outcomes ------------------------------------------------------------------------
    async def _record(self, task: Task[Any, Any], call: TaskCall, request: Context,
                      delivery: Delivery, outcome: Outcome) -> bool:
        """Store and log the outcome; True when the delivery was settled here (no ack).
        A result the backend cannot encode or store is a FAILURE (EncodeError or
        BackendStoreError), logged, stored and followed (errbacks) as one, never a
        "succeeded" line and a caller left waiting."""
        if outcome.state == states.SUCCESS:
            # a chord header part on Redis: its result and its part in one script
            joined = call.chord is not None and not request.ignore_result \
                and chords.store_joins(self.app, self.backend, call)
            refused = None if request.ignore_result else \
                await self._store_success(call, request, outcome.value, joined)
            if refused is None:
                logger.info("Task %s[%s] succeeded in %.6fs: %r", call.name, call.id,
                            outcome.runtime_s, outcome.value)
                if call.callbacks or call.chain:
                    await self._send_followers(call, outcome.value)
                if call.chord and not joined:
                    await chords.on_task_done(self.app, self.backend, call, states.SUCCESS,
                                              outcome.value)
                return False
            outcome = Outcome(states.FAILURE, refused, format_traceback(refused),
                              runtime_s=outcome.runtime_s)
        if outcome.state == states.REVOKED:  # terminated by remote control
            logger.warning("Task %s[%s] terminated (revoked)", call.name, call.id)
            await self._store(call, make_meta(call.id, states.REVOKED,
                                              exception_to_result(outcome.value)))
            return False
        if outcome.state == states.RETRY and outcome.retry is not None:
            await self._retry(task, call, delivery, outcome)
            return False
        exc = outcome.value
        if type(exc).__name__ == "WorkerLostError" and self.reject_on_worker_lost \
                and not delivery.redelivered:
            logger.error("Task %s[%s] lost its worker process (%s); returning it to the queue",
                         call.name, call.id, exc)
            await self.broker.requeue([delivery])
            return True
        logger.error("Task %s[%s] raised unexpected: %r\n%s", call.name, call.id, exc,
                     outcome.traceback or "")
        if not request.ignore_result or self.store_errors_ignored:
            await self._store(call, make_meta(
                call.id, states.FAILURE, exception_to_result(exc), outcome.traceback,
                parent_id=request.parent_id, extra=self._extended(call, request)))
        await self._send_errbacks(call)
        if call.chord:
            await chords.on_task_done(self.app, self.backend, call, states.FAILURE, exc)
        task_hooks.on_failure_in_parent(task, outcome, call.id, call.args, call.kwargs)
        if outcome.exhausted:
            await self._dead_letter(delivery, f"max retries exceeded ({call.retries}): {exc!r}",
                                    call, quiet=True)
            return True
        if not self.acks_on_failure and (
                self.acks_late_default if task.acks_late is None else task.acks_late):
            await self._dead_letter(delivery, f"failed, and task_acks_on_failure_or_timeout "
                                              f"is off: {exc!r}", call, quiet=True)
            return True
        return False

    async def _retry(self, task: Task[Any, Any], call: TaskCall, delivery: Delivery,
                     outcome: Outcome) -> None:
        retry = outcome.retry
        assert retry is not None
        when = retry.when
        now = utcnow()
        eta = when if isinstance(when, dt.datetime) else now + dt.timedelta(seconds=when or 0)
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=dt.UTC)
        message = _retried_message(delivery.message, call, eta, retry.options)
        if self.security_key:
            signing.sign(message, self.security_key)
        if self.app.conf.broker_delay_store is not False:  # celeriac workers promote it
            await self.broker.delay([(message, eta.timestamp())])
        else:  # a Celery worker may take it: to the queue with its eta header, as Celery
            await self.broker.publish([message])
        logger.info("Task %s[%s] retry: Retry in %.3gs: %r", call.name, call.id,
                    max(0.0, (eta - now).total_seconds()), retry.exc)
        exc = retry.exc or retry
        await self._store(call, make_meta(call.id, states.RETRY, exception_to_result(exc),
                                          format_traceback(exc) if retry.exc else None,
                                          extra=self._extended(call, None)))
        if not outcome.hooked:
            _safe_hook(task.on_retry, exc, call.id, call.args, call.kwargs, None)

    async def _predicate(self, call: TaskCall, delivery: Delivery, outcome: Outcome,
                         acks_late: bool) -> bool:
        """``raise Reject`` / ``raise Ignore``: no state stored. Reject sends the message
        back to the queue (requeue=True) or to the dead-letter store with its reason;
        once acked early there is nothing left to reject. True when settled here."""
        exc = outcome.value
        if outcome.state == states.IGNORED:
            logger.info("Task %s[%s] ignored", call.name, call.id)
            return False
        requeue = bool(getattr(exc, "requeue", False))
        logger.info("Task %s[%s] rejected (requeue=%s): %s", call.name, call.id, requeue,
                    getattr(exc, "reason", exc))
        if not acks_late:
            logger.warning("Task %s[%s] was acked before it ran (acks_late=False): the "
                           "rejection has nothing to reject", call.name, call.id)
            return True
        if requeue:
            await self.broker.requeue([delivery])
        else:
            await self._dead_letter(delivery, f"rejected: {getattr(exc, 'reason', exc)}",
                                    call, quiet=True)
        return True

    def _extended(self, call: TaskCall, request: Context | None) -> dict[str, Any] | None:
        """What ``result_extended`` stores with a result, as Celery does."""
        if not self.extended:
            return None
        return {"name": call.name, "args": call.args, "kwargs": call.kwargs,
                "worker": self.hostname, "retries": call.retries,
                "queue": request.delivery_info.get("routing_key") if request is not None
                else None}

    async def _expire(self, delivery: Delivery, call: TaskCall) -> None:
        """Expired, or revoked (celeriac.control.revoked): REVOKED, never run."""
        if call.id in self.revoked:
            logger.warning("Discarding revoked task: %s[%s]", call.name, call.id)
            exc = TaskRevokedError("revoked")
        else:
            logger.warning("Discarding revoked task: %s[%s] (expired at %s)", call.name,
                           call.id, call.expires)
            exc = TaskRevokedError("expired")
        if self.events is not None:
            self.events.task_revoked(call, expired=exc.args == ("expired",))
        if signals.task_revoked._receivers:
            task = self.tasks.get(call.name)
            signals.task_revoked.send(task, request=self._request(call, delivery, task)
                                      if task is not None else None, terminated=False,
                                      signum=None, expired=exc.args == ("expired",))
        await self._store(call, make_meta(call.id, states.REVOKED, exception_to_result(exc)))
        self.acker.ack(delivery)
        if self.on_outcome:
            self._observe(call.name, states.REVOKED, None)

    def _observe(self, name: str, state: str, runtime_s: float | None) -> None:
        for hook in self.on_outcome:
            try:
                hook(name, state, runtime_s)
            except Exception:
                logger.exception("outcome hook %r failed", hook)

    def _drop_second_copy(self, delivery: Delivery, call: TaskCall) -> None:
        """A chord's body sent again by a worker that took over its claim, after the
        first copy was taken (celeriac.chords): ack it, do not run it."""
        logger.warning("Task %s[%s] dropped: a second copy of a chord's body, sent again "
                       "by a worker that took over the claim", call.name, call.id)
        self.acker.ack(delivery)

    async def _dead_letter(self, delivery: Delivery, reason: str,
                           call: TaskCall | None = None, quiet: bool = False) -> None:
        name = call.name if call else delivery.message.task_name or "?"
        task_id = call.id if call else delivery.message.task_id or "?"
        if len(reason) > REASON_LIMIT:  # it may quote a huge bad value; AMQP carries it
            reason = reason[:REASON_LIMIT - 15] + "... (truncated)"  # in a header frame
        log = logger.warning if quiet else logger.error
        log("Task %s[%s] dead-lettered: %s", name, task_id, reason)
        try:
            await self.broker.dead_letter(delivery, reason)
        except Exception:
            logger.exception("dead-lettering failed; returning the message to the queue")
            await self.broker.requeue([delivery])

    async def _store_success(self, call: TaskCall, request: Context, value: Any,
                             joined: bool = False) -> Exception | None:
        """Store a SUCCESS (the backend encodes it once, here, before anything is logged),
        with its chord part when ``joined`` (``chords.store_and_join``); when it cannot,
        the exception to record instead, naming the task and the type."""
        meta = make_meta(call.id, states.SUCCESS, value, parent_id=request.parent_id,
                         extra=self._extended(call, request))
        try:
            if joined:
                await chords.store_and_join(self.app, self.backend, call, meta,
                                            self.result_expires_s, value)
            else:
                await self.backend.store(call.id, meta, self.result_expires_s)
            return None
        except NotImplementedError:
            return None
        except EncodeError as exc:
            refused: Exception = EncodeError(f"Task {call.name}[{call.id}] returned {exc}")
            refused.__cause__ = exc
        except Exception as exc:
            refused = BackendStoreError(
                f"Task {call.name}[{call.id}] returned a value the result backend could not "
                f"store ({type(value)!r}): {_brief(exc)}")
            refused.__cause__ = exc
        return refused

    async def _store(self, call: TaskCall, meta: dict[str, Any]) -> None:
        if call.headers.get("ignore_result") and meta["status"] == states.SUCCESS:
            return
        try:
            await self.backend.store(call.id, meta, self.result_expires_s)
        except NotImplementedError:
            pass
        except Exception as exc:
            if meta["status"] == states.FAILURE:
                await self._store_small_failure(call, meta, exc)
            else:
                logger.exception("storing the result of %s[%s] failed", call.name, call.id)

    async def _store_small_failure(self, call: TaskCall, meta: dict[str, Any],
                                   exc: Exception) -> None:
        """The backend refused a FAILURE (too large: a huge message or traceback; an error
        reply): store a small one that says why, so the caller does not wait for ever."""
        failed = meta.get("result") or {}
        name = f"{failed.get('exc_module')}.{failed.get('exc_type')}" \
            if isinstance(failed, dict) else type(failed).__name__
        refused = BackendStoreError(
            f"the result backend could not store the failure of Task {call.name}[{call.id}] "
            f"({name}): {_brief(exc)}")
        small = make_meta(call.id, states.FAILURE, exception_to_result(refused),
                          parent_id=meta.get("parent_id"))
        try:
            await self.backend.store(call.id, small, self.result_expires_s)
        except Exception as again:
            logger.error("storing the result of %s[%s] failed (%s), and so did storing a "
                         "small FAILURE in its place (%s): its state stays as it was",
                         call.name, call.id, _brief(exc), _brief(again))
        else:
            logger.error("storing the result of %s[%s] failed (%s); stored a FAILURE "
                         "saying so instead", call.name, call.id, _brief(exc))

    # -- canvas --------------------------------------------------------------------------
    async def _send_followers(self, call: TaskCall, value: Any) -> None:
        """Callbacks (``link``) and the next step of a chain get the result."""
        try:
            await self._send_followers_unsafe(call, value)
        except Exception:  # the task ran: never let a bad signature rerun it
            logger.exception("sending the callbacks of %s[%s] failed", call.name, call.id)

    async def _send_followers_unsafe(self, call: TaskCall, value: Any) -> None:
        for sig in call.callbacks or ():
            await self._send_signature(sig, value, call)
        if call.chain:
            remaining = list(call.chain)
            step = dict(remaining.pop())
            options = dict(step.get("options") or {})
            options["chain"] = remaining or None
            step["options"] = options
            await self._send_signature(step, value, call)

    async def _send_errbacks(self, call: TaskCall) -> None:
        try:
            await self._send_errbacks_unsafe(call)
        except Exception:
            logger.exception("sending the errbacks of %s[%s] failed", call.name, call.id)

    async def _send_errbacks_unsafe(self, call: TaskCall) -> None:
        for sig in call.errbacks or ():
            sig = dict(sig)
            sig["immutable"] = True
            sig["args"] = [call.id, *(sig.get("args") or [])]
            await self._send_signature(sig, None, call)

    async def _send_signature(self, sig: dict[str, Any], value: Any, call: TaskCall) -> None:
        if sig.get("subtask_type"):  # a group, chord or chain: the canvas sends it
            return await chords.send_signature(self.app, sig, [value], call)
        args = list(sig.get("args") or [])
        if not sig.get("immutable"):
            args = [value, *args]
        options = {k: v for k, v in (sig.get("options") or {}).items()
                   if k not in ("task_id", "link", "link_error") or v is not None}
        options.setdefault("parent_id", call.id)
        options.setdefault("root_id", call.headers.get("root_id") or call.id)
        link, link_error = options.pop("link", None), options.pop("link_error", None)
        try:
            await self.app.asend_task(sig["task"], args, sig.get("kwargs") or {},
                                      link=link, link_error=link_error, **options)
        except Exception:
            logger.exception("sending %s after %s[%s] failed", sig.get("task"), call.name,
                             call.id)


#: outcomes a task chose by raising Reject or Ignore
_PREDICATES = frozenset({states.REJECTED, states.IGNORED})


def _check_canvas(call: TaskCall) -> None:
    """Refuse canvas fields of the wrong shape before the task runs, not after."""
    for name in ("callbacks", "errbacks", "chain"):
        value = getattr(call, name)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(s, dict) for s in value)):
            raise DecodeError(f"body embed {name!r} must be a list of signatures")
    if call.chord is not None and not isinstance(call.chord, dict):
        raise DecodeError("body embed 'chord' must be a signature")


def _retried_message(message: Message, call: TaskCall, eta: dt.datetime,
                     options: dict[str, Any]) -> Message:
    """The message for the next try: same id and body, retries + 1, the new eta."""
    headers = dict(message.headers)
    headers["retries"] = call.retries + 1
    headers["eta"] = eta.isoformat()
    headers.pop("redelivered", None)
    body = message.body
    if "args" in options or "kwargs" in options:
        embed = {"callbacks": call.callbacks, "errbacks": call.errbacks, "chain": call.chain,
                 "chord": call.chord}
        _, _, body = serialization.dumps(
            [options.get("args", call.args), options.get("kwargs", call.kwargs), embed],
            "pickle" if message.content_type == serialization.PICKLE else "json")
        if headers.get("compression"):  # the same codec for the new body
            from celeriac.compression import compress

            headers["compression"], body = compress(headers["compression"], body)
    return replace(message, headers=headers, body=body,
                   properties=dict(message.properties))


def _brief(exc: BaseException, limit: int = 500) -> str:
    """``Type: message``, cut short: a backend's error may quote the whole value."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit - 15] + "... (truncated)"


def _safe_hook(hook: Any, *args: Any) -> None:
    try:
        hook(*args)
    except Exception:
        logger.exception("task hook %s failed", getattr(hook, "__name__", hook))
