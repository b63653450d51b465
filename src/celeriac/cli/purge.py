"""``celeriac -A APP purge``: delete waiting messages (not running ones)."""

from __future__ import annotations

import click

from celeriac.cli.main import AppContext, app_option, run


@click.command()
@app_option
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("-Q", "--queues", help="Comma-separated queues (default: the default queue).")
@click.pass_obj
def purge(ctx: AppContext, force: bool, queues: str | None) -> None:
    """Delete all waiting task messages from the queues."""
    app = ctx.app
    names = [q.strip() for q in queues.split(",")] if queues else [app.conf.task_default_queue]
    if not force:
        click.confirm(f"WARNING: This will remove all tasks from queue: {', '.join(names)}.\n"
                      "There is no undo for this operation! (to skip this prompt use the -f "
                      "option)\nAre you sure you want to delete all tasks", abort=True)

    async def go() -> int:
        broker = app._new_broker()
        await broker.connect()
        try:
            return await broker.purge(names)
        finally:
            await broker.close()

    count = run(go())
    click.echo(f"Purged {count} message{'s' if count != 1 else ''} from "
               f"{len(names)} known task queue{'s' if len(names) != 1 else ''}.")
