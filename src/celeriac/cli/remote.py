"""``celeriac -A APP inspect|control|status``: Celery's remote control CLI, for Celery
and celeriac workers alike (it speaks kombu's pidbox through ``app.control``).

Output as Celery prints it (``->  host: OK`` then the reply), or with ``--json`` one
JSON object ``{host: reply}``. Exit status 69 when no worker replied in time.
"""

from __future__ import annotations

import json
from typing import Any

import click

from celeriac.cli.main import AppContext, app_option
from celeriac.control.commands import COMMANDS, INSPECT

EX_UNAVAILABLE = 69
_INSPECT = sorted(INSPECT - {"hello", "registered_tasks", "dump_tasks"})
_CONTROL = sorted(set(COMMANDS) - INSPECT - {"heartbeat"})


def _arguments(method: str, args: tuple[str, ...]) -> dict[str, Any]:
    """Positional CLI arguments -> the command's keyword arguments (Celery's order)."""
    a = list(args)
    if method == "query_task":
        return {"ids": a}
    if method == "registered":
        return {"taskinfoitems": a} if a else {}
    if method == "conf":
        return {"with_defaults": bool(a and a[0].lower() in ("1", "true", "yes"))}
    if method == "revoke":
        return {"task_id": a}
    if method == "terminate":
        return {"signal": a[0] if a else "SIGTERM", "task_id": a[1:]}
    if method == "rate_limit":
        return dict(zip(("task_name", "rate_limit"), a, strict=False))
    if method == "time_limit":
        names = ("task_name", "soft", "hard")
        return {k: (float(v) if k != "task_name" else v) for k, v in zip(names, a,
                                                                          strict=False)}
    if method == "add_consumer":
        return dict(zip(("queue", "exchange", "exchange_type", "routing_key"), a,
                        strict=False))
    if method == "cancel_consumer":
        return {"queue": a[0]} if a else {}
    if method in ("pool_grow", "pool_shrink"):
        return {"n": int(a[0]) if a else 1}
    return {}


def _show(replies: list[dict[str, Any]], as_json: bool, quiet: bool = False) -> None:
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply)
    if not merged:
        raise click.ClickException("No nodes replied within time constraint") from None
    if as_json:
        click.echo(json.dumps(merged, default=repr))
        return
    for host, answer in merged.items():
        ok = not (isinstance(answer, dict) and "error" in answer)
        click.echo(f"->  {host}: {'OK' if ok else 'ERROR'}")
        if quiet:
            continue
        if isinstance(answer, dict) and len(answer) == 1 and ("ok" in answer or "error" in answer):
            click.echo(f"        {next(iter(answer.values()))}")
        elif isinstance(answer, list):
            for item in answer or ["- empty -"]:
                click.echo(f"    * {item}")
        else:
            click.echo("    " + json.dumps(answer, indent=4, sort_keys=True, default=repr)
                       .replace("\n", "\n    "))
    count = len(merged)
    click.echo(f"\n{count} node{'s' if count != 1 else ''} online.")


def _send(ctx: AppContext, method: str, arguments: dict[str, Any], destination: str | None,
          timeout_s: float) -> list[dict[str, Any]]:
    names = [d.strip() for d in destination.split(",")] if destination else None
    return ctx.app.control.broadcast(method, arguments, names, reply=True,
                                     timeout=timeout_s) or []


def _options(fn: Any) -> Any:
    fn = click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
                      help="Seconds to wait for replies.")(fn)
    fn = click.option("-d", "--destination", help="Comma-separated worker names.")(fn)
    fn = click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    return app_option(fn)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("method", type=click.Choice(_INSPECT))
@click.argument("args", nargs=-1)
@_options
@click.pass_obj
def inspect(ctx: AppContext, method: str, args: tuple[str, ...], timeout: float,
            destination: str | None, as_json: bool) -> None:
    """Ask the workers what they are doing (read only)."""
    replies = _send(ctx, method, _arguments(method, args), destination, timeout)
    _exit_if_none(replies)
    _show(replies, as_json)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("method", type=click.Choice(_CONTROL))
@click.argument("args", nargs=-1)
@_options
@click.pass_obj
def control(ctx: AppContext, method: str, args: tuple[str, ...], timeout: float,
            destination: str | None, as_json: bool) -> None:
    """Tell the workers to do something (revoke, rate_limit, add_consumer, shutdown...)."""
    arguments = _arguments(method, args)
    if method in ("revoke", "terminate"):  # the broker's store too, like app.control
        ctx.app.run_sync(ctx.app.control._persist_revoke(list(arguments["task_id"])), 60)
    replies = _send(ctx, method, arguments, destination, timeout)
    _exit_if_none(replies)
    _show(replies, as_json)


@click.command()
@_options
@click.pass_obj
def status(ctx: AppContext, timeout: float, destination: str | None, as_json: bool) -> None:
    """List the workers that answer a ping."""
    replies = _send(ctx, "ping", {}, destination, timeout)
    _exit_if_none(replies)
    _show(replies, as_json, quiet=True)


def _exit_if_none(replies: list[dict[str, Any]]) -> None:
    if not any(replies):
        click.echo("Error: No nodes replied within time constraint", err=True)
        raise SystemExit(EX_UNAVAILABLE)
