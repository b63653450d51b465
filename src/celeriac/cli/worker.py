"""``celeriac -A APP worker``: Celery's worker options, and the ones it ignores said aloud."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from celeriac.cli.main import AppContext, app_option
from celeriac.cli.worker_daemon import (
    FAIR_NOTE,
    OPTIMIZATIONS,
    daemon_options,
    log_to_file,
    maybe_detach,
    pidlock,
)
from celeriac.errors import CeleriacError
from celeriac.queues import select_queues
from celeriac.utils.log import mlevel, redirect_stdouts, setup_task_logging
from celeriac.worker.banner import setup_logging
from celeriac.worker.daemon import drop_privileges
from celeriac.worker.pools import ALIASES, POOL_NAMES
from celeriac.worker.worker import expand_hostname

logger = logging.getLogger("celeriac.worker")

_POOL_CHOICES = click.Choice([*POOL_NAMES, *ALIASES], case_sensitive=False)


@click.command()
@app_option
@click.option("-l", "--loglevel", default="WARNING", show_default=True,
              help="debug, info, warning, error or critical.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1),
              help="Pool size. Default: the number of CPUs.")
@click.option("-P", "--pool", type=_POOL_CHOICES,
              help="prefork (default), solo, threads, asyncio; eventlet/gevent run threads.")
@click.option("-Q", "--queues", help="Comma-separated queues to consume from.")
@click.option("-X", "--exclude-queues", help="Comma-separated queues not to consume from.")
@click.option("-n", "--hostname", help="Worker name, e.g. w1@%h.")
@click.option("--prefetch-multiplier", type=click.IntRange(min=1),
              help="Messages reserved per pool slot.")
@click.option("--max-tasks-per-child", type=click.IntRange(min=1),
              help="prefork: replace a child after this many tasks.")
@click.option("--max-memory-per-child", type=click.IntRange(min=1),
              help="prefork: replace a child above this resident memory (KiB).")
@click.option("--consumer-children/--no-consumer-children", default=None,
              help="prefork: each child fetches, runs and acks its own tasks, or the "
              "parent does all broker I/O (worker_consumer_children).")
@click.option("-E", "--task-events", is_flag=True, help="Send task events.")
@click.option("-B", "--beat", is_flag=True,
              help="Also run beat, the periodic task scheduler (any number may).")
@click.option("-s", "--schedule", "schedule_file",
              help="Accepted for Celery compatibility (-B keeps state in the broker).")
@click.option("-f", "--logfile", type=click.Path(dir_okay=False),
              help="Log to this file, not stderr (%n %i %I %p %h expand as Celery's).")
@click.option("--shutdown-timeout", type=float,
              help="Seconds a warm shutdown waits for running tasks (default 60).")
@click.option("--metrics-port", type=click.IntRange(min=0, max=65535),
              help="Serve Prometheus metrics on this port (extra 'metrics').")
@click.option("--metrics-address", default="127.0.0.1", show_default=True,
              help="Address the metrics port binds to.")
@click.option("--without-gossip", is_flag=True,
              help="Accepted for Celery compatibility (celeriac has no gossip).")
@click.option("--without-mingle", is_flag=True, help="Accepted for Celery compatibility "
              "(celeriac does not mingle: revoked ids are kept in the broker instead).")
@click.option("--without-heartbeat", is_flag=True, help="Send no worker-heartbeat events.")
@click.option("-O", "--optimization", "optimization", type=OPTIMIZATIONS,
              help="default or fair: both are fair here (a task waits for a free slot).")
@daemon_options
@click.pass_obj
def worker(ctx: AppContext, /, loglevel: str, concurrency: int | None, pool: str | None,
           queues: str | None, exclude_queues: str | None, hostname: str | None,
           prefetch_multiplier: int | None,
           max_tasks_per_child: int | None, max_memory_per_child: int | None,
           task_events: bool, logfile: str | None, shutdown_timeout: float | None,
           **options: Any) -> None:
    """Start a worker that runs the app's tasks."""
    if options.get("detach") and not ctx.spec:
        raise click.UsageError("--detach needs the command line: celeriac -A proj worker "
                               "--detach")
    app = ctx.app
    conf = app.conf
    if options.get("without_heartbeat"):
        conf.worker_heartbeat_interval = 0
    if options.get("consumer_children") is not None:
        conf.worker_consumer_children = options["consumer_children"]
    try:
        level = mlevel(loglevel)
        if conf.worker_hijack_root_logger or not logging.getLogger().handlers:
            setup_logging(loglevel, conf.worker_log_format, conf.worker_task_log_format)
        logging.getLogger().setLevel(level or logging.WARNING)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'-l'") from None
    if maybe_detach({**options, "logfile": logfile}, hostname):
        return
    nodename = expand_hostname(hostname)
    if logfile:
        log_to_file(logfile, nodename, conf.worker_log_format,
                    replace_stderr=bool(conf.worker_hijack_root_logger))
    setup_task_logging(conf, level)
    if options.get("optimization"):
        logger.info("%s", FAIR_NOTE)
    for limit in ("time_limit", "soft_time_limit"):
        if options.get(limit) is not None:
            setattr(conf, f"task_{limit}", options[limit])
    try:
        drop_privileges(options.get("uid"), options.get("gid"))
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    with pidlock(options.get("pidfile"), nodename):
        _run(app, concurrency=concurrency, pool=pool, queues=queues,
             exclude_queues=exclude_queues, hostname=hostname,
             prefetch_multiplier=prefetch_multiplier, max_tasks_per_child=max_tasks_per_child,
             max_memory_per_child=max_memory_per_child, task_events=task_events,
             shutdown_timeout=shutdown_timeout, autoscale=options.get("autoscale"),
             metrics_port=options.get("metrics_port"),
             metrics_address=options.get("metrics_address") or "127.0.0.1",
             beat=bool(options.get("beat")))


def _run(app: Any, *, concurrency: int | None, pool: str | None, queues: str | None,
         exclude_queues: str | None,
         hostname: str | None, prefetch_multiplier: int | None,
         max_tasks_per_child: int | None, max_memory_per_child: int | None,
         task_events: bool, shutdown_timeout: float | None,
         autoscale: tuple[int, int] | None, metrics_port: int | None,
         metrics_address: str, beat: bool) -> None:
    conf = app.conf
    try:
        with redirect_stdouts(conf):  # print() -> the log while it runs, as Celery's
            w = app.Worker(
                concurrency=concurrency, pool=pool,
                queues=select_queues(conf, queues, exclude_queues),
                hostname=hostname, prefetch_multiplier=prefetch_multiplier,
                max_tasks_per_child=max_tasks_per_child,
                max_memory_per_child=max_memory_per_child, send_events=task_events,
                shutdown_timeout_s=shutdown_timeout, autoscale=autoscale,
                metrics_port=metrics_port,
                metrics_address=metrics_address, beat=beat)
            code = w.start()
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
