"""``celeriac -A APP call NAME`` and ``celeriac -A APP result ID``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from celeriac.cli.main import AppContext, app_option
from celeriac.errors import CeleriacError


def _json_option(value: str | None, kind: type, what: str) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc}); e.g. --{what} "
                                 f"{'[1, 2]' if kind is list else chr(39) + '{}' + chr(39)}",
                                 param_hint=f"--{what}") from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=f"--{what}")
    return parsed


@click.command()
@app_option
@click.argument("name")
@click.option("-a", "--args", "args_json", help="Positional arguments as a JSON list.")
@click.option("-k", "--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--countdown", type=float, help="Seconds to wait before running.")
@click.option("--eta", type=click.DateTime(), help="When to run (ISO-8601, UTC if naive).")
@click.option("--expires", type=float, help="Seconds after which the task is discarded.")
@click.option("-Q", "--queue", help="Queue to send to.")
@click.option("--task-id", help="Use this task id.")
@click.pass_obj
def call(ctx: AppContext, name: str, args_json: str | None, kwargs_json: str | None,
         countdown: float | None, eta: dt.datetime | None, expires: float | None,
         queue: str | None, task_id: str | None) -> None:
    """Send task NAME and print its id."""
    args = _json_option(args_json, list, "args")
    kwargs = _json_option(kwargs_json, dict, "kwargs")
    options: dict[str, Any] = {"countdown": countdown, "eta": eta, "expires": expires,
                               "queue": queue, "task_id": task_id}
    try:
        result = ctx.app.send_task(name, args, kwargs,
                                   **{k: v for k, v in options.items() if v is not None})
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.id)


@click.command()
@app_option
@click.argument("task_id")
@click.option("--timeout", type=float, default=None, help="Wait at most this many seconds.")
@click.option("--traceback", "show_traceback", is_flag=True, help="Print a failure's traceback.")
@click.pass_obj
def result(ctx: AppContext, task_id: str, timeout: float | None, show_traceback: bool) -> None:
    """Print the result of task TASK_ID (waits for it; PENDING without --timeout 0)."""
    res = ctx.app.AsyncResult(task_id)
    try:
        if timeout == 0:
            click.echo(f"{res.state}: {res.result!r}")
            return
        value = res.get(timeout=timeout, propagate=False)
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    if show_traceback and res.traceback:
        click.echo(res.traceback)
    click.echo(repr(value) if isinstance(value, BaseException) else
               json.dumps(value, default=str, ensure_ascii=False))
