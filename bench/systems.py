"""The systems under test: their venvs, brokers, worker command lines and queues.

Each system runs two worker configurations, both started through its own CLI:
- ``fast``: the configuration its docs recommend for throughput, one worker process;
- ``default``: the command its tutorial gives, default pool and concurrency.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra import AMQP_URL, REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / ".bench-envs"
PEERS = ROOT / "bench" / "peers"


@dataclass(frozen=True)
class WorkerConfig:
    key: str      # "fast" or "default"
    label: str    # what the table says
    args: tuple[str, ...]


@dataclass(frozen=True)
class System:
    name: str
    brokers: tuple[str, ...]
    fast: WorkerConfig
    default: WorkerConfig
    cli: str

    @property
    def venv(self) -> Path:
        return ENVS / self.name

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def worker_argv(self, config: WorkerConfig) -> list[str]:
        return [str(self.venv / "bin" / self.cli), *config.args]

    def queue(self) -> str:
        """The queue the no-op tasks wait in (for the progress bar's probe)."""
        return "dramatiq:default" if self.name == "dramatiq" else "celery"

    def amqp_queue(self) -> str:
        return "default" if self.name == "dramatiq" else "celery"


SYSTEMS = (
    System(
        "celeriac", ("sqlite", "redis", "amqp"),
        fast=WorkerConfig("fast", "solo pool, prefetch 64, acks after the run",
                          ("-A", "celeriac_app", "worker", "-P", "solo",
                           "--prefetch-multiplier", "64", "-l", "warning")),
        default=WorkerConfig("default", "`worker -l info`: prefork, 2 children, prefetch 4",
                             ("-A", "celeriac_app", "worker", "-l", "info")),
        cli="celeriac",
    ),
    System(
        "celery", ("redis", "amqp"),
        fast=WorkerConfig("fast", "solo pool, prefetch 64, without gossip/mingle/heartbeat",
                          ("-A", "celery_app", "worker", "-P", "solo",
                           "--prefetch-multiplier", "64", "--without-gossip",
                           "--without-mingle", "--without-heartbeat", "-l", "warning")),
        default=WorkerConfig("default", "`worker -l info`: prefork, 2 children, prefetch 4",
                             ("-A", "celery_app", "worker", "-l", "info")),
        cli="celery",
    ),
    System(
        "dramatiq", ("redis", "amqp"),
        fast=WorkerConfig("fast", "1 process, 8 threads (the default per process)",
                          ("dramatiq_app", "--processes", "1", "--threads", "8")),
        default=WorkerConfig("default", "`dramatiq app`: 2 processes x 8 threads",
                             ("dramatiq_app",)),
        cli="dramatiq",
    ),
)


def broker_url(broker: str, sqlite_path: Path) -> str:
    if broker == "redis":
        return REDIS_URL
    if broker == "amqp":
        return AMQP_URL
    return f"sqlite:///{sqlite_path}"


def result_backend(system: System, broker: str) -> tuple[str, str]:
    """(BENCH_RESULT_BACKEND, note for the table)."""
    if system.name == "dramatiq":
        return "", "results in Redis db 15 (Dramatiq's Results middleware)"
    if broker == "sqlite":
        return "", "results in the same SQLite file"
    if broker == "redis":
        return REDIS_URL, "results in Redis"
    if system.name == "celeriac" and not module_imports(system, "celeriac.backends.rpc"):
        return REDIS_URL, "results in Redis (celeriac.backends.rpc not available)"
    return "rpc://", "results over rpc:// (reply queue)"


def module_imports(system: System, module: str) -> bool:
    return import_error(system, module) is None


def import_error(system: System, module: str) -> str | None:
    """None when ``module`` imports in the system's venv, else the error's last line."""
    proc = subprocess.run([system.python, "-c", f"import {module}"], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"


def versions(system: System) -> str:
    """``celery 5.7.0, kombu 5.7.0`` etc., read from the venv."""
    packages = {"celeriac": ("celeriac", "redis", "aiormq"),
                "celery": ("celery", "kombu", "redis"),
                "dramatiq": ("dramatiq", "redis", "pika")}[system.name]
    code = ("import importlib.metadata as m\n"
            f"print(', '.join(f'{{p}} {{m.version(p)}}' for p in {packages!r}))")
    proc = subprocess.run([system.python, "-c", code], capture_output=True, text=True,
                          timeout=60)
    return proc.stdout.strip() or "?"
