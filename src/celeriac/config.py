"""Every setting in one table: Celery's lowercase names, defaults, types and a line of doc.

Where a value comes from, strongest first:
1. the environment: ``CELERIAC_<NAME>`` for any setting (``CELERIAC_BROKER_URL``), so the
   same code runs against another broker without edits (``CELERY_BROKER_URL`` and
   ``CELERY_RESULT_BACKEND`` are read too, as Celery does);
2. what the program sets: ``Celery(broker=...)``, ``conf.x = ...``, ``conf.update()``,
   ``config_from_object()``;
3. the defaults below.
Unknown names are kept (Celery allows custom settings) but warn, naming the closest
known setting, because a typo in a setting name otherwise fails silently. Settings
celeriac accepts but does not act on are in ``UNSUPPORTED`` with the reason: set to
anything but their default, they warn once per process (UnsupportedSetting), since a
setting accepted and ignored would be worse than an unknown one.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib
import json
import os
import types
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celeriac.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Setting:
    default: Any
    type: type | tuple[type, ...]
    doc: str


_LIST = (list, tuple)
_NUM = (int, float, dt.timedelta)
_OPT_NUM = (int, float, dt.timedelta, type(None))
_OPT_STR = (str, type(None))

SETTINGS: dict[str, Setting] = {
    # broker and results
    "broker_url": Setting(None, _OPT_STR, "Broker URL; none: the embedded SQLite file."),
    "broker_transport_options": Setting({}, dict, "Transport options (visibility_timeout…)."),
    "broker_connection_timeout": Setting(4.0, _NUM, "Seconds to wait for a connection."),
    "broker_connection_retry": Setting(True, bool, "Reconnect when the connection is lost."),
    "broker_connection_retry_on_startup": Setting(True, bool, "Retry the first connect."),
    "broker_connection_max_retries": Setting(100, (int, type(None)), "Reconnects, then fail."),
    "broker_heartbeat": Setting(120.0, _OPT_NUM, "AMQP heartbeat in seconds."),
    "broker_pool_limit": Setting(10, (int, type(None)), "Producer connections kept open."),
    "broker_delay_store": Setting(
        None, (bool, type(None)),
        "Where sends with a countdown/eta go. None: the broker's delay store where every "
        "worker gets them when due (RabbitMQ, SQLite, memory), else (Redis) the queue with "
        "Celery's eta header, parked by the celeriac worker that receives them. True: the "
        "delay store always (a celeriac-only fleet). False: the queue, retries too."),
    "result_backend": Setting(None, _OPT_STR,
                              "Result URL; none: the broker's file on SQLite/memory."),
    "result_backend_transport_options": Setting({}, dict, "Result backend options."),
    "result_expires": Setting(86400.0, _OPT_NUM, "Seconds results are kept (1 day)."),
    "result_serializer": Setting("json", str, "Serializer for results: json or pickle."),
    "result_chord_join_timeout": Setting(3.0, _NUM, "Seconds a chord's join may take; "
                                                    "its send claim lasts twice that."),
    "result_chord_expires": Setting(None, _OPT_NUM, "Seconds a chord's join state is "
                                                    "kept; none: result_expires."),
    "result_accept_content": Setting(None, (list, tuple, type(None)),
                                     "Result content types read; none: accept_content."),
    "result_extended": Setting(False, bool, "Store name, args, kwargs with results."),
    "result_persistent": Setting(None, (bool, type(None)), "Durable rpc result messages."),
    # tasks
    "task_default_queue": Setting("celery", str, "Queue of tasks with no route."),
    "task_default_exchange": Setting("", str, "Exchange of tasks with no route."),
    "task_default_exchange_type": Setting("direct", str, "Type of the default exchange."),
    "task_default_routing_key": Setting(None, _OPT_STR, "Routing key; none: the queue name."),
    "task_default_priority": Setting(None, (int, type(None)), "Priority of tasks by default."),
    "task_default_rate_limit": Setting(None, _OPT_STR, "Rate limit of every task."),
    "task_queues": Setting(None, (list, tuple, dict, type(None)), "Queue declarations."),
    "task_routes": Setting(None, (dict, list, tuple, type(None)), "Name/glob -> options."),
    "task_create_missing_queues": Setting(True, bool, "Create queues named in routes."),
    "task_serializer": Setting("json", str, "Serializer for task messages: json or pickle."),
    "accept_content": Setting(["json"], _LIST, "Content types a worker accepts."),
    "task_compression": Setting(None, _OPT_STR, "Body compression (zlib)."),
    "task_acks_late": Setting(True, bool,
                              "Ack after the task ran (celeriac default; Celery's is False)."),
    "task_acks_on_failure_or_timeout": Setting(True, bool, "Ack failed tasks too."),
    "task_reject_on_worker_lost": Setting(True, bool, "Redeliver when a child dies."),
    "task_always_eager": Setting(False, bool, "Run tasks inline instead of sending them."),
    "task_eager_propagates": Setting(False, bool, "Eager tasks re-raise their errors."),
    "task_store_eager_result": Setting(False, bool, "Eager tasks store their results."),
    "task_ignore_result": Setting(False, bool, "Do not store results by default."),
    "task_store_errors_even_if_ignored": Setting(False, bool, "Store failures anyway."),
    "task_track_started": Setting(False, bool, "Store STARTED when a task starts."),
    "task_time_limit": Setting(None, _OPT_NUM, "Hard time limit (seconds)."),
    "task_soft_time_limit": Setting(None, _OPT_NUM, "Soft time limit (seconds)."),
    "task_annotations": Setting(None, (dict, list, type(None)), "Per-task option overrides."),
    "task_publish_retry": Setting(True, bool, "Retry publishing on connection errors; "
                                  "False: one attempt, then raise."),
    "task_publish_retry_policy": Setting(
        None, (dict, type(None)),
        "Celery's policy (max_retries, interval_start, interval_step, interval_max): a "
        "send keeps reconnecting for as long as its pauses add up to, then raises; "
        "none: the broker's retry_timeout (30 s) (celeriac/publish_retry.py)."),
    "task_send_sent_event": Setting(False, bool, "Send task-sent events."),
    "task_protocol": Setting(2, int, "Message protocol (only 2)."),
    "task_inherit_parent_priority": Setting(False, bool, "Children inherit priority."),
    # worker
    "worker_concurrency": Setting(None, (int, type(None)), "Pool size; none: CPU count."),
    "worker_pool": Setting("prefork", str, "solo, threads, asyncio or prefork."),
    "worker_prefetch_multiplier": Setting(4, int, "Messages prefetched per pool slot."),
    "worker_max_tasks_per_child": Setting(None, (int, type(None)), "Recycle children after N."),
    "worker_max_memory_per_child": Setting(None, (int, type(None)), "KiB before recycling."),
    "worker_consumer_children": Setting(True, bool, "prefork: each child consumes from "
                                        "the broker itself (pools/consumer_children.py); "
                                        "False: the parent does all broker I/O."),
    "worker_disable_rate_limits": Setting(False, bool, "Ignore rate limits."),
    "worker_send_task_events": Setting(False, bool, "Send task events (-E)."),
    "worker_metrics_interval": Setting(5.0, _NUM, "Seconds between the queue reads of "
                                       "--metrics-port (celeriac_queue_length, ...)."),
    "dashboard_max_tasks": Setting(10_000, int, "Tasks the dashboard keeps (oldest "
                                   "dropped first)."),
    "worker_hijack_root_logger": Setting(True, bool, "Configure the root logger."),
    "worker_log_format": Setting(
        "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s", str, "Log line format."),
    "worker_task_log_format": Setting(
        "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s",
        str, "Log format inside tasks."),
    "worker_redirect_stdouts": Setting(True, bool, "Send print() to the log."),
    "worker_redirect_stdouts_level": Setting("WARNING", str, "Level of redirected output."),
    "worker_shutdown_timeout": Setting(60.0, _NUM,
                                       "Seconds a warm shutdown waits for running tasks."),
    "worker_lost_wait": Setting(10.0, _NUM, "Seconds to wait for a lost child's result."),
    "worker_enable_remote_control": Setting(True, bool, "Answer remote control."),
    "worker_revoked_ttl": Setting(None, _OPT_NUM,
                                  "Seconds a revoked id is refused; none: result_expires."),
    "worker_heartbeat_interval": Setting(2.0, _NUM, "Seconds between worker-heartbeat events."),
    "control_exchange": Setting("celery", str, "Remote control namespace (celery.pidbox)."),
    "event_exchange": Setting("celeryev", str, "Exchange events are sent to."),
    # app
    "imports": Setting((), _LIST, "Modules imported when the worker starts."),
    "include": Setting((), _LIST, "Same as imports."),
    "timezone": Setting("UTC", str, "Time zone of naive datetimes."),
    "enable_utc": Setting(True, bool, "Dates in messages are UTC."),
    "beat_schedule": Setting({}, dict, "Periodic tasks: name -> {task, schedule, args, "
                             "kwargs, options, relative} (celeriac beat, worker -B)."),
    "beat_max_loop_interval": Setting(300.0, _NUM, "Longest beat sleeps between checks."),
    "beat_leader_timeout": Setting(
        5.0, _NUM, "Seconds a beat's leadership outlives its last renewal: when the "
        "sending beat dies, another sends within about this long (renewed every third)."),
    "beat_cron_starting_deadline": Setting(
        None, _OPT_NUM, "Seconds: a crontab run missed by more is skipped, not sent late."),
    "beat_scheduler": Setting("celeriac.beat:Scheduler", str,
                              "Accepted; celeriac keeps beat's state in the broker."),
    "beat_schedule_filename": Setting("celerybeat-schedule", str,
                                      "Accepted; beat's state lives in the broker."),
    "beat_sync_every": Setting(0, int, "Accepted; every run's state is written at once."),
    "security_key": Setting(None, _OPT_STR, "Shared key for message signing."),
}

#: settings accepted and not acted on, and why (tests/unit/test_settings_read.py checks
#: that every other setting is read somewhere, and that these are not)
UNSUPPORTED: dict[str, str] = {
    "broker_connection_retry": "celeriac always reconnects a lost connection",
    "broker_heartbeat": "the AMQP connection uses the heartbeat the server proposes",
    "broker_pool_limit": "there is no connection pool to size: one broker connection "
                         "per process and event loop, plus one for sync sends",
    "result_persistent": "rpc:// result messages are not made durable",
    "task_default_exchange_type": "a queue named only by name gets a direct exchange; "
                                  "declare other types in task_queues",
    "task_default_routing_key": "a task's routing key is its queue's name (or "
                                "apply_async(exchange=, routing_key=))",
    "task_protocol": "only protocol 2 (Celery's default since 4.0) is spoken",
    "worker_lost_wait": "a task whose prefork child died is reported at once",
    "beat_scheduler": "one scheduler, whose state lives in the broker (docs/beat.md)",
    "beat_schedule_filename": "beat's state lives in the broker, not in a local file",
    "beat_sync_every": "every run's state is written to the broker at once",
}
_warned_unsupported: set[str] = set()


def _warn_unsupported(name: str, value: Any) -> None:
    """Warn once per process when an UNSUPPORTED setting is set to a non-default value."""
    if name in _warned_unsupported or value == SETTINGS[name].default:
        return
    _warned_unsupported.add(name)
    from celeriac.errors import UnsupportedSetting

    warnings.warn(f"setting {name}={value!r} has no effect in celeriac: "
                  f"{UNSUPPORTED[name]}", UnsupportedSetting, stacklevel=4)


#: Celery's old upper-case names that do not follow the CELERY_<new name> rule
_OLD_NAMES = {
    "BROKER_URL": "broker_url",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_RESULT_SERIALIZER": "result_serializer",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERY_IMPORTS": "imports",
    "CELERY_TIMEZONE": "timezone",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERYBEAT_MAX_LOOP_INTERVAL": "beat_max_loop_interval",
    "CELERYBEAT_SCHEDULER": "beat_scheduler",
    "CELERYBEAT_SCHEDULE_FILENAME": "beat_schedule_filename",
    "CELERYBEAT_SYNC_EVERY": "beat_sync_every",
}

_ENV_PREFIX = "CELERIAC_"


def normalize_name(key: str, namespace: str | None = None) -> str | None:
    """Map a name from a config source to a setting name; None means 'not a setting'."""
    if key.startswith("_"):
        return None
    if namespace:
        prefix = namespace.rstrip("_") + "_"
        if not key.startswith(prefix):
            return None
        key = key[len(prefix):]
    if key in SETTINGS:
        return key
    if key in _OLD_NAMES:
        return _OLD_NAMES[key]
    lowered = key.lower()
    if lowered in SETTINGS:
        return lowered
    if lowered.startswith("celery_") and lowered[len("celery_"):] in SETTINGS:
        return lowered[len("celery_"):]
    return key if key.islower() or namespace else None


def closest_setting(name: str) -> str | None:
    match = difflib.get_close_matches(name, SETTINGS.keys(), n=1, cutoff=0.6)
    return match[0] if match else None


def _warn_unknown(name: str) -> None:
    guess = closest_setting(name)
    hint = f"; did you mean {guess!r}?" if guess else ""
    warnings.warn(f"unknown setting {name!r}{hint}", UserWarning, stacklevel=4)


def parse_env_value(name: str, raw: str) -> Any:
    """Turn an environment string into the setting's type."""
    kind = SETTINGS[name].type
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if raw.strip().lower() in ("none", "null") and type(None) in kinds:
        return None
    if bool in kinds:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if any(k in kinds for k in (int, float)):
        try:
            number = float(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{_ENV_PREFIX}{name.upper()}={raw!r}: not a number") from exc
        return int(number) if int in kinds and number.is_integer() else number
    if any(k in kinds for k in (list, tuple, dict)):
        if raw.lstrip().startswith(("[", "{")):
            return json.loads(raw)
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _read_environment() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for celery_name, setting in (("CELERY_BROKER_URL", "broker_url"),
                                 ("CELERY_RESULT_BACKEND", "result_backend")):
        if os.environ.get(celery_name):
            found[setting] = os.environ[celery_name]
    for name in SETTINGS:
        raw = os.environ.get(_ENV_PREFIX + name.upper())
        if raw is not None:
            found[name] = parse_env_value(name, raw)
    return found


def to_seconds(value: Any) -> float | None:
    """Settings accept seconds or a timedelta; code reads seconds."""
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


class Config(MutableMapping[str, Any]):
    """``app.conf``: settings as attributes and items, with env overrides on top."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_env", _read_environment())
        object.__setattr__(self, "_revision", 0)
        #: the copy of a dict/list default handed out, so in-place changes stick
        #: (``app.conf.beat_schedule.update(...)`` on a fresh app, as Celery allows)
        object.__setattr__(self, "_mutable_defaults", {})

    @property
    def revision(self) -> int:
        """Counts assignments and deletions: lets hot paths cache what they read."""
        return int(self._revision)

    # attribute access -------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no setting {name!r}" + (f"; did you mean {closest_setting(name)!r}?"
                                          if closest_setting(name) else "")
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    # mapping ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        if name in self._env:
            return self._env[name]
        if name in self._values:
            return self._values[name]
        if name in SETTINGS:
            default = SETTINGS[name].default
            if isinstance(default, (dict, list)):
                return self._mutable_defaults.setdefault(name, default.copy())
            return default
        raise KeyError(name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in SETTINGS:
            _warn_unknown(name)
        elif name in UNSUPPORTED:
            _warn_unsupported(name, value)
        self._values[name] = value
        self._mutable_defaults.pop(name, None)
        object.__setattr__(self, "_revision", self._revision + 1)

    def __delitem__(self, name: str) -> None:
        del self._values[name]
        self._mutable_defaults.pop(name, None)
        object.__setattr__(self, "_revision", self._revision + 1)

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(SETTINGS), **self._values, **self._env})

    def __len__(self) -> int:
        return len(set(SETTINGS) | set(self._values) | set(self._env))

    def __repr__(self) -> str:
        return f"<Config: {len(self._values)} set, {len(self._env)} from the environment>"

    # loading ------------------------------------------------------------------------
    def from_mapping(self, source: Mapping[str, Any], namespace: str | None = None) -> None:
        for key, value in source.items():
            name = normalize_name(key, namespace)
            if name is not None:
                self[name] = value

    def from_object(self, obj: Any, namespace: str | None = None) -> None:
        """Load a module, a 'module' / 'module:attr' path, a class or an object."""
        if isinstance(obj, str):
            obj = import_object(obj)
        if isinstance(obj, Mapping):
            self.from_mapping(obj, namespace)
            return
        values = {
            key: getattr(obj, key)
            for key in dir(obj)
            if not key.startswith("_")
            and not isinstance(getattr(obj, key), (types.ModuleType, types.FunctionType, type))
        }
        self.from_mapping(values, namespace)

    def is_set(self, name: str) -> bool:
        """True when the program or the environment gave this setting a value."""
        return name in self._env or name in self._values

    def seconds(self, name: str) -> float | None:
        return to_seconds(self[name])


def import_object(path: str) -> Any:
    """'pkg.mod' -> module; 'pkg.mod:attr' or 'pkg.mod.attr' -> the attribute."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if attr or "." not in module_name or exc.name != module_name:
            raise
        module_name, _, attr = module_name.rpartition(".")
        module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def default_sqlite_dir() -> Path:
    """The folder of the embedded stores celeriac places itself: ``$CELERIAC_HOME``, else
    ``$XDG_DATA_HOME/celeriac`` or ``~/.local/share/celeriac``. Private: see
    ``celeriac.brokers.sqlite.files``."""
    base = os.environ.get("CELERIAC_HOME")
    if not base:
        xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
        base = os.path.join(xdg, "celeriac")
    return Path(base)


def default_sqlite_path(app_name: str) -> Path:
    """Where the embedded broker lives when none is configured.

    Keyed by the app's name so a worker and a client started from different folders of
    one project find the same file: ``<default_sqlite_dir()>/<app name>.sqlite3``.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in app_name) or "default"
    return default_sqlite_dir() / f"{safe}.sqlite3"
