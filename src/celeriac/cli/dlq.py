"""``celeriac -A APP dlq list|requeue|purge``: the dead-letter store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from celeriac.brokers.base import Broker
from celeriac.cli.main import AppContext, app_option, run

T = TypeVar("T")


def _with_broker(ctx: AppContext, action: Callable[[Broker], Awaitable[T]]) -> T:
    async def go() -> T:
        broker = ctx.app._new_broker()
        await broker.connect()
        try:
            return await action(broker)
        finally:
            await broker.close()

    return run(go())


@click.group()
@app_option
def dlq() -> None:
    """Messages the worker could not run, kept with the reason."""


@dlq.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.pass_obj
def list_(ctx: AppContext, limit: int) -> None:
    """Show dead letters: id, when, queue, task, reason."""
    letters: list[Any] = _with_broker(ctx, lambda b: b.dead_letters(limit))
    if not letters:
        click.echo("No dead letters.")
        return
    for letter in letters:
        when = dt.datetime.fromtimestamp(letter.failed_at).strftime("%Y-%m-%d %H:%M:%S")
        name = letter.message.task_name or "?"
        click.echo(f"{letter.id}  {when}  {letter.queue}  {name}[{letter.message.task_id}]  "
                   f"{letter.reason}")
    click.echo(f"{len(letters)} dead letter{'s' if len(letters) != 1 else ''}.")


@dlq.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Requeue every dead letter.")
@click.pass_obj
def requeue(ctx: AppContext, ids: tuple[str, ...], all_: bool) -> None:
    """Send dead letters back to their queues (give IDS from 'dlq list', or --all)."""
    if not ids and not all_:
        raise click.UsageError("name dead letters by id (see 'dlq list') or pass --all")
    count = _with_broker(ctx, lambda b: b.requeue_dead(None if all_ else list(ids)))
    click.echo(f"Requeued {count} message{'s' if count != 1 else ''}.")


@dlq.command("purge")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge_(ctx: AppContext, force: bool) -> None:
    """Delete every dead letter."""
    if not force:
        click.confirm("Delete all dead letters? There is no undo", abort=True)
    count = _with_broker(ctx, lambda b: b.purge_dead())
    click.echo(f"Deleted {count} dead letter{'s' if count != 1 else ''}.")
