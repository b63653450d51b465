"""Security: pickle only by name, failures rebuild only exception classes, message
signing with a shared key, and no password (or key) anywhere in a worker's output."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.backends.base import RemoteError, rebuild_exception
from celeriac.brokers.base import Broker
from celeriac.protocol import build_task_message
from celeriac.signing import SIGNATURE_HEADER, sign, verify
from celeriac.testing import drain, memory_app
from tests.chaos.harness import Scenario, tags, wait_until
from tests.chaos.test_restart import PrivateRedis

# -- helpers ---------------------------------------------------------------------------


def run(app: Celery, op: Any) -> Any:
    async def call() -> Any:
        broker = app._new_broker()
        await broker.connect()
        try:
            return await op(broker)
        finally:
            await broker.close()
    return asyncio.run(call())


def dead_reasons(app: Celery) -> dict[str, str]:
    letters = run(app, lambda b: b.dead_letters(1000))
    return {letter.message.task_id: letter.reason for letter in letters}


def publish_raw(app: Celery, *messages: Any) -> None:
    async def op(broker: Broker) -> None:
        await broker.publish(list(messages))
    run(app, op)


def recording_app(**settings: Any) -> tuple[Celery, list[Any]]:
    app = memory_app("sec", **settings)
    ran: list[Any] = []

    @app.task(name="sec.echo")
    def echo(x: Any) -> Any:
        ran.append(x)
        return x

    @app.task(name="sec.retry_once", bind=True, default_retry_delay=0)
    def retry_once(self: Any) -> str:
        ran.append(("try", self.request.retries))
        if self.request.retries == 0:
            raise self.retry()
        return "ok"
    return app, ran


# -- pickle ----------------------------------------------------------------------------


def test_pickle_is_dead_lettered_unless_accepted_by_name() -> None:
    app, ran = recording_app()
    pickled = build_task_message("sec.echo", ({"p": 1},), serializer="pickle")
    publish_raw(app, pickled)
    drain(app, raise_errors=False)
    assert ran == []
    reason = dead_reasons(app)[pickled.task_id]
    assert "ContentDisallowed" in reason and "pickle" in reason

    app, ran = recording_app(accept_content=["json", "pickle"])
    publish_raw(app, build_task_message("sec.echo", ({"p": 2},), serializer="pickle"))
    drain(app)
    assert ran == [{"p": 2}] and dead_reasons(app) == {}


# -- rebuilding failures -----------------------------------------------------------------


def test_failures_rebuild_only_real_exception_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: called.append(a))
    hostile = [("os", "system", ["echo pwned"]), ("subprocess", "Popen", [["true"]]),
               ("builtins", "eval", ["1+1"]), ("builtins", "print", ["hi"]),
               ("os", "path.join", ["a"]), ("celeriac.errors", "__class__", []),
               ("celeriac.signing", "sign", [None, None])]
    for module, name, args in hostile:
        exc = rebuild_exception({"exc_module": module, "exc_type": name, "exc_message": args})
        assert isinstance(exc, RemoteError), (module, name, exc)
    assert called == []
    sys.modules.pop("antigravity", None)
    exc = rebuild_exception({"exc_module": "antigravity", "exc_type": "Error",
                             "exc_message": []})
    assert isinstance(exc, RemoteError) and "antigravity" not in sys.modules  # not imported
    real = rebuild_exception({"exc_module": "builtins", "exc_type": "ValueError",
                              "exc_message": ["bad", 42]})
    assert type(real) is ValueError and real.args == ("bad", 42)
    twin = rebuild_exception({"exc_module": "celery.exceptions",
                              "exc_type": "TimeLimitExceeded", "exc_message": ["1s"]})
    assert type(twin).__name__ == "TimeLimitExceeded"


# -- signing ---------------------------------------------------------------------------

KEY = "k3y-for-tests-only"


def test_signature_covers_body_and_the_headers_that_matter() -> None:
    message = sign(build_task_message("sec.echo", (1,)), KEY)
    assert verify(message, KEY) is None
    assert "another key" in (verify(message, "other") or "")
    message.headers["redelivered"] = True  # brokers add this in transit: still valid
    assert verify(message, KEY) is None
    for change in ({"task": "sec.other"}, {"eta": "2030-01-01T00:00:00+00:00"},
                   {"retries": 9}, {"id": "x"}, {"timelimit": [None, 1]}):
        tampered = sign(build_task_message("sec.echo", (1,)), KEY)
        tampered.headers.update(change)
        assert verify(tampered, KEY) is not None, change
    body = sign(build_task_message("sec.echo", (1,)), KEY)
    body.body = body.body.replace(b"1", b"2")
    assert "changed" in (verify(body, KEY) or "")
    unsigned = build_task_message("sec.echo", (1,))
    assert "unsigned" in (verify(unsigned, KEY) or "")


def test_worker_with_a_key_dead_letters_unsigned_and_tampered_messages() -> None:
    app, ran = recording_app(security_key=KEY)
    good = app.send_task("sec.echo", ("signed",))
    retried = app.send_task("sec.retry_once")  # the retry is signed again by the worker
    unsigned = build_task_message("sec.echo", ("unsigned",))
    tampered = sign(build_task_message("sec.echo", ("tampered",)), KEY)
    tampered.body = tampered.body.replace(b"tampered", b"evil!!!!")
    foreign = sign(build_task_message("sec.echo", ("foreign",)), "not-the-key")
    publish_raw(app, unsigned, tampered, foreign)
    drain(app, raise_errors=False)
    assert sorted(map(str, ran)) == sorted(map(str, ["signed", ("try", 0), ("try", 1)]))
    assert good.get(timeout=5) == "signed" and retried.get(timeout=5) == "ok"
    reasons = dead_reasons(app)
    assert "unsigned" in reasons[unsigned.task_id]
    assert "bad signature" in reasons[tampered.task_id]
    assert "bad signature" in reasons[foreign.task_id]
    assert all(KEY not in reason for reason in reasons.values())
    message, _ = app._build_message("sec.echo", (1,), {}, None, {})
    assert message.headers[SIGNATURE_HEADER].startswith("v1:")


# -- passwords ---------------------------------------------------------------------------

PASSWORD = "pw-Zq81-never-shown"


def test_no_password_or_key_in_a_worker_log(tmp_path: Path, redis_server_bin: str) -> None:
    server = PrivateRedis(redis_server_bin, tmp_path)
    server.start()
    subprocess.run(["redis-cli", "-p", str(server.port), "CONFIG", "SET", "requirepass",
                    PASSWORD], check=True, capture_output=True)
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    s = Scenario(tmp_path, "redis", url, env={
        "CELERIAC_RESULT_BACKEND": url, "CHAOS_SECURITY_KEY": KEY,
        "CHAOS_SOCKET_TIMEOUT_S": "2", "CHAOS_RETRY_TIMEOUT_S": "3"})
    try:
        worker = s.worker("-P", "threads", "-c", "2", "-l", "debug")
        client = Celery("chaos", broker=url, set_as_current=False)
        client.conf.security_key = KEY
        sent = tags("pw", 3)
        for tag in sent:
            client.send_task("chaos.work", (tag, 0.0), queue=s.queue)
        s.wait_done(sent, timeout_s=30)
        publish_raw(client, build_task_message("chaos.work", ("evil",), queue=s.queue))
        wait_until(lambda: "unsigned message" in worker.log, 20, "the unsigned dead letter")
        server.kill()  # connection errors and retries get logged now
        time.sleep(4)
        server.start()
        subprocess.run(["redis-cli", "-p", str(server.port), "CONFIG", "SET", "requirepass",
                        "another-" + PASSWORD], check=True, capture_output=True)
        time.sleep(2)  # reconnects fail: authentication errors get logged too
        worker.stop(timeout_s=30)
        bad = s.worker("-P", "solo", ready=False)  # cannot even connect
        bad.proc.wait(30)
        logs = worker.log + bad.log
        assert "lost the connection" in logs and "**@127.0.0.1" in logs
        assert PASSWORD not in logs
        assert KEY not in logs
    finally:
        s.close()
        server.kill()
