"""examples/fastapi_app through httpx's ASGI transport, with a real worker started by
the CLI: endpoints that ``await task.adelay()`` and ``await result.aget()``, a failure
reported as the task's exception, and the connections closed by the app's lifespan."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.services import need_redis

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")


@pytest.fixture(params=["sqlite", "redis"])
def broker_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The example's broker and backend: a SQLite file, or Redis db 12 under a prefix."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/broker.db"
        yield {"CELERIAC_BROKER_URL": url, "CELERIAC_RESULT_BACKEND": url}
        return
    need_redis()
    import redis

    prefix = f"itest-{uuid.uuid4().hex[:8]}:"
    options = f'{{"global_keyprefix": "{prefix}"}}'
    url = "redis://127.0.0.1:6379/12"
    yield {"CELERIAC_BROKER_URL": url, "CELERIAC_RESULT_BACKEND": url,
           "CELERIAC_BROKER_TRANSPORT_OPTIONS": options,
           "CELERIAC_RESULT_BACKEND_TRANSPORT_OPTIONS": options}
    raw = redis.Redis.from_url(url)
    keys = list(raw.scan_iter(f"{prefix}*"))
    if keys:
        raw.delete(*keys)
    raw.close()


@pytest.fixture
def example(broker_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[ModuleType]:
    """A worker for the example's tasks, and the example's FastAPI module imported with
    the same settings."""
    for key, value in broker_env.items():
        monkeypatch.setenv(key, value)
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "tasks", "worker", "-l", "info", "-P",
         "threads", "-c", "2"], cwd=EXAMPLE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log, stderr=subprocess.STDOUT)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in ("main", "tasks"):
        sys.modules.pop(name, None)
    try:
        yield importlib.import_module("main")
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
        for name in ("main", "tasks"):
            sys.modules.pop(name, None)


async def call_app(module: ModuleType) -> dict[str, Any]:
    """Every endpoint once, inside the app's lifespan (startup, requests, shutdown)."""
    app = module.app
    out: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as http:
            out["add_wait"] = (await http.post("/add/wait", json={"x": 40, "y": 2})).json()
            queued = (await http.post("/add", json={"x": 1, "y": 2})).json()
            out["status"] = (await http.get(f"/tasks/{queued['task_id']}",
                                            params={"wait": 20})).json()
            out["words"] = (await http.post("/words", json={"text": "a b a"})).json()
            failed = (await http.post("/fail", json={"text": "boom"})).json()
            out["failed"] = (await http.get(f"/tasks/{failed['task_id']}",
                                            params={"wait": 20})).json()
            pending = module.celery_app.AsyncResult(str(uuid.uuid4()))
            out["timeout"] = await http.get(f"/tasks/{pending.id}", params={"wait": 0.3})
            out["bad_body"] = await http.post("/add", json={"x": "one"})
        clients = module.celery_app.clients
        loop = asyncio.get_running_loop()
        out["open_before_shutdown"] = loop in clients._by_loop
    out["open_after_shutdown"] = asyncio.get_running_loop() in clients._by_loop
    return out


def test_fastapi_endpoints_with_a_real_worker(example: ModuleType) -> None:
    out = asyncio.run(call_app(example))
    assert out["add_wait"]["result"] == 42
    assert out["status"]["state"] == "SUCCESS" and out["status"]["result"] == 3
    assert out["words"] == {"counts": {"a": 2, "b": 1}}
    assert out["failed"]["state"] == "FAILURE"
    assert out["failed"]["result"] == "ValueError: boom"
    assert out["timeout"].status_code == 504
    assert "still PENDING after 0.3s" in out["timeout"].json()["detail"]
    assert out["bad_body"].status_code == 422
    assert out["open_before_shutdown"] is True   # adelay/aget connected on this loop
    assert out["open_after_shutdown"] is False   # the lifespan's aclose() closed them
