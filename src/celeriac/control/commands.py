"""The remote control commands a celeriac worker answers, with Celery's reply shapes.

Each command is ``async def name(state, **arguments) -> reply``; unknown arguments are
ignored (clients of other versions send more). ``ok(x)`` is ``{"ok": x}`` and
``nok(x)`` ``{"error": x}`` as in Celery. ``COMMANDS`` maps names to them; ``META``
holds what the CLI needs of each (Celery's ``controller_info_t``: kind, help, and how
positional arguments become keyword ones). An application's own commands join these
tables through ``celeriac.worker.control`` (control/panel.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal as signals
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from celeriac import __version__, states
from celeriac.backends.base import exception_to_result, make_meta
from celeriac.control import info
from celeriac.control.state import WorkerState
from celeriac.errors import TaskRevokedError
from celeriac.worker.rate_limit import parse_rate

logger = logging.getLogger("celeriac.control")
Command = Callable[..., Awaitable[Any]]
#: a positional CLI argument: (keyword name, converter or None)
ArgSpec = tuple[str, "Callable[[str], Any] | None"]


class CommandInfo(NamedTuple):
    """Celery's ``controller_info_t``, field for field: ``type`` is "inspect" or
    "control"; ``args`` converts positional CLI arguments in order, ``variadic`` names
    the keyword that takes the rest as a list."""

    alias: str | None
    type: str
    visible: bool
    default_timeout: float
    help: str
    signature: str | None
    args: Sequence[ArgSpec] | None
    variadic: str | None


COMMANDS: dict[str, Command] = {}
#: commands that only read (``celeriac inspect``), the rest change things (``control``)
INSPECT: set[str] = set()
#: name -> CommandInfo, for every command registered under its own name (not aliases)
META: dict[str, CommandInfo] = {}


def add_command(name: str, fun: Command, info: CommandInfo) -> None:
    """Put one command in the tables (``info.alias``, when set, names it too)."""
    for key in filter(None, (name, info.alias)):
        COMMANDS[key] = fun
        if info.type == "inspect":
            INSPECT.add(key)
        else:
            INSPECT.discard(key)
    META[name] = info


def strtobool(value: str) -> bool:
    """Celery's ``strtobool`` for CLI arguments: 1/0, true/false, yes/no, on/off."""
    word = str(value).strip().lower()
    if word in ("1", "true", "yes", "y", "on"):
        return True
    if word in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(f"cannot coerce {value!r} to type bool")


def ok(value: Any) -> dict[str, Any]:
    return {"ok": value}


def nok(value: Any) -> dict[str, Any]:
    return {"error": value}


def command(*names: str, inspect: bool = False, visible: bool = True,
            args: Sequence[ArgSpec] | None = None, variadic: str | None = None,
            signature: str | None = None) -> Callable[[Command], Command]:
    def register(fun: Command) -> Command:
        help_text = (fun.__doc__ or "").strip().split("\n")[0]
        info = CommandInfo(None, "inspect" if inspect else "control", visible, 1.0,
                           help_text, signature, args, variadic)
        for name in names or (fun.__name__.strip("_"),):
            add_command(name, fun, info)
        return fun
    return register


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


# -- inspect -------------------------------------------------------------------------------
@command(inspect=True)
async def ping(state: WorkerState, **_: Any) -> Any:
    """Ping worker(s)."""
    return ok("pong")


@command(inspect=True)
async def active(state: WorkerState, safe: bool = False, **_: Any) -> Any:
    """List of tasks currently being executed."""
    return [info.request_info(state, d, True, bool(safe)) for d in info.active(state)] \
        + info.children_active(state)


@command(inspect=True)
async def reserved(state: WorkerState, **_: Any) -> Any:
    """List of currently reserved tasks, not including scheduled/active."""
    return [info.request_info(state, d, False) for d in info.reserved(state)] \
        + info.children_reserved(state)


