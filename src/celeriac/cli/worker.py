"""``celeriac -A APP worker``: Celery's worker options, and the ones it ignores said aloud."""

from __future__ import annotations

import logging
import sys

import click

from celeriac.cli.main import AppContext, app_option
from celeriac.errors import CeleriacError
from celeriac.worker.banner import setup_logging
from celeriac.worker.pools import ALIASES, POOL_NAMES

logger = logging.getLogger("celeriac.worker")

_POOL_CHOICES = click.Choice([*POOL_NAMES, *ALIASES], case_sensitive=False)


@click.command()
@app_option
@click.option("-l", "--loglevel", default="WARNING", show_default=True,
              help="debug, info, warning, error or critical.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1),
              help="Pool size. Default: the number of CPUs.")
@click.option("-P", "--pool", type=_POOL_CHOICES,
              help="prefork (default), solo, threads, asyncio; eventlet/gevent run asyncio.")
@click.option("-Q", "--queues", help="Comma-separated queues to consume from.")
@click.option("-n", "--hostname", help="Worker name, e.g. w1@%h.")
@click.option("--prefetch-multiplier", type=click.IntRange(min=1),
              help="Messages reserved per pool slot.")
@click.option("--max-tasks-per-child", type=click.IntRange(min=1),
              help="prefork: replace a child after this many tasks.")
@click.option("--max-memory-per-child", type=click.IntRange(min=1),
              help="prefork: replace a child above this resident memory (KiB).")
@click.option("-E", "--task-events", is_flag=True, help="Send task events.")
@click.option("-f", "--logfile", type=click.Path(dir_okay=False), help="Log to this file.")
@click.option("--shutdown-timeout", type=float,
              help="Seconds a warm shutdown waits for running tasks (default 60).")
@click.option("--without-gossip", is_flag=True, help="Accepted for Celery compatibility.")
@click.option("--without-mingle", is_flag=True, help="Accepted for Celery compatibility.")
@click.option("--without-heartbeat", is_flag=True, help="Accepted for Celery compatibility.")
@click.option("-O", "optimization", help="Accepted for Celery compatibility (fair is default).")
@click.pass_obj
def worker(ctx: AppContext, /, loglevel: str, concurrency: int | None, pool: str | None,
           queues: str | None, hostname: str | None, prefetch_multiplier: int | None,
           max_tasks_per_child: int | None, max_memory_per_child: int | None,
           task_events: bool, logfile: str | None, shutdown_timeout: float | None,
           **_celery_only: object) -> None:
    """Start a worker that runs the app's tasks."""
    app = ctx.app
    conf = app.conf
    try:
        setup_logging(loglevel, conf.worker_log_format, conf.worker_task_log_format)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'-l'") from None
    if logfile:
        handler = logging.FileHandler(logfile)
        handler.setFormatter(logging.Formatter(conf.worker_log_format))
        logging.getLogger().addHandler(handler)
    try:
        w = app.Worker(
            concurrency=concurrency, pool=pool,
            queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
            hostname=hostname, prefetch_multiplier=prefetch_multiplier,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child, send_events=task_events,
            shutdown_timeout_s=shutdown_timeout)
        sys.exit(w.start())
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
