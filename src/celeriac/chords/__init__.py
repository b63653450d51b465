"""Chords: the join that sends a chord's body once its header is done, and saved groups.

The worker calls ``on_task_done`` when a task ends (SUCCESS or FAILURE) — one call, in
``worker/executor.py``. For a header task (a ``chord`` in its embed and a ``group``
header) it adds the task's part to its backend's join (``chords/redis.py``,
``sqlite.py``, ``memory.py``). The part that completes the header claims the body and
sends it with the header's results in header order; a failed part fails the body with
ChordError instead (stored as the body's result, its errbacks called once). No task
polls: there is no ``celery.chord_unlock`` loop on these backends.

Exactly once (docs/canvas.md): a part stored twice counts once; the claim expires, so a
redelivered header task whose first worker died holding it takes it over
(``_wait_for_claim``); the body travels with its claim's token in the
``celeriac_chord_claim`` header and ``accept_body`` (the receiving worker) drops a
second copy sent under another claim.

rpc:// and a disabled backend cannot join (Celery refuses them too): sending a chord
raises NotImplementedError there; groups work on every backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import (
    DisabledBackend,
    ResultBackend,
    exception_to_result,
    make_meta,
)
from celeriac.chords.base import HELD, ChordJoin, Claim, Held, NoSize, claim_header
from celeriac.errors import ChordError
from celeriac.serialization import json_dumps, json_loads

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.protocol import TaskCall

logger = logging.getLogger("celeriac.chords")

#: the header a chord body (and a failed chord's errbacks) carries: "<group id> <token>"
CLAIM_HEADER = "celeriac_chord_claim"
#: how often a part that found the claim held asks again (only then: a rare case)
_RECLAIM_INTERVAL_S = 0.2

_NO_CHORDS = ("the {} result backend does not support chords (Celery's does not either): "
              "use redis://, sqlite:// or memory:// results for chords, or a chain")


def join_for(backend: ResultBackend, app: Celery) -> ChordJoin | None:
    """The chord join of this backend (made once per backend), or None."""
    join: ChordJoin | None = getattr(backend, "_celeriac_chord_join", None)
    if join is not None:
        return join
    conf = app.conf
    chord_s = conf.seconds("result_chord_expires") or conf.seconds("result_expires")
    result_s = conf.seconds("result_expires")
    claim_s = max(5, int((conf.seconds("result_chord_join_timeout") or 5.0) * 2))
    from celeriac.backends.memory import MemoryBackend
    from celeriac.backends.redis import RedisBackend
    from celeriac.backends.sqlite import SQLiteBackend

    if isinstance(backend, RedisBackend):
        from celeriac.chords.redis import RedisChordJoin

        join = RedisChordJoin(backend, chord_s, result_s, claim_s)
    elif isinstance(backend, SQLiteBackend):
        from celeriac.chords.sqlite import SQLiteChordJoin

        join = SQLiteChordJoin(backend, chord_s, result_s, claim_s)
    elif isinstance(backend, MemoryBackend):
        from celeriac.chords.memory import MemoryChordJoin

        join = MemoryChordJoin(backend.url, chord_s, result_s, claim_s)
    else:
        return None
    setattr(backend, "_celeriac_chord_join", join)  # noqa: B010 (not a backend attribute)
    return join


def ensure_chords_allowed(app: Celery) -> None:
    """Refuse a chord at send time on a backend that cannot join it."""
    url = str(app.conf.result_backend or "")
    if url.startswith("rpc://"):
        raise NotImplementedError(_NO_CHORDS.format("rpc://"))
    if not url and app.broker_url.split("://", 1)[0] not in ("sqlite", "memory", ""):
        raise NotImplementedError("chords need a result backend: set result_backend")


async def _join(app: Celery) -> ChordJoin:
    backend = await app.clients.backend()
    join = join_for(backend, app)
    if join is None:
        name = "disabled" if isinstance(backend, DisabledBackend) else type(backend).__name__
        raise NotImplementedError(_NO_CHORDS.format(name))
    return join


_IN_USE = ("group id {!r} is already in use by a saved group (GroupResult.save): "
           "give this {} another id, or delete the saved group first")


async def _set_size(app: Celery, group_id: str, size: int) -> None:
    if not await (await _join(app)).set_size(group_id, size):
        raise ValueError(_IN_USE.format(group_id, "chord"))


def set_size(app: Celery, group_id: str, size: int) -> None:
    """Record a chord header's size (the client does, before it sends the header).
    Raises ValueError when a saved group has the chord's group id."""
    app.run_sync(_set_size(app, group_id, size))


