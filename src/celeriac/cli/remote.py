"""``celeriac -A APP inspect|control|status``: Celery's remote control CLI, for Celery
and celeriac workers alike (it speaks kombu's pidbox through ``app.control``).

Output as Celery prints it (``->  host: OK`` then the reply), or with ``--json`` one
JSON object ``{host: reply}``. Exit status 69 when no worker replied in time.
``METHOD`` may be an application's own command (celeriac.worker.control); positional
arguments become keyword ones by its ``args``/``variadic``, as ``celery control`` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from celeriac.cli.main import AppContext, app_option
from celeriac.control.arguments import compile_arguments
from celeriac.control.commands import META, CommandInfo

EX_UNAVAILABLE = 69


def _names(kind: str) -> list[str]:
    return sorted(n for n, i in META.items() if i.type == kind and i.visible)


def _lookup(ctx: AppContext, kind: str, method: str) -> CommandInfo:
    """The command's metadata. An application's own commands may be defined in its task
    modules, which the worker imports: when the name is not known yet, they are
    imported here too (``app.finalize()``)."""
    info = META.get(method)
    if info is None or info.type != kind:
        try:
            ctx.app.finalize()
        except click.UsageError:
            raise
        except Exception as exc:
            raise click.UsageError(f"Command {method} not recognized, and importing the "
                                   f"app's task modules failed: {exc!r}") from None
        info = META.get(method)
    if info is None or info.type != kind or not info.visible:
        raise click.UsageError(f"Command {method} not recognized. Available {kind} "
                               f"commands: {', '.join(_names(kind))}")
    return info


def _arguments(method: str, info: CommandInfo, args: tuple[str, ...]) -> dict[str, Any]:
    try:
        return compile_arguments(method, info, args)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


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


def _list_option(kind: str) -> Callable[[Any], Any]:
    """``--list``: the commands of this kind, with their arguments and help."""

    def show(ctx: click.Context, _param: Any, value: bool) -> None:
        if not value:
            return
        obj = ctx.find_object(AppContext)
        if obj is not None and obj.spec:
            try:
                obj.app.finalize()  # the app's own commands
            except Exception as exc:
                click.echo(f"(the app's task modules could not be imported: {exc!r})",
                           err=True)
        formatter = click.HelpFormatter()
        with formatter.section(f"{kind.capitalize()} Commands"):
            formatter.write_dl([(f"{n} {META[n].signature}" if META[n].signature else n,
                                 META[n].help) for n in _names(kind)])
        click.echo(formatter.getvalue(), nl=False)
        ctx.exit()

    return click.option("--list", "list_", is_flag=True, expose_value=False, is_eager=True,
                        callback=show, help=f"List the {kind} commands and exit.")


def _options(fn: Any) -> Any:
    fn = click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
                      help="Seconds to wait for replies.")(fn)
    fn = click.option("-d", "--destination", help="Comma-separated worker names.")(fn)
    fn = click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    return app_option(fn)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("method")
@click.argument("args", nargs=-1)
@_list_option("inspect")
@_options
@click.pass_obj
def inspect(ctx: AppContext, method: str, args: tuple[str, ...], timeout: float,
            destination: str | None, as_json: bool) -> None:
    """Ask the workers what they are doing (read only): METHOD [ARGS]... (--list)."""
    arguments = _arguments(method, _lookup(ctx, "inspect", method), args)
    replies = _send(ctx, method, arguments, destination, timeout)
    _exit_if_none(replies)
    _show(replies, as_json)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("method")
@click.argument("args", nargs=-1)
@_list_option("control")
@_options
@click.pass_obj
def control(ctx: AppContext, method: str, args: tuple[str, ...], timeout: float,
            destination: str | None, as_json: bool) -> None:
    """Tell the workers to do something (revoke, rate_limit, add_consumer, shutdown...):
    METHOD [ARGS]... (--list)."""
    arguments = _arguments(method, _lookup(ctx, "control", method), args)
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
