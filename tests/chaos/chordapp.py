"""The app chord chaos tests run real workers for (``celeriac -A chordapp worker``).

Like chaosapp, everything comes from the environment: CELERIAC_BROKER_URL, the record
file (CHAOS_RECORD), the key prefix (CHAOS_KEYPREFIX, brokers and results), the lease
(CHAOS_LEASE_S), the result backend (CHAOS_RESULT_BACKEND) and the queue (CHAOS_QUEUE).
Every run of a header part and of the body appends a line to the record file, so the
test counts executions from outside the workers.

``CHAOS_KILL`` makes this worker SIGKILL itself at one point of a chord, once:
- ``after_store:<tag>:<index>``: the header part stored its result; before the join
  and before the ack (``celeriac.chords.on_task_done`` is entered). On Redis results a
  part that succeeded is stored and joined in one script (``chords.store_and_join``):
  there it dies right after that script, before anything else (the last part holding
  the claim, the body not sent);
- ``after_join:<tag>:<index>``: the part was joined (and, the last one, the body sent
  and the join marked done); before the ack;
- ``before_body_send``: the body was claimed; before its message is published;
- ``after_body_send``: the body's message was published; before the join is marked
  done (the window a claim that expires covers).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from celeriac import Celery, chords, group

app = Celery("chordchaos")
_prefix = os.environ.get("CHAOS_KEYPREFIX", "")
app.conf.broker_transport_options = {
    "visibility_timeout": float(os.environ.get("CHAOS_LEASE_S", "60")),
    "polling_interval": 0.02,
    "global_keyprefix": _prefix,
}
app.conf.result_backend = os.environ.get("CHAOS_RESULT_BACKEND") or None
app.conf.result_backend_transport_options = {"global_keyprefix": _prefix}
app.conf.task_default_queue = os.environ.get("CHAOS_QUEUE", "celery")
#: the body's claim lasts max(5 s, twice this): the shortest the join allows
app.conf.result_chord_join_timeout = 1.0


def record(line: str) -> None:
    """Append one line to the record file (O_APPEND: lines never interleave)."""
    path = os.environ.get("CHAOS_RECORD")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


@app.task(name="chord.part", acks_late=True)
def part(tag: str, index: int, until: float = 0.0) -> int:
    """A header task: waits until the wall-clock ``until`` (so parts on several
    workers end together), records its run and returns ``index * 10``."""
    delay = until - time.time()
    if delay > 0:
        time.sleep(delay)
    record(f"part {tag} {index} {os.getpid()}")
    return index * 10


@app.task(name="chord.flaky", bind=True, acks_late=True, max_retries=3)
def flaky(self: Any, tag: str, index: int) -> int:
    """A header task that retries twice before it succeeds."""
    record(f"try {tag} {index} {self.request.retries} {os.getpid()}")
    if self.request.retries < 2:
        raise self.retry(countdown=0.2)
    return index * 10


@app.task(name="chord.replaced", bind=True, acks_late=True)
def replaced(self: Any, tag: str, index: int) -> Any:
    """A header task that adds ``part(tag, 100 + index)`` to its chord, then replaces
    itself: index 0 with a group of two parts (its result: their list), the others with
    a chain of two parts (its result: the last one's)."""
    self.add_to_chord(part.s(tag, 100 + index))
    if index == 0:
        return self.replace(group(part.s(tag, 10), part.s(tag, 20)))
    return self.replace(part.s(tag, 10 + index) | part.si(tag, 20 + index))


@app.task(name="chord.body", acks_late=True)
def body(results: list[int], tag: str) -> int:
    """The chord's body: records one line per execution (what the tests count)."""
    record(f"body {tag} {os.getpid()} {json.dumps(results, separators=(',', ':'))}")
    return sum(r if isinstance(r, int) else sum(r) for r in results)


@app.task(name="chord.errback")
def errback(task_id: str, tag: str) -> None:
    record(f"errback {tag} {os.getpid()}")


@app.task(name="chord.fail", acks_late=True)
def fail(tag: str, index: int) -> int:
    record(f"part {tag} {index} {os.getpid()}")
    raise ValueError(f"part {index} fails")


def _die(where: str) -> None:
    record(f"killed {where} {os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill(spec: str) -> None:
    """Wrap the chord's steps in this worker process so it dies at ``spec``."""
    point, _, target = spec.partition(":")
    on_task_done = chords.on_task_done
    send_signature = chords.send_signature

    def is_target(call: Any) -> bool:
        return ":".join(map(str, call.args[:2])) == target

    async def on_task_done_killing(app_: Any, backend: Any, call: Any, state: str,
                                   value: Any) -> None:
        if point == "after_store" and is_target(call):
            _die(spec)
        await on_task_done(app_, backend, call, state, value)
        if point == "after_join" and is_target(call):
            _die(spec)

    async def send_signature_killing(app_: Any, sig: Any, args: list[Any], call: Any,
                                     headers: dict[str, Any] | None = None) -> None:
        is_body = bool(headers and chords.CLAIM_HEADER in headers)
        if point == "before_body_send" and is_body:
            _die(spec)
        await send_signature(app_, sig, args, call, headers)
        if point == "after_body_send" and is_body:
            _die(spec)

    chords.on_task_done = on_task_done_killing  # type: ignore[assignment]
    chords.send_signature = send_signature_killing  # type: ignore[assignment]
    _install_store_and_join_kill(point, spec, is_target)


def _install_store_and_join_kill(point: str, spec: str, is_target: Any) -> None:
    """The same points where a header part is stored and joined in one script (Redis)."""
    from celeriac.chords.redis import RedisChordJoin

    store_and_join = chords.store_and_join
    store_part = RedisChordJoin.store_part

    async def store_part_killing(self: Any, group_id: str, task_id: str, *args: Any) -> Any:
        claim = await store_part(self, group_id, task_id, *args)
        if point == "after_store" and task_id in _TARGET_IDS:
            _die(spec)
        return claim

    async def store_and_join_killing(app_: Any, backend: Any, call: Any,
                                     *args: Any) -> None:
        if is_target(call):
            _TARGET_IDS.add(call.id)
        await store_and_join(app_, backend, call, *args)
        if point == "after_join" and is_target(call):
            _die(spec)

    chords.store_and_join = store_and_join_killing  # type: ignore[assignment]
    RedisChordJoin.store_part = store_part_killing  # type: ignore[method-assign]


#: ids of the target part's runs (store_part sees the task id, not the call)
_TARGET_IDS: set[str] = set()


if os.environ.get("CHAOS_KILL"):
    _install_kill(os.environ["CHAOS_KILL"])