async def _check_group_id(app: Celery, group_id: str) -> None:
    backend = await app.clients.backend()
    join = join_for(backend, app)
    if join is not None and await join.group_exists(group_id):
        raise ValueError(_IN_USE.format(group_id, "group"))


def check_group_id(app: Celery, group_id: str) -> None:
    """Raise ValueError when a saved group has this id (a group sent with its own id)."""
    app.run_sync(_check_group_id(app, group_id))


async def _add_to_chord(app: Celery, group_id: str) -> None:
    await (await _join(app)).add_to_chord(group_id)


def add_to_chord(app: Celery, group_id: str) -> None:
    """One more part to wait for (``Task.add_to_chord``, before the task is sent)."""
    app.run_sync(_add_to_chord(app, group_id))


# -- saved groups (GroupResult.save/restore/delete) -------------------------------------
async def _save(app: Celery, group_id: str, shape: Any) -> None:
    await (await _join(app)).save_group(group_id, json_dumps({"result": shape}))


async def _restore(app: Celery, group_id: str) -> Any:
    raw = await (await _join(app)).restore_group(group_id)
    return None if raw is None else json_loads(raw).get("result")


async def _delete(app: Celery, group_id: str) -> None:
    await (await _join(app)).delete_group(group_id)


def save_group(app: Celery, group_id: str, shape: Any) -> None:
    app.run_sync(_save(app, group_id, shape))


def restore_group(app: Celery, group_id: str) -> Any:
    return app.run_sync(_restore(app, group_id))


def delete_group(app: Celery, group_id: str) -> None:
    app.run_sync(_delete(app, group_id))


# -- the worker's side ------------------------------------------------------------------
async def on_task_done(app: Celery, backend: ResultBackend, call: TaskCall, state: str,
                       value: Any) -> None:
    """A task ended with ``state`` (SUCCESS: ``value`` is its result; FAILURE: the
    exception), its result stored. A chord header part: add it, and send or fail the
    body if it was the last. Never raises: the task has run and is recorded."""
    body_dict = call.chord
    group_id = call.headers.get("group")
    if not body_dict or not group_id:
        return
    try:
        join = join_for(backend, app)
        if join is None:
            logger.error("Chord %s: the %s result backend cannot join chords; its body "
                         "will not run", group_id, type(backend).__name__)
            return
        result = exception_to_result(value) if state in states.EXCEPTION_STATES else value
        claim = await join.add_part(group_id, call.id, call.headers.get("group_index"),
                                    state, result)
    except Exception:
        logger.exception("Chord %s: the part of %s[%s] could not be joined", group_id,
                         call.name, call.id)
        return
    await _after_part(app, backend, join, group_id, claim, body_dict, call)


def store_joins(app: Celery, backend: ResultBackend, call: TaskCall) -> bool:
    """This task is a chord header part whose backend stores its result with its part
    in one step (``store_and_join``; Redis)."""
    if not call.chord or not call.headers.get("group"):
        return False
    join = join_for(backend, app)
    return join is not None and join.stores_results


async def store_and_join(app: Celery, backend: ResultBackend, call: TaskCall,
                         meta: dict[str, Any], expires_s: float | None,
                         value: Any) -> None:
    """A header task succeeded (``store_joins``): store its result ``meta`` and add its
    part in one step (one round trip on Redis), then send the body if it was the last.
    Raises, storing nothing, what ``ResultBackend.store`` raises for a value it cannot
    store (the worker then records a FAILURE, as for any task); after that, never."""
    group_id = str(call.headers.get("group"))
    join = join_for(backend, app)
    assert join is not None and call.chord
    claim = await join.store_part(group_id, call.id, call.headers.get("group_index"),
                                  states.SUCCESS, value, meta, expires_s)
    await _after_part(app, backend, join, group_id, claim, call.chord, call)


