"""celeriac shell, report and list bindings, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.integration.conftest import HERE, Harness
from tests.services import need_rabbitmq, need_redis


def run(env: dict[str, str], *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celeriac", "-A", "taskapp", *args], cwd=HERE,
                          env=env, capture_output=True, text=True, input=stdin, timeout=60)


def test_shell_preloads_app_tasks_and_canvas_and_sends_a_task(sqlite_harness: Harness
                                                              ) -> None:
    h = sqlite_harness
    worker = h.worker("-P", "solo")
    done = run(h.env(), "shell", "--python", stdin=(
        "print('names', app.main, celery is app, add.name, whoami.name, Task.__name__)\n"
        "print('canvas', type(group(add.s(1, 1))).__name__, type(chain(add.s(1, 1), "
        "add.s(2))).__name__)\n"
        "print('sum', add.delay(40, 2).get(timeout=20))\n"))
    worker.stop()
    assert done.returncode == 0, done.stderr
    assert "names itest True add whoami Task" in done.stdout
    assert "canvas group chain" in done.stdout
    assert "sum 42" in done.stdout
    banner = done.stderr.split("celeriac shell: ", 1)[1].split("\n", 1)[0].split(", ")
    assert {"Task", "add", "aadd", "app", "celery", "chain", "group"} <= set(banner)
    assert banner == sorted(banner)  # the banner lists them sorted
    without = run(h.env(), "shell", "--python", "-T", stdin="print('add' in dir())\n")
    assert "False" in without.stdout


def test_report_masks_secrets(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    env = h.env(CELERIAC_SECURITY_KEY="top-secret-key")
    env["CELERIAC_RESULT_BACKEND"] = "redis://:hunter2@127.0.0.1:6379/5"
    done = run(env, "report")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("software -> celeriac:")
    assert "platform -> system:" in out
    assert "settings -> transport:sqlite results:redis://:**@127.0.0.1:6379/5" in out
    assert "security_key: '********'" in out
    assert "result_backend: 'redis://:**@127.0.0.1:6379/5'" in out
    assert "top-secret-key" not in out and "hunter2" not in out


def test_list_bindings_on_redis_shows_celerys_table() -> None:
    need_redis()
    import redis

    prefix = f"itest-{uuid.uuid4().hex[:8]}:"
    raw = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    # what a Celery client registers on Redis for a topic queue
    raw.sadd(f"{prefix}_kombu.binding.events", "task.#\x06\x16\x06\x16monitor")
    try:
        env = dict(os.environ)
        env.update({"CELERIAC_BROKER_URL": "redis://127.0.0.1:6379/12",
                    "ITEST_KEYPREFIX": prefix})
        done = run(env, "list", "bindings")
    finally:
        raw.delete(f"{prefix}_kombu.binding.events")
        raw.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{'Queue':<28} {'Exchange':<28} Routing Key",
        f"{'-' * 16:<28} {'-' * 16:<28} {'-' * 16}",
        f"{'celery':<28} {'celery':<28} celery",
        f"{'monitor':<28} {'events':<28} task.#",
    ]


def test_list_bindings_on_rabbitmq_declares_the_apps_queues() -> None:
    need_rabbitmq()
    queue = f"itest-bind-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update({"CELERIAC_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
                "CELERIAC_TASK_DEFAULT_QUEUE": queue})
    done = run(env, "list", "bindings")
    try:
        assert done.returncode == 0, done.stderr
        assert f"{queue:<28} {queue:<28} {queue}" in done.stdout.splitlines()
    finally:
        _delete_amqp_queue(queue)  # fails if the command did not declare it


def _delete_amqp_queue(name: str) -> None:
    """Check the queue exists (passive declare), then delete it."""
    import asyncio

    import aiormq

    async def go() -> None:
        conn = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672//")
        try:
            channel = await conn.channel()
            declared = await channel.queue_declare(name, passive=True)
            assert declared.queue == name
            await channel.queue_delete(name)
        finally:
            await conn.close()

    asyncio.run(go())


def test_wrong_subcommand_says_what_to_do() -> None:
    done = subprocess.run([sys.executable, "-m", "celeriac", "list", "queues"], cwd=HERE,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "No such command 'queues'" in done.stderr


@pytest.mark.parametrize("command", ["shell", "report", "multi", "list"])
def test_new_commands_have_help(command: str) -> None:
    done = subprocess.run([sys.executable, "-m", "celeriac", command, "--help"], cwd=HERE,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip()