@command(inspect=True)
async def scheduled(state: WorkerState, **_: Any) -> Any:
    """List of currently scheduled ETA/countdown tasks (none: etas wait in the broker)."""
    return []  # tasks with an eta wait in the broker's delay store, not in a worker


@command(inspect=True, variadic="taskinfoitems", signature="[attr1 [attr2 [... [attrN]]]]")
async def registered(state: WorkerState, taskinfoitems: Any = None, builtins: bool = False,
                     **_: Any) -> Any:
    """List of registered tasks."""
    items = [i for i in (taskinfoitems or ("rate_limit",))
             if isinstance(i, str) and not i.startswith("_")]
    out = []
    for name in sorted(state.app.tasks):
        if name.startswith("celery.") and not builtins:
            continue
        task = state.app.tasks[name]
        fields = [f"{i}={getattr(task, i)}" for i in items
                  if getattr(task, i, None) is not None]
        out.append(f"{name} [{' '.join(fields)}]" if fields else name)
    return out


@command("registered_tasks", "dump_tasks", inspect=True, visible=False)
async def _registered_alias(state: WorkerState, **kwargs: Any) -> Any:
    return await registered(state, **kwargs)


@command(inspect=True)
async def stats(state: WorkerState, **_: Any) -> Any:
    """Request worker statistics/information."""
    return info.stats(state)


@command(inspect=True)
async def active_queues(state: WorkerState, **_: Any) -> Any:
    """List the task queues a worker is currently consuming from."""
    return [info.queue_info(q) for q in state.consumer.queues]


@command(inspect=True)
async def revoked(state: WorkerState, **_: Any) -> Any:
    """List of revoked task-ids."""
    return list(state.revoked.ids)


@command(inspect=True, args=[("with_defaults", strtobool)],
         signature="[include_defaults=False]")
async def conf(state: WorkerState, with_defaults: bool = False, **_: Any) -> Any:
    """List configuration."""
    return info.conf(state, bool(with_defaults))


@command(inspect=True, variadic="ids", signature="[id1 [id2 [... [idN]]]]")
async def query_task(state: WorkerState, ids: Any = None, **_: Any) -> Any:
    """Query for task information by id."""
    wanted = set(_ids(ids))
    found: dict[str, Any] = {}
    for kind, deliveries, acked in (("active", info.active(state), True),
                                     ("reserved", info.reserved(state), False)):
        for delivery in deliveries:
            task_id = delivery.message.task_id
            if task_id in wanted and task_id not in found:
                found[task_id] = [kind, info.request_info(state, delivery, acked)]
    return found


@command(inspect=True)
async def report(state: WorkerState, **_: Any) -> Any:
    """Information about celeriac's installation for bug reports."""
    import platform
    return ok(f"software -> celeriac:{__version__} py:{platform.python_version()}\n"
              f"platform -> system:{platform.system()} arch:{platform.machine()}\n"
              f"loader -> celeriac\nsettings -> transport:"
              f"{state.app.broker_url.split(':', 1)[0]} results:"
              f"{(state.app.result_backend_url or 'disabled').split(':', 1)[0]}\n")


@command(inspect=True)
async def clock(state: WorkerState, **_: Any) -> Any:
    """Get current logical clock value."""
    return {"clock": state.clock.value}


@command(inspect=True, visible=False)
async def hello(state: WorkerState, from_node: Any = None, revoked: Any = None,
                **_: Any) -> Any:
    """Celery's mingle: a starting Celery worker asks for our revoked ids (and sends
    its own, which we keep too)."""
    if from_node == state.hostname:
        return None
    if isinstance(revoked, (list, dict)):
        await state.revoked.add([str(i) for i in revoked])
    return {"revoked": list(state.revoked.ids), "clock": state.clock.forward()}


# -- control ---------------------------------------------------------------------------
@command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]")
async def revoke(state: WorkerState, task_id: Any = None, terminate: bool = False,
                 signal: Any = None, **_: Any) -> Any:
    """Revoke task by task id (or list of ids)."""
    ids = await state.revoked.add(_ids(task_id))
    await _mark_revoked(state, ids)
    if terminate:
        return ok(f"terminate: {_terminate(state, ids, signal)}")
    logger.info("Tasks flagged as revoked: %s", ", ".join(ids))
    return ok(f"tasks {', '.join(ids)} flagged as revoked")


