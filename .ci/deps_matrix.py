#!/usr/bin/env python3
"""`make deps-matrix`: the Redis and RabbitMQ suites against the lowest and the newest
redis-py and aiormq that pyproject.toml allows, so a dependency release cannot break
users silently.

Two venvs under .deps-envs/: ``lowest`` pins redis-py and aiormq to the floors of their
ranges (``>=5.0`` -> ``==5.0``); ``newest`` upgrades everything (eagerly) to the newest
release inside the ranges. hiredis and pamqp resolve as pip resolves them for those
pins. Each gets the wheel built from this checkout (not an editable install: what users
get), ``pip check``, then the contract suites (Redis broker and backend, RabbitMQ broker
and rpc:// backend) and a small integration subset, with UserWarning an error in pytest
and in the workers it starts (PYTHONWARNINGS), so a deprecation a new release prints
fails here. Servers must answer (CELERIAC_REQUIRE_SERVICES=1).

Prints the versions each set tested; a failing set prints a line naming its versions
and the exit status is 1. ``.ci/deps_matrix.py lowest`` runs one set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10: the tomli pip carries
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / ".deps-envs"
PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
#: the dependencies under test, and what they bring that matters (reported too)
UNDER_TEST = ("redis", "aiormq")
REPORTED = ("redis", "hiredis", "aiormq", "pamqp")
#: from the dev extra: only what these tests need (not Celery, linters, type checkers)
TEST_TOOLS = ("pytest", "pytest-timeout", "pytest-asyncio", "hypothesis", "psutil")
TESTS = [
    "tests/contract/test_redis_contract.py",
    "tests/contract/test_redis_backend.py",
    "tests/contract/test_redis_blocking_wait.py",
    "tests/contract/test_amqp_contract.py",  # the broker and the rpc:// backend
    "tests/integration/test_worker_redis.py",
    "tests/integration/test_redis_blocking.py",
    "tests/integration/test_redis_servers.py",
    "tests/integration/test_amqp_blocking.py",
    "tests/integration/test_amqp_worker.py::test_rpc_results_reach_a_celeriac_caller",
    "tests/integration/test_amqp_worker.py::test_countdown_waits_in_rabbitmq_not_in_the_worker",
    "tests/integration/test_amqp_worker.py::"
    "test_connection_closed_by_the_server_redelivers_the_running_task",
]


def name_of(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower()


def requirements() -> tuple[list[str], list[str]]:
    """(celeriac's runtime requirements with the redis extra, the test tools), as
    pyproject.toml states them."""
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = project["dependencies"] + project["optional-dependencies"]["redis"]
    tools = [r for r in project["optional-dependencies"]["dev"] if name_of(r) in TEST_TOOLS]
    return runtime, tools


def floor(requirement: str) -> str:
    """``redis[hiredis]>=5.0,<9`` -> ``redis[hiredis]==5.0``."""
    found = re.search(r">=\s*([0-9][^,;\s]*)", requirement)
    if found is None:
        raise SystemExit(f"deps-matrix: no floor (>=) in {requirement!r} in pyproject.toml")
    head = re.split(r"[<>=!~;\s]", requirement, maxsplit=1)[0]
    return f"{head}=={found[1]}"


def build_wheel() -> Path:
    """The wheel of this checkout, built from a copy (setuptools writes build/ beside
    its source, and a stale build/lib can carry files the tree no longer has)."""
    dist = ENVS / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="celeriac-wheel-") as tmp:
        source = Path(tmp)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, source / name)
        shutil.copytree(ROOT / "src", source / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        run([sys.executable, *PIP, "wheel", "--no-deps", "-w", str(dist), str(source)])
    [wheel] = dist.glob("celeriac-*.whl")
    return wheel


def run(cmd: list[str], **kwargs: object) -> None:
    done = subprocess.run(cmd, **kwargs)  # type: ignore[call-overload]
    if done.returncode:
        raise SystemExit(f"deps-matrix: {' '.join(map(str, cmd))} failed ({done.returncode})")


def prepare(label: str, wheel: Path) -> Path:
    """The venv for one set, its dependencies installed, the wheel reinstalled."""
    venv = ENVS / label
    python = venv / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    runtime, tools = requirements()
    if label == "lowest":
        pins = [floor(r) if name_of(r) in UNDER_TEST else r for r in runtime]
        run([str(python), *PIP, "install", *pins, *tools])
    else:
        run([str(python), *PIP, "install", "--upgrade", "--upgrade-strategy", "eager",
             *runtime, *tools])
    run([str(python), *PIP, "install", "--no-deps", "--force-reinstall", str(wheel)])
    run([str(python), "-m", "pip", "check"])  # what was installed is inside the ranges
    return python


def versions(python: Path) -> str:
    code = ("import importlib.metadata as m, sys; "
            f"print(', '.join(f'{{n}} {{m.version(n)}}' for n in {REPORTED!r}))")
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def run_tests(python: Path) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(CELERIAC_REQUIRE_SERVICES="1", PYTHONWARNINGS="error::UserWarning")
    cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-W", "error::UserWarning", *TESTS]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def main(labels: list[str]) -> int:
    unknown = set(labels) - {"lowest", "newest"}
    if unknown:
        raise SystemExit(f"deps-matrix: no set named {', '.join(sorted(unknown))}")
    ENVS.mkdir(exist_ok=True)
    wheel = build_wheel()
    results = []
    for label in labels:
        started = time.monotonic()
        python = prepare(label, wheel)
        tested = versions(python)
        print(f"deps-matrix {label}: testing with {tested}", flush=True)
        code = run_tests(python)
        results.append((label, tested, code, time.monotonic() - started))
    print()
    for label, tested, code, took_s in results:
        verdict = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"deps-matrix {label}: {verdict} with {tested} ({took_s:.0f} s)")
    return 1 if any(code for _, _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["lowest", "newest"]))
