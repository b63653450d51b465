"""Celery's signals from a real worker on every pool: sent at the right moments, in the
right process, in Celery's order; a receiver that raises breaks nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.errors import TimeoutError as ResultTimeout

HERE = Path(__file__).resolve().parent


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork", "asyncio"])
def test_signals_on_every_pool(tmp_path: Path, pool: str) -> None:
    broker = f"sqlite:///{tmp_path}/b.db"
    log = tmp_path / "signals.jsonl"
    env = {**os.environ, "SIGNAL_BROKER": broker, "SIGNAL_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE)])}
    out = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "signalapp", "worker", "-l", "info",
         "-P", pool, "-c", "2", "-Q", "signals"], cwd=HERE, env=env, stdout=out,
        stderr=subprocess.STDOUT)
    client = Celery("signalapp", broker=broker, backend=broker, set_as_current=False)
    client.conf.task_default_queue = "signals"
    try:
        assert client.send_task("sig.ok", (21,)).get(timeout=30) == 42
        with pytest.raises(ValueError):
            client.send_task("sig.fails").get(timeout=30)
        assert client.send_task("sig.retries").get(timeout=30) == "done"
        client.send_task("sig.nobody")
        deadline = time.monotonic() + 10
        while not any(r["signal"] == "task_unknown" for r in _records(log)):
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)
    except ResultTimeout:
        raise AssertionError((tmp_path / "worker.log").read_text()) from None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        out.close()
    records = _records(log)
    main = worker.pid
    names = [r["signal"] for r in records]
    text = (tmp_path / "worker.log").read_text()
    assert "a receiver that raises must not break the task" in text  # logged, went on

    def first(name: str) -> int:
        return names.index(name)

    # the worker's life, in the main process, in Celery's order
    life = ["celeryd_init", "import_modules", "worker_init", "celeryd_after_setup",
            "worker_ready", "worker_shutting_down", "worker_shutdown"]
    assert [first(n) for n in life] == sorted(first(n) for n in life), names
    assert all(r["pid"] == main for r in records if r["signal"] in life)
    # received (and unknown) where the task's message is consumed: the main process,
    # or with prefork each child (it consumes for itself; Celery's parent does that)
    consumers = {r["pid"] for r in records if r["signal"] == "worker_process_init"} \
        if pool == "prefork" else {main}
    assert consumers and all(r["pid"] in consumers for r in records
                             if r["signal"] in ("task_received", "task_unknown"))

    # each task: received (consumer) -> prerun -> success|failure|retry -> postrun (runner)
    def for_task(name: str) -> list[dict[str, Any]]:
        return [r for r in records if r["task"] == name]

    ok = [r["signal"] for r in for_task("sig.ok")]
    assert ok == ["task_received", "task_prerun", "task_success", "task_postrun"], ok
    assert [r["result"] for r in for_task("sig.ok") if r["signal"] == "task_success"] == ["42"]
    assert [r["signal"] for r in for_task("sig.fails")] == [
        "task_received", "task_prerun", "task_failure", "task_postrun"]
    assert [r["signal"] for r in for_task("sig.retries")] == [
        "task_received", "task_prerun", "task_retry", "task_postrun",
        "task_received", "task_prerun", "task_success", "task_postrun"]
    runners = {r["pid"] for r in records if r["signal"] in ("task_prerun", "task_postrun")}
    if pool == "prefork":  # the children run tasks and say so; the parent does not
        children = {r["pid"] for r in records if r["signal"] == "worker_process_init"}
        assert children and main not in children and runners <= children
        assert {r["pid"] for r in records if r["signal"] == "worker_process_shutdown"}
    else:
        assert runners == {main} and "worker_process_init" not in names
