"""``celeriac -A APP events``: watch the fleet's events (Celery's and celeriac's workers,
and clients with ``task_send_sent_event``).

Without options: a live view of workers and recent tasks, redrawn every ``-F`` seconds
(the screen is cleared on a terminal; piped, each frame follows the last). ``--dump``:
one line per event as ``celery events --dump`` prints it. Ctrl-C stops either. Workers
send task events only with ``-E`` (or after ``celeriac control enable_events``).
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import click

from celeriac.cli.main import AppContext, app_option, run

if TYPE_CHECKING:
    from celeriac.app import Celery

CLEAR = "\x1b[H\x1b[2J"


@click.command()
@app_option
@click.option("--dump", is_flag=True, help="Print each event as a line (celery events "
              "--dump's format) instead of the live view.")
@click.option("-F", "--frequency", "--freq", type=click.FloatRange(min=0.1), default=1.0,
              show_default=True, help="Seconds between redraws of the live view.")
@click.option("--rows", type=click.IntRange(min=1), default=20, show_default=True,
              help="Recent tasks shown in the live view.")
@click.option("-l", "--loglevel", default="WARNING", show_default=True)
@click.pass_obj
def events(ctx: AppContext, /, dump: bool, frequency: float, rows: int,
           loglevel: str) -> None:
    """Watch workers and tasks live, or dump every event (--dump)."""
    import logging

    logging.basicConfig(level=loglevel.upper(),
                        format="[%(asctime)s: %(levelname)s] %(message)s")
    app = ctx.app
    with suppress(KeyboardInterrupt):
        run(_dump(app) if dump else _live(app, frequency, rows))


async def _dump(app: Celery) -> None:
    from celeriac.events.dump import Dumper
    from celeriac.events.receiver import capture

    dumper = Dumper()

    def show(batch: list[dict[str, Any]]) -> None:
        for event in batch:
            click.echo(dumper.line(event))
        sys.stdout.flush()

    await capture(app, show, ready=lambda: click.echo("-> celeriac events: starting capture..."))


async def _live(app: Celery, frequency: float, rows: int) -> None:
    from celeriac.brokers.base import mask_url
    from celeriac.events.receiver import capture
    from celeriac.events.view import Monitor
    from celeriac.utils.aio import cancel_and_wait

    monitor = Monitor()
    title = f"celeriac events  {mask_url(str(app.broker_url))}"
    tty = sys.stdout.isatty()
    reader = asyncio.create_task(capture(app, monitor.apply))
    try:
        while not reader.done():
            screen = monitor.render(title, rows)
            click.echo(CLEAR + screen if tty else screen + "\n")
            sys.stdout.flush()
            await asyncio.wait({reader}, timeout=frequency)
        reader.result()  # its error, if it stopped
    finally:
        await cancel_and_wait(reader)