@command(args=[("signal", str)], variadic="task_id",
         signature="<signal> [id1 [id2 [... [idN]]]]")
async def terminate(state: WorkerState, signal: Any = None, task_id: Any = None,
                    **_: Any) -> Any:
    """Terminate task by task id (or list of ids)."""
    return await revoke(state, task_id, terminate=True, signal=signal)


async def _mark_revoked(state: WorkerState, ids: list[str]) -> None:
    """REVOKED in the result backend for ids not started or done (as Celery does),
    so a waiter learns at once; a task that runs later is refused anyway."""
    try:
        backend = await state.app.clients.backend()
    except Exception:
        return
    running = set(state.executor.running)
    for task_id in ids:
        if task_id in running:
            continue
        try:
            meta = await backend.get(task_id)
            if meta is not None and meta.get("status") not in (
                    states.PENDING, states.RECEIVED, states.RETRY, states.REJECTED):
                continue
            exc = TaskRevokedError("revoked")
            await backend.store(task_id, make_meta(task_id, states.REVOKED,
                                                   exception_to_result(exc)),
                                state.executor.result_expires_s)
        except NotImplementedError:
            return
        except Exception as exc:
            logger.warning("could not mark %s revoked in the result backend: %s", task_id, exc)


def _signum(value: Any) -> int:
    if isinstance(value, int):
        return value
    name = str(value or "SIGTERM").upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    found = getattr(signals, name, None)
    if not isinstance(found, int):
        raise ValueError(f"unknown signal {value!r}")
    return int(found)


def _terminate(state: WorkerState, ids: list[str], signal: Any) -> str:
    """Stop the running ones: cancel async tasks, signal prefork children; say
    plainly what could not be stopped."""
    try:
        signum = _signum(signal)
    except ValueError as exc:
        return str(exc)
    executor, done, notes = state.executor, [], []
    elsewhere = getattr(state.pool, "children_consume", False)
    for task_id in ids:
        if task_id not in executor.running:
            if elsewhere and state.pool.terminate_job(task_id, signum) is None:
                done.append(task_id)  # the consumer child running it was signalled
            continue
        runner = executor.running.get(task_id)
        task_name = _running_name(state, task_id)
        task = state.app.tasks.get(task_name) if task_name else None
        if task is not None and task.is_coroutine and runner is not None:
            executor.terminating.add(task_id)
            runner.cancel()
            done.append(task_id)
            continue
        why = state.pool.terminate_job(task_id, signum)
        if why is None:
            executor.terminating.add(task_id)
            done.append(task_id)
        else:
            notes.append(f"{task_id}: {why}")
    for task_id in done:
        logger.info("Terminating %s (%s)", task_id, signum)
    if not done and not notes:
        return "tasks unknown"
    return "; ".join(filter(None, [", ".join(done), *notes]))


def _running_name(state: WorkerState, task_id: str) -> str | None:
    for delivery in info.active(state):
        if delivery.message.task_id == task_id:
            return delivery.message.task_name
    return None


@command(args=[("task_name", str), ("rate_limit", str)],
         signature="<task_name> <rate_limit (e.g., 5/s | 5/m | 5/h)>")
async def rate_limit(state: WorkerState, task_name: Any = None, rate_limit: Any = None,
                     **_: Any) -> Any:
    """Tell worker(s) to modify the rate limit for a task by type."""
    try:
        parse_rate(rate_limit)
    except ValueError as exc:
        return nok(f"Invalid rate limit string: {exc!r}")
    task = state.app.tasks.get(str(task_name))
    if task is None:
        logger.error("Rate limit attempt for unknown task %s", task_name)
        return nok("unknown task")
    vars(task)["rate_limit"] = rate_limit or None  # this task object only, as Celery
    state.consumer.limiter.reset(task.name)
    if not rate_limit:
        return ok("rate limit disabled successfully")
    logger.info("New rate limit for tasks of type %s: %s.", task_name, rate_limit)
    return ok("new rate limit set successfully")


