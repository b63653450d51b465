"""The same tasks, written once, registered on a real Celery app or a celeriac app.

``celery_side.py`` and ``celeriac_side.py`` call ``register(app)`` on their app; tests
send by name, so either side's worker can run any message. Executions are recorded in
a Redis list named by INTEROP_RECORD, so a test can count them across processes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

SIDE = os.environ.get("INTEROP_SIDE", "?")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["INTEROP_RECORD_URL"])


def record(line: str) -> None:
    _redis().rpush(os.environ["INTEROP_RECORD"], f"{line} {SIDE}")


def register(app: Any) -> None:
    @app.task(name="interop.echo", bind=True)
    def echo(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        record(f"echo {self.request.id}")
        return {"args": list(args), "kwargs": kwargs,
                "types": [type(a).__name__ for a in args],
                "retries": self.request.retries, "side": SIDE,
                "trace": (getattr(self.request, "headers", None) or {}).get("x-trace")
                or getattr(self.request, "x-trace", None)}

    @app.task(name="interop.unjsonable")
    def unjsonable(x: int) -> Any:
        record(f"unjsonable {x}")  # only pickle carries these (result_serializer)
        return {"complex": complex(x, 1), "frozen": frozenset({x}), "range": range(x)}

    @app.task(name="interop.pickled_failure")
    def pickled_failure(x: int) -> Any:
        raise KeyError(f"missing {x}")

    @app.task(name="interop.add")
    def add(x: int, y: int) -> int:
        record(f"add {x} {y}")
        return x + y

    @app.task(name="interop.boom")
    def boom() -> None:
        raise KeyError("nope")

    @app.task(name="interop.note", ignore_result=True)
    def note(tag: str) -> None:
        record(f"note {tag}")

    @app.task(name="interop.slow_note", ignore_result=True)
    def slow_note(tag: str, seconds: float) -> None:
        time.sleep(seconds)
        record(f"note {tag}")

    @app.task(name="interop.errback")
    def errback(*args: Any) -> None:
        record(f"errback {args[0] if args else '?'}")

    @app.task(name="interop.flaky", bind=True)
    def flaky(self: Any, tag: str, fail_times: int, pause: float = 0.0) -> dict[str, Any]:
        record(f"flaky {tag} {self.request.retries}")
        time.sleep(pause)  # lets a test stop the worker while this runs
        if self.request.retries < fail_times:
            raise self.retry(exc=RuntimeError("flaky"), countdown=1, max_retries=5)
        return {"retries": self.request.retries, "side": SIDE}

    _register_canvas_tasks(app)

    @app.task(name="interop.unencodable")
    def unencodable() -> object:
        record("unencodable")
        return object()  # JSON cannot carry it: both sides store EncodeError


def _register_canvas_tasks(app: Any) -> None:
    @app.task(name="interop.tsum")
    def tsum(values: list[Any]) -> int:
        record(f"tsum {sorted(values)}")
        return sum(values)

    @app.task(name="interop.fail_on", bind=True)
    def fail_on(self: Any, x: int, bad: int) -> int:
        record(f"part {x}")
        if x == bad:
            raise ValueError(f"part {x} fails")
        return x
