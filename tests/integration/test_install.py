"""`pip install celeriac` with no extras runs the tutorial on RabbitMQ (issue 20).

The wheel is built from this checkout and installed into a fresh venv (dependencies from
the package registry), then the tutorial's own files (examples/meiduo_sms, whose config
names ``amqp://guest:guest@127.0.0.1:5672``) run in it through the ``celeriac`` script.
Nothing of this checkout or of the test venv is on that venv's path.

Marked ``slow`` (a wheel build, a venv and an install: ~10-40 s, most of it pip); it
still runs in ``make test``. Deselect with ``-m "not slow"`` while iterating.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import AMQP_HOST, AMQP_PORT, need_rabbitmq

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "examples" / "meiduo_sms" / "celery_tasks"
PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input"]


def _run(cmd: list[str], timeout_s: float = 240, **kwargs: object) -> str:
    """Run a command, returning its output; fail the test with that output otherwise."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                          **kwargs)  # type: ignore[call-overload]
    out = str(done.stdout) + str(done.stderr)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{out}"
    return out


class Venv:
    """A fresh venv with the built wheel installed, and an environment that sees only it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = str(root / "venv" / "bin" / "python")
        self.bin = root / "venv" / "bin"
        self.wheel = ""

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CELERIAC_", "CELERY_", "PYTHON", "VIRTUAL_ENV"))}
        env.update(PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
                   PYTHONUNBUFFERED="1", **extra)
        return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """Build the wheel, make a venv, ``pip install <wheel>`` with no extras."""
    root = tmp_path_factory.mktemp("install")
    made = Venv(root)
    source = root / "source"  # a copy: setuptools writes build/ and egg-info beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run([sys.executable, *PIP, "wheel", "-q", "--no-deps", "-w", str(root / "dist"),
          str(source)])
    [wheel] = (root / "dist").glob("celeriac-*.whl")
    made.wheel = str(wheel)
    _run([sys.executable, "-m", "venv", str(root / "venv")])
    _run([made.python, *PIP, "install", "-q", made.wheel], env=made.env())
    return made


def test_the_plain_install_has_aiormq_and_not_redis(venv: Venv) -> None:
    probe = ("import importlib.util as u; "
             "print(u.find_spec('aiormq') is not None, u.find_spec('redis') is not None)")
    out = _run([venv.python, "-c", probe], env=venv.env())
    assert out.split() == ["True", "False"]
    where = _run([venv.python, "-c", "import celeriac; print(celeriac.__file__)"],
                 env=venv.env())
    assert where.strip().startswith(str(venv.root)), where  # not this checkout's src/


def test_a_redis_url_without_redis_py_names_the_extra(venv: Venv, tmp_path: Path) -> None:
    shutil.copytree(TUTORIAL, tmp_path / "celery_tasks")
    done = subprocess.run(
        [str(venv.bin / "celeriac"), "-A", "celery_tasks.main", "worker"],
        cwd=tmp_path, env=venv.env(CELERIAC_BROKER_URL="redis://127.0.0.1:6379/15"),
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert 'pip install "celeriac[redis]"' in done.stdout + done.stderr, done.stderr


@pytest.fixture
def amqp_queue() -> Iterator[str]:
    """A queue name of this test's own on the default vhost; deleted (with its exchange)
    afterwards."""
    need_rabbitmq()
    name = f"install-check-{uuid.uuid4().hex[:8]}"
    yield name

    async def delete() -> None:
        import aiormq

        conn = await aiormq.connect(f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}//")
        try:
            channel = await conn.channel()
            await channel.queue_delete(name)
            await channel.exchange_delete(name)
        finally:
            await conn.close()

    asyncio.run(delete())


CLIENT = """
from celery_tasks.sms.tasks import ccp_send_sms_code
result = ccp_send_sms_code.delay("13800000000", "123456")
print("result", result.get(timeout=60), result.state)
"""


def test_the_tutorial_runs_on_rabbitmq(venv: Venv, tmp_path: Path, amqp_queue: str) -> None:
    """The tutorial's files as they are (config.py: amqp://guest:guest@127.0.0.1:5672);
    the environment only isolates the queue and asks for rpc:// results to read one."""
    shutil.copytree(TUTORIAL, tmp_path / "celery_tasks")
    env = venv.env(CELERIAC_TASK_DEFAULT_QUEUE=amqp_queue, CELERIAC_RESULT_BACKEND="rpc://",
                   SMS_FAKE_DIR=str(tmp_path / "sms"))
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [str(venv.bin / "celeriac"), "-A", "celery_tasks.main", "worker", "-l", "info",
             "-P", "threads", "-c", "2"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            out = subprocess.run([venv.python, "-c", CLIENT], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=90)
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(30)
    worker_log = log_path.read_text(errors="replace")
    assert out.returncode == 0, out.stdout + out.stderr + "\n--- worker:\n" + worker_log
    assert "result 0 SUCCESS" in out.stdout, out.stdout + out.stderr
    assert "amqp://guest:**@127.0.0.1:5672" in worker_log, worker_log
    assert "succeeded" in worker_log, worker_log
    assert (tmp_path / "sms" / "outbox.jsonl").read_text().count("\n") == 1
    assert code == 0, worker_log


def test_the_amqp_extra_still_installs(venv: Venv) -> None:
    """Last: it must not be what brings aiormq to the tests above."""
    out = _run([venv.python, *PIP, "install", f"celeriac[amqp] @ file://{venv.wheel}"],
               env=venv.env())
    assert "does not provide the extra" not in out, out