async def _after_part(app: Celery, backend: ResultBackend, join: ChordJoin, group_id: str,
                      claim: Claim | Held | NoSize | None, body_dict: dict[str, Any],
                      call: TaskCall) -> None:
    """What the part's join said: watch for a missing size, wait for a held claim, or
    send the body. Never raises."""
    try:
        if isinstance(claim, NoSize):
            _watch_size(app, join, group_id)
            return
        if isinstance(claim, Held):
            claim = await _wait_for_claim(join, group_id)
        if claim is not None:
            await _fire(app, backend, join, group_id, claim, body_dict, call)
    except Exception:
        logger.exception("Chord %s: the part of %s[%s] could not be joined", group_id,
                         call.name, call.id)


#: chords whose size this worker is waiting to see recorded (see ``_watch_size``)
_WATCHED: set[str] = set()


def _watch_size(app: Celery, join: ChordJoin, group_id: str) -> None:
    """A part arrived before the header's size: log an error if the size is still not
    recorded after ``result_chord_join_timeout`` (the sender died, or sent the header
    without it), so a chord never waits forever without a word."""
    if group_id in _WATCHED:
        return
    _WATCHED.add(group_id)
    timeout_s = app.conf.seconds("result_chord_join_timeout") or 3.0

    async def check() -> None:
        try:
            await asyncio.sleep(timeout_s)
            if not await join.size_known(group_id):
                logger.error("Chord %s: header parts arrived but the header's size was "
                             "not recorded after %ss (result_chord_join_timeout): the "
                             "client died before sending it, or sent the header tasks "
                             "without their chord; the body will not run until it is",
                             group_id, timeout_s)
        except Exception:
            logger.exception("Chord %s: checking the header's size failed", group_id)
        finally:
            _WATCHED.discard(group_id)

    task = asyncio.ensure_future(check())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


_PENDING: set[asyncio.Future[None]] = set()


async def _wait_for_claim(join: ChordJoin, group_id: str) -> Claim | None:
    """The header is complete and someone else holds the claim: wait until they mark
    the join done (None), or their claim expires — their worker died between the claim
    and ``done`` — and take it over (the Claim: send the body)."""
    deadline = time.monotonic() + join.claim_expires_s + 2
    claim: Claim | Held | None = HELD
    while isinstance(claim, Held):
        if time.monotonic() > deadline:
            logger.warning("Chord %s: another worker still holds the claim to send the "
                           "body after %ss; leaving it to them", group_id,
                           join.claim_expires_s)
            return None
        await asyncio.sleep(_RECLAIM_INTERVAL_S)
        claim = await join.reclaim(group_id)
    if claim is not None:
        logger.warning("Chord %s: took over the claim of a worker that did not finish "
                       "sending the body", group_id)
    return claim


async def accept_body(app: Celery, backend: ResultBackend, call: TaskCall) -> bool:
    """A message with the claim header arrived: run it (True) unless another copy of it
    was sent under another claim first (a take-over's resend)."""
    group_id, _, token = str(call.headers.get(CLAIM_HEADER) or "").partition(" ")
    try:
        join = join_for(backend, app)
        if join is None or not token:
            return True
        return await join.accept(group_id, call.id, token)
    except Exception:  # better run twice than never
        logger.exception("Chord %s: could not check %s[%s] for a duplicate send",
                         group_id, call.name, call.id)
        return True


