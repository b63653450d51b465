"""What the dashboard's buttons do; each returns (HTTP status, a sentence saying what
happened). Broker actions use the broker's administration API (``purge``,
``requeue_dead``, ``purge_dead``); revoke and rate limits are remote control
(``app.control``), sent with a reply wanted, and the sentence is the workers' replies
(``celeriac@h: new rate limit set successfully``) or that none answered."""

from __future__ import annotations

import re
from typing import Any

from celeriac.brokers.base import Broker
from celeriac.dashboard.remote import Remote

_RATE = re.compile(r"^\d+(\.\d+)?(/[smh])?$")
NAMES = ("revoke", "rate_limit", "requeue_dead", "purge_dead", "purge_queue")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 500:
        raise ValueError(f"{name!r} is required (a short string)")
    return value.strip()


async def run_action(name: str, params: dict[str, Any], app: Any, broker: Broker,
                     remote: Remote | None = None, expected: int = 0) -> tuple[int, str]:
    """``expected``: the workers known online; remote control stops waiting for
    replies once that many came (else it waits ``REPLY_S``)."""
    remote = remote or Remote(app)
    try:
        if name == "purge_queue":
            queue = _text(params, "queue")
            count = await broker.purge([queue])
            return 200, f"Purged {_plural(count, 'message')} from queue {queue}."
        if name == "purge_dead":
            count = await broker.purge_dead()
            return 200, f"Deleted {_plural(count, 'dead letter')}."
        if name == "requeue_dead":
            ids = params.get("ids")
            if ids is not None and not (isinstance(ids, list)
                                        and all(isinstance(i, str) for i in ids)):
                raise ValueError("'ids' must be a list of dead-letter ids, or absent (all)")
            count = await broker.requeue_dead(ids)
            return 200, f"Requeued {_plural(count, 'dead letter')}."
        if name == "revoke":
            return await _revoke(remote, _text(params, "task_id"),
                                 bool(params.get("terminate")), expected)
        if name == "rate_limit":
            return await _rate_limit(remote, _text(params, "task_name"),
                                     _text(params, "rate"), expected)
    except ValueError as exc:
        return 400, str(exc)
    except Exception as exc:
        return 502, f"{name} failed: {type(exc).__name__}: {exc}"
    return 404, f"no action named {name!r}"


#: how long revoke and rate limit wait for the workers' replies
REPLY_S = 3.0


def _replies(replies: Any) -> tuple[list[str], list[str]]:
    """Celery's ``[{hostname: {"ok": ...} | {"error": ...}}]`` -> (ok lines, error lines)."""
    good: list[str] = []
    bad: list[str] = []
    for reply in replies or ():
        if not isinstance(reply, dict):
            continue
        for hostname, body in reply.items():
            if isinstance(body, dict) and "error" in body:
                bad.append(f"{hostname}: {body['error']}")
            elif isinstance(body, dict) and "ok" in body:
                good.append(f"{hostname}: {body['ok']}")
            else:
                good.append(f"{hostname}: {body}")
    return sorted(good), sorted(bad)


def _wait(expected: int) -> dict[str, Any]:
    return {"reply": True, "timeout": REPLY_S, **({"limit": expected} if expected else {})}


async def _revoke(remote: Remote, task_id: str, terminate: bool, expected: int
                  ) -> tuple[int, str]:
    control = remote.control
    if control is None:
        return 501, ("Revoke is not available: this celeriac has no remote control "
                     "(app.control).")
    replies = await remote.call(control.revoke, task_id, terminate=terminate,
                                **_wait(expected))
    good, bad = _replies(replies)
    what = f"Revoke{' and terminate' if terminate else ''} of {task_id}"
    if not good and not bad:
        return 200, (f"{what} sent; no worker answered within {REPLY_S:g} s (the id is "
                     f"kept in the broker: a worker that gets the task refuses it).")
    return (200 if good else 502), f"{what}: " + "; ".join(good + bad) + "."


async def _rate_limit(remote: Remote, task_name: str, rate: str, expected: int
                      ) -> tuple[int, str]:
    if not _RATE.match(rate):
        return 400, f"rate {rate!r} is not like 10/s, 100/m or 1000/h"
    control = remote.control
    if control is None:
        return 501, ("Setting a rate limit is not available: this celeriac has no remote "
                     "control (app.control).")
    replies = await remote.call(control.rate_limit, task_name, rate, **_wait(expected))
    good, bad = _replies(replies)
    what = f"Rate limit of {task_name} to {rate}"
    if not good and not bad:
        return 504, f"{what}: no worker answered within {REPLY_S:g} s; nothing changed."
    return (200 if good else 502), f"{what}: " + "; ".join(good + bad) + "."
