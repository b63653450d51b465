"""Celery's events: dicts with its field names, sent as JSON on the ``celeryev`` topic
exchange (routing key = the type with ``-`` as ``.``; a batch is a list sent with
``<group>.multi``), header ``hostname``. Receivers (Flower, ``celery events``) accept
either one event or a list."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import orjson

from celeriac import __version__
from celeriac.brokers.base import Exchange
from celeriac.protocol import Message

SW_IDENT = "celeriac"
SW_VER = __version__
SW_SYS = platform.system()


def event_exchange(name: str = "celeryev") -> Exchange:
    return Exchange(name, "topic", durable=True)


def utcoffset() -> int:
    """Hours west of UTC, as Celery computes it."""
    local = time.localtime()
    offset = time.altzone if local.tm_isdst > 0 else time.timezone
    return offset // 3600


def event(type_: str, hostname: str, clock: int, **fields: Any) -> dict[str, Any]:
    return {"hostname": hostname, "utcoffset": utcoffset(), "pid": os.getpid(),
            "clock": clock, **fields, "type": type_, "timestamp": time.time()}


def worker_fields(freq_s: float, active: int, processed: int) -> dict[str, Any]:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = [0.0, 0.0, 0.0]
    return {"freq": freq_s, "sw_ident": SW_IDENT, "sw_ver": SW_VER, "sw_sys": SW_SYS,
            "active": active, "processed": processed, "loadavg": load}


def routing_key(events: dict[str, Any] | list[dict[str, Any]]) -> str:
    if isinstance(events, list):
        group = str(events[0]["type"]).split("-", 1)[0] if events else "task"
        return f"{group}.multi"
    return str(events["type"]).replace("-", ".")


def event_message(events: dict[str, Any] | list[dict[str, Any]], hostname: str) -> Message:
    return raw_event_message(orjson.dumps(events, default=repr), routing_key(events),
                             hostname)


def raw_event_message(body: bytes, key: str, hostname: str) -> Message:
    """An event message whose JSON body (one event or a list) is encoded already."""
    return Message(headers={"hostname": hostname}, body=body,
                   properties={"delivery_mode": 1, "priority": 0},
                   content_type="application/json", content_encoding="utf-8",
                   routing_key=key)
