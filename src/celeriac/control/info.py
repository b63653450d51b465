"""The shapes of Celery's inspect replies, built from a celeriac worker's state.

``request_info`` is Celery's ``Request.info()`` (active, reserved, query_task);
``stats`` is ``Worker.stats()`` (pid, clock, uptime, total, pool, broker,
prefetch_count, rusage); ``queue_info`` is kombu's ``Queue.as_dict(recurse=True)``.
Flower and ``celery inspect`` read these field names.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from celeriac import serialization
from celeriac.brokers.base import Delivery
from celeriac.control.state import WorkerState
from celeriac.errors import CeleriacError
from celeriac.protocol import parse_task

_ACCEPT_ALL = frozenset({serialization.JSON, serialization.PICKLE})


def request_info(state: WorkerState, delivery: Delivery, acknowledged: bool,
                 safe: bool = False) -> dict[str, Any]:
    """Celery's ``Request.info()`` for a delivery this worker holds."""
    message = delivery.message
    headers = message.headers if isinstance(message.headers, dict) else {}
    args: Any = headers.get("argsrepr")
    kwargs: Any = headers.get("kwargsrepr")
    if not safe:
        try:
            call = parse_task(message, _ACCEPT_ALL)
            args, kwargs = call.args, call.kwargs
        except (CeleriacError, ValueError, TypeError):
            pass
    pid = os.getpid() if state.pool.name != "prefork" else None
    return {
        "id": message.task_id,
        "name": message.task_name,
        "args": args,
        "kwargs": kwargs,
        "type": message.task_name,
        "hostname": state.hostname,
        "time_start": None,
        "acknowledged": acknowledged,
        "delivery_info": {"exchange": message.exchange,
                          "routing_key": message.routing_key or delivery.queue,
                          "priority": message.priority,
                          "redelivered": delivery.redelivered},
        "worker_pid": pid,
    }


def active(state: WorkerState) -> list[Delivery]:
    return list(state.consumer.active.values())


def children_active(state: WorkerState) -> list[dict[str, Any]]:
    """``inspect active`` entries for the tasks consumer children run, read off the
    board (worker/pools/board.py): id, name, start time, pid, and the arguments as the
    message's argsrepr/kwargsrepr (text, cut to 384 bytes: the values stay in the
    child), as Celery gives them with ``safe=True``."""
    running = getattr(state.pool, "running", None)
    return _children_entries(state, running() if callable(running) else [], True)


def children_reserved(state: WorkerState) -> list[dict[str, Any]]:
    """``inspect reserved`` entries for what consumer children hold and do not run yet
    (no arguments: the board keeps only their ids and names)."""
    held = getattr(state.pool, "reserved", None)
    rows = [(task_id, name, None, None, None, None) for task_id, name, _ in held()] \
        if callable(held) else []
    return _children_entries(state, rows, False)


def _children_entries(state: WorkerState, rows: Any, running: bool
                      ) -> list[dict[str, Any]]:
    """Celery's ``Request.info()`` shape from (id, name, started, pid, args, kwargs)
    rows."""
    return [{"id": task_id, "name": name, "args": args, "kwargs": kwargs, "type": name,
             "hostname": state.hostname, "time_start": started, "acknowledged": running,
             "delivery_info": None, "worker_pid": pid}
            for task_id, name, started, pid, args, kwargs in rows]


def reserved(state: WorkerState) -> list[Delivery]:
    return [d for d in state.consumer.reserved.items if d is not None]


def _broker_info(url: str, options: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    vhost = unquote(parts.path[1:]) if parts.path.startswith("/") else parts.path
    return {
        "hostname": parts.hostname, "userid": parts.username, "virtual_host": vhost or "/",
        "port": port, "insist": False, "ssl": parts.scheme in ("amqps", "rediss"),
        "transport": parts.scheme, "connect_timeout": 4,
        "transport_options": {k: v for k, v in options.items()
                              if isinstance(v, (str, int, float, bool))},
        "login_method": None, "uri_prefix": None, "heartbeat": 120.0,
        "failover_strategy": "round-robin", "alternates": [],
    }


def _rusage() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {name: getattr(usage, f"ru_{name}") for name in (
        "utime", "stime", "maxrss", "ixrss", "idrss", "isrss", "minflt", "majflt", "nswap",
        "inblock", "oublock", "msgsnd", "msgrcv", "nsignals", "nvcsw", "nivcsw")}


def stats(state: WorkerState) -> dict[str, Any]:
    """Celery's ``inspect stats`` reply."""
    pool, conf = state.pool, state.app.conf
    child_pids = getattr(pool, "child_pids", None)
    processes = child_pids() if callable(child_pids) else [os.getpid()]
    executor = state.executor
    children_totals = getattr(pool, "totals", None)
    return {
        "total": children_totals() if callable(children_totals) else dict(executor.totals),
        "pid": os.getpid(),
        "clock": str(state.clock.value),
        "uptime": int(time.time() - state.started_at),
        "pool": {
            "implementation": f"celeriac.worker.pools:{pool.name}",
            "max-concurrency": pool.capacity,
            "processes": processes,
            "max-tasks-per-child": conf.worker_max_tasks_per_child,
            "put-guarded-by-semaphore": False,
            "timeouts": [executor.soft_time_limit_s or 0, executor.time_limit_s or 0],
        },
        "broker": _broker_info(state.app.broker_url, state.app.broker_options()),
        "prefetch_count": state.consumer.window,
        "rusage": _rusage(),
        "sw_ident": "celeriac",
    }


def queue_info(name: str) -> dict[str, Any]:
    """kombu's ``Queue.as_dict(recurse=True)`` for a queue consumed the Celery way."""
    return {
        "name": name,
        "exchange": {"name": name, "type": "direct", "arguments": None, "durable": True,
                     "passive": False, "auto_delete": False, "delivery_mode": None,
                     "no_declare": False},
        "routing_key": name, "queue_arguments": None, "binding_arguments": None,
        "consumer_arguments": None, "durable": True, "exclusive": False,
        "auto_delete": False, "no_ack": False, "alias": None, "bindings": [],
        "no_declare": None, "expires": None, "message_ttl": None, "max_length": None,
        "max_length_bytes": None, "max_priority": None,
    }


def jsonable(value: Any) -> Any:
    """A setting as JSON can carry it (Celery's ``jsonify``, roughly)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return repr(value)


def conf(state: WorkerState, with_defaults: bool = False) -> dict[str, Any]:
    """The worker's settings (only those set, unless with_defaults); the security key
    and passwords in URLs never leave the worker."""
    from celeriac.brokers.base import mask_url
    config = state.app.conf
    out = {}
    for name in config:
        if not with_defaults and not config.is_set(name):
            continue
        if name == "security_key" or name.startswith("_"):
            continue
        value = config[name]
        if isinstance(value, str) and "://" in value:
            value = mask_url(value)
        out[name] = jsonable(value)
    return out