async def _fire(app: Celery, backend: ResultBackend, join: ChordJoin, group_id: str,
                claim: Claim, body_dict: dict[str, Any], call: TaskCall) -> None:
    from celeriac.canvas import maybe_signature

    body = maybe_signature(body_dict, app=app)
    headers = {CLAIM_HEADER: claim_header(group_id, claim.token)}
    for task_id, state, result in claim.parts:
        if state in states.PROPAGATE_STATES:
            from celeriac.backends.base import rebuild_exception

            exc = rebuild_exception(result)
            error = ChordError(f"Dependency {task_id} raised {exc!r}")
            logger.error("Chord %s: %s", group_id, error)
            try:
                await fail_body(app, backend, body, error, call, headers)
            finally:
                await join.failed(group_id, claim)
            return
    values = [result for _, _, result in claim.parts]
    if not await join.confirm(group_id, claim, app.conf.seconds("broker_connection_timeout")
                              or 4.0):
        logger.warning("Chord %s: the body was not sent: another worker holds the claim",
                       group_id)
        return
    try:
        await send_signature(app, body, [values], call, headers)
        logger.info("Chord %s: header done (%d parts), body %s[%s] sent", group_id,
                    len(values), body.get("task"), body.id)
    except Exception as exc:
        logger.exception("Chord %s: sending the body failed", group_id)
        await fail_body(app, backend, body, ChordError(f"Callback error: {exc!r}"), call,
                        headers)
    finally:
        await join.done(group_id, claim)


async def fail_body(app: Celery, backend: ResultBackend, body: Any, exc: BaseException,
                    call: TaskCall, headers: dict[str, Any] | None = None) -> None:
    """Fail a chord's body with ``exc`` without running it: its result (every member's
    for a group body), then its errbacks once, then the rest of its chain. Each
    errback's id is derived from the body's, so a resend under a taken-over claim
    (``headers``) is a duplicate the receiving worker drops."""
    from celeriac.canvas_group import group

    members = list(body.tasks) if isinstance(body, group) else [body]
    failure = exception_to_result(exc)
    expires_s = app.conf.seconds("result_expires")
    for sig in members:
        task_id = sig.id
        if task_id:
            await backend.store(task_id, make_meta(task_id, states.FAILURE, failure),
                                expires_s)
        for index, errback in enumerate(_as_list((sig.get("options") or {}).get("link_error"))):
            errback = dict(errback)
            errback["immutable"] = True
            errback["args"] = [task_id, *(errback.get("args") or [])]
            options = dict(errback.get("options") or {})
            if task_id and not options.get("task_id"):
                options["task_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                    f"{task_id}/errback/{index}"))
            errback["options"] = options
            await send_signature(app, errback, [], call, headers)
        for step in (sig.get("options") or {}).get("chain") or ():
            step_id = (step.get("options") or {}).get("task_id")
            if step_id:
                await backend.store(step_id, make_meta(step_id, states.FAILURE, failure),
                                    expires_s)


async def send_signature(app: Celery, sig: Any, args: list[Any], call: TaskCall,
                         headers: dict[str, Any] | None = None) -> None:
    """Send a signature from the worker, ``args`` before its own (unless immutable),
    ``headers`` added to its message's. A group, chord or chain is applied with the
    canvas (in a thread: it is sync code)."""
    kind = sig.get("subtask_type")
    parent: dict[str, Any] = {"parent_id": call.id,
                              "root_id": call.headers.get("root_id") or call.id}
    if kind:
        from celeriac.canvas import maybe_signature

        canvas = maybe_signature(dict(sig), app=app)
        if headers:
            own = (canvas.get("options") or {}).get("headers") or {}
            parent["headers"] = {**own, **headers}
        await asyncio.to_thread(canvas.apply_async, args, **parent)
        return
    options = {k: v for k, v in (sig.get("options") or {}).items()
               if v is not None and k != "add_to_parent"}
    for key, value in parent.items():
        options.setdefault(key, value)
    if headers:
        options["headers"] = {**(options.get("headers") or {}), **headers}
    call_args = list(sig.get("args") or [])
    if not sig.get("immutable"):
        call_args = [*args, *call_args]
    await app.asend_task(sig["task"], call_args, sig.get("kwargs") or {}, **options)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


__all__ = ["CLAIM_HEADER", "ChordError", "accept_body", "add_to_chord", "check_group_id",
           "ensure_chords_allowed", "fail_body", "join_for", "on_task_done",
           "restore_group", "save_group", "send_signature", "set_size", "store_and_join",
           "store_joins"]
