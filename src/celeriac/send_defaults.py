"""The settings every send reads, taken from ``app.conf`` once per configuration change.

A ``.delay()`` used to read ten settings through ``Config`` (environment first, then the
program's values, then defaults): about 10 us of a ~40 us call. ``SendDefaults`` holds
them as plain attributes; the app rebuilds it when ``conf.revision`` moves (any
assignment or deletion), so a setting changed at run time applies to the next send.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from celeriac.config import Config, to_seconds
from celeriac.publish_retry import window_for
from celeriac.queues import queue_names


@dataclass(frozen=True, slots=True)
class SendDefaults:
    revision: int
    always_eager: bool
    routes: Any
    queue: str
    exchange: str
    serializer: str
    time_limit: float | None
    soft_time_limit: float | None
    priority: int | None
    ignore_result: bool
    security_key: Any
    rpc_results: bool
    result_expires: float | None
    #: countdown/eta sends go to the broker's delay store (else: the queue, eta header)
    delay_store: bool
    #: the queues a send may name, when task_create_missing_queues is off (else None)
    declared_queues: frozenset[str] | None
    #: task_compression (kombu's codec name) or None
    compression: str | None
    #: the time zone of naive eta/expires datetimes (timezone, enable_utc)
    naive_tz: dt.tzinfo
    #: tasks sent from a task get its priority when they name none
    inherit_priority: bool
    #: task_publish_retry and task_publish_retry_policy (publish_retry.window_for)
    publish_retry: bool
    publish_retry_policy: Any
    #: seconds a send keeps trying to reach the broker; None: the broker's retry_timeout
    publish_window_s: float | None
    #: task_send_sent_event: a task-sent event per published task
    sent_event: bool

    @classmethod
    def read(cls, conf: Config, shared_delay_store: bool) -> SendDefaults:
        """``shared_delay_store``: the broker's ``Broker.shared_delay_store``."""
        chosen = conf.broker_delay_store
        return cls(
            revision=conf.revision,
            always_eager=bool(conf.task_always_eager),
            routes=conf.task_routes,
            queue=conf.task_default_queue,
            exchange=conf.task_default_exchange or "",
            serializer=conf.task_serializer,
            time_limit=to_seconds(conf.task_time_limit),
            soft_time_limit=to_seconds(conf.task_soft_time_limit),
            priority=conf.task_default_priority,
            ignore_result=bool(conf.task_ignore_result),
            security_key=conf.security_key,
            rpc_results=str(conf.result_backend or "").startswith("rpc://"),
            result_expires=conf.seconds("result_expires"),
            delay_store=shared_delay_store if chosen is None else bool(chosen),
            declared_queues=None if conf.task_create_missing_queues else frozenset(
                queue_names(conf.task_queues) or [conf.task_default_queue]),
            compression=conf.task_compression or None,
            naive_tz=naive_timezone(conf),
            inherit_priority=bool(conf.task_inherit_parent_priority),
            publish_retry=bool(conf.task_publish_retry),
            publish_retry_policy=conf.task_publish_retry_policy,
            publish_window_s=window_for(conf.task_publish_retry,
                                        conf.task_publish_retry_policy),
            sent_event=bool(conf.task_send_sent_event),
        )


def naive_timezone(conf: Config) -> dt.tzinfo:
    """Where a naive datetime is: ``timezone`` when set, else UTC with ``enable_utc``
    (the default) or the machine's local time without it, as Celery's app.timezone."""
    if conf.is_set("timezone") and conf.timezone:
        from zoneinfo import ZoneInfo

        return ZoneInfo(str(conf.timezone))
    if conf.enable_utc:
        return dt.UTC
    local = dt.datetime.now().astimezone().tzinfo
    return local or dt.UTC
