"""``celeriac -A APP beat``: Celery's beat options. Any number may run (and any number of
``worker -B``): one sends, each run once; see celeriac/beat and docs/beat.md."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import click

from celeriac import __version__
from celeriac.cli.main import AppContext, app_option
from celeriac.errors import CeleriacError

logger = logging.getLogger("celeriac.beat")

_STATE_NOTICE = ("beat: -s/--schedule is accepted and not used: celeriac keeps each "
                 "entry's last run in the broker, shared by every beat")


def banner(app: Any, scheduler: Any) -> str:
    from celeriac.brokers.base import mask_url

    return "\n".join([
        f"celeriac beat v{__version__} is starting.",
        "__    -    ... __   -        _",
        f"LocalTime -> {app.now().strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "Configuration ->",
        f"    . broker -> {mask_url(app.broker_url)}",
        "    . scheduler -> celeriac.beat.Scheduler (state in the broker)",
        f"    . node -> {scheduler.node}",
        f"    . entries -> {len(scheduler.entries)}",
        f"    . leader timeout -> {scheduler.lease_s:g} s",
        f"    . maxinterval -> {scheduler.max_interval_s:g} s",
    ])


@click.command()
@app_option
@click.option("-l", "--loglevel", default="WARNING", show_default=True,
              help="debug, info, warning, error or critical.")
@click.option("-s", "--schedule", "schedule_file",
              help="Accepted for Celery compatibility: state lives in the broker.")
@click.option("-S", "--scheduler", "scheduler_cls",
              help="Accepted for Celery compatibility (celeriac's scheduler is used).")
@click.option("--max-interval", type=click.FloatRange(min=0.01),
              help="Longest sleep between checks (beat_max_loop_interval).")
@click.option("-f", "--logfile", type=click.Path(dir_okay=False), help="Log to this file.")
@click.option("--pidfile", help="Accepted for Celery compatibility.")
@click.pass_obj
def beat(ctx: AppContext, /, loglevel: str, schedule_file: str | None,
         scheduler_cls: str | None, max_interval: float | None, logfile: str | None,
         pidfile: str | None) -> None:
    """Send the app's periodic tasks (beat_schedule) when due."""
    from celeriac.beat import Service
    from celeriac.worker.banner import setup_logging

    app = ctx.app
    try:
        setup_logging(loglevel, app.conf.worker_log_format)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'-l'") from None
    if logfile:
        handler = logging.FileHandler(logfile)
        handler.setFormatter(logging.Formatter(app.conf.worker_log_format))
        logging.getLogger().addHandler(handler)
    if schedule_file:
        logger.warning("%s", _STATE_NOTICE)
    service = Service(app, max_interval, schedule_file, scheduler_cls)  # -S: a notice
    try:
        scheduler = service.scheduler
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    print(banner(app, scheduler), flush=True)

    def on_signal(signum: int, _frame: Any) -> None:
        logger.warning("beat: shutting down (signal %d)", signum)
        service.stop()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, on_signal)
    try:
        service.start()  # beat_init, then the loop until a signal
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(0)
