"""``celeriac migrate SOURCE DESTINATION``: move waiting tasks between brokers (celery.migrate)."""

from __future__ import annotations

import click

from celeriac.brokers import create_broker
from celeriac.brokers.base import Delivery
from celeriac.cli.main import AppContext, app_option, run
from celeriac.migrate import migrate_tasks
from celeriac.queues import queue_names


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


@click.command()
@app_option
@click.argument("source")
@click.argument("destination")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Number of tasks to migrate.")
@click.option("-t", "--timeout", "timeout_s", type=float, default=1.0, show_default=True,
              help="Seconds to wait for tasks before stopping.")
@click.option("-a", "--ack-messages", "ack", is_flag=True,
              help="Ack on the source: move the tasks (without it they are copied).")
@click.option("-T", "--tasks", help="Comma-separated task names to migrate (default: all).")
@click.option("-Q", "--queues", help="Comma-separated queues (default: the app's queues).")
@click.option("-F", "--forever", is_flag=True, help="Keep migrating until interrupted.")
@click.pass_obj
def migrate(ctx: AppContext, source: str, destination: str, limit: int | None,
            timeout_s: float, ack: bool, tasks: str | None, queues: str | None,
            forever: bool) -> None:
    """Move the tasks waiting in SOURCE's queues to DESTINATION (broker URLs)."""
    options = None
    names = _names(queues)
    if ctx.spec:
        conf = ctx.app.conf
        options = ctx.app.broker_options()
        names = names or queue_names(conf.task_queues) or [conf.task_default_queue]
    names = names or ["celery"]
    wanted = set(_names(tasks)) or None

    def echo(count: int, delivery: Delivery) -> None:
        message = delivery.message
        click.echo(f"Migrating task {count}{'' if limit is None else f'/{limit}'}: "
                   f"{message.task_name}[{message.task_id}] ({delivery.queue})")

    async def go() -> None:
        src, dest = create_broker(source, options), create_broker(destination, options)
        await src.connect()
        try:
            await dest.connect()
            try:
                done = await migrate_tasks(src, dest, names, limit=limit, timeout_s=timeout_s,
                                           ack=ack, tasks=wanted, forever=forever,
                                           on_message=echo)
            finally:
                await dest.close()
        finally:
            await src.close()
        verb = "moved" if ack else "copied (left on the source too: -a moves them)"
        click.echo(f"{done.moved} task{'s' if done.moved != 1 else ''} {verb}"
                   + (f"; {done.returned} put back on the source" if ack and done.returned
                      else ""))

    run(go())