@command(args=[("task_name", str), ("soft", float), ("hard", float)],
         signature="<task_name> <soft_secs> [hard_secs]")
async def time_limit(state: WorkerState, task_name: Any = None, hard: Any = None,
                     soft: Any = None, **_: Any) -> Any:
    """Tell worker(s) to modify the time limit for task by type."""
    task = state.app.tasks.get(str(task_name))
    if task is None:
        return nok("unknown task")
    try:
        limits = {"soft_time_limit": None if soft is None else float(soft),
                  "time_limit": None if hard is None else float(hard)}
    except (TypeError, ValueError):
        return nok("time limits must be numbers")
    vars(task).update(limits)
    logger.info("New time limits for tasks of type %s: soft=%s hard=%s", task_name, soft, hard)
    return ok("time limits set successfully")


@command(args=[("queue", str), ("exchange", str), ("exchange_type", str),
               ("routing_key", str)],
         signature="<queue> [exchange [type [routing_key]]]")
async def add_consumer(state: WorkerState, queue: Any = None, **_: Any) -> Any:
    """Tell worker(s) to consume from task queue by name."""
    if not isinstance(queue, str) or not queue:
        return nok("queue name required")
    if queue not in state.consumer.queues:
        state.consumer.queues.append(queue)
        logger.info("Started consuming from %s", queue)
        return ok(f"add consumer {queue}")
    return ok(f"already consuming from {queue}")


@command(args=[("queue", str)], signature="<queue>")
async def cancel_consumer(state: WorkerState, queue: Any = None, **_: Any) -> Any:
    """Tell worker(s) to stop consuming from task queue by name."""
    queues = state.consumer.queues
    if queue in queues and len(queues) > 1:
        queues.remove(queue)
        return ok(f"no longer consuming from {queue}")
    if queue in queues:
        return nok(f"{queue} is the last queue consumed; shut the worker down instead")
    return ok(f"no longer consuming from {queue}")


@command(args=[("n", int)], signature="[N=1]")
async def pool_grow(state: WorkerState, n: Any = 1, **_: Any) -> Any:
    """Grow pool by n processes/threads (celeriac: a fixed pool, says so)."""
    return nok(f"pool_grow: the {state.pool.name} pool has a fixed size in celeriac "
               f"(start the worker with another -c)")


@command(args=[("n", int)], signature="[N=1]")
async def pool_shrink(state: WorkerState, n: Any = 1, **_: Any) -> Any:
    """Shrink pool by n processes/threads (celeriac: a fixed pool, says so)."""
    return nok(f"pool_shrink: the {state.pool.name} pool has a fixed size in celeriac "
               f"(start the worker with another -c)")


@command()
async def shutdown(state: WorkerState, msg: str = "Got shutdown from remote", **_: Any) -> Any:
    """Shutdown worker(s)."""
    logger.warning("%s", msg)
    asyncio.get_running_loop().call_soon(state.stop)
    return ok("shutting down")


@command()
async def enable_events(state: WorkerState, **_: Any) -> Any:
    """Tell worker(s) to send task-related events."""
    if state.events is None:
        return nok("events are not available on this worker")
    state.events.task_events = True
    state.executor.events = state.events
    return ok("task events enabled")


@command()
async def disable_events(state: WorkerState, **_: Any) -> Any:
    """Tell worker(s) to stop sending task-related events."""
    if state.events is None:
        return ok("task events already disabled")
    state.events.task_events = False
    state.executor.events = None
    return ok("task events disabled")


@command(visible=False)
async def heartbeat(state: WorkerState, **_: Any) -> Any:
    """Tell worker(s) to send event heartbeat immediately."""
    if state.events is not None:
        await state.events.heartbeat()
    return None
