"""``celeriac -A APP dashboard``: the web view of the fleet (celeriac.dashboard)."""

from __future__ import annotations

import click

from celeriac.cli.main import AppContext, app_option


@click.command()
@app_option
@click.option("--port", type=click.IntRange(min=0, max=65535), default=5555,
              show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to bind; a non-local one needs --basic-auth or --token.")
@click.option("--basic-auth", metavar="USER:PASS", help="Require HTTP Basic auth.")
@click.option("--token", help="Require this token (Bearer header, or /?token=... once).")
@click.option("--insecure", is_flag=True,
              help="Allow a non-local address without authentication.")
@click.option("-Q", "--queues", help="Comma-separated queues to show (default: the "
              "default queue, and every queue holding dead letters).")
@click.option("--max-tasks", type=click.IntRange(min=100),
              help="Tasks kept in the history (setting dashboard_max_tasks).")
@click.option("-l", "--loglevel", default="WARNING", show_default=True)
@click.pass_obj
def dashboard(ctx: AppContext, /, port: int, address: str, basic_auth: str | None,
              token: str | None, insecure: bool, queues: str | None,
              max_tasks: int | None, loglevel: str) -> None:
    """Serve a live web view of workers, queues and tasks (extra 'dashboard')."""
    import logging

    logging.basicConfig(level=loglevel.upper(),
                        format="[%(asctime)s: %(levelname)s] %(message)s")
    if basic_auth is not None and ":" not in basic_auth:
        raise click.BadParameter("give USER:PASS", param_hint="'--basic-auth'")
    try:
        from celeriac.dashboard import Guard, serve
    except ImportError as exc:
        raise click.ClickException(f"the dashboard needs its extra: pip install "
                                   f"'celeriac[dashboard]' ({exc})") from None
    app = ctx.app
    app.finalize()
    try:
        serve(app, address=address, port=port, guard=Guard(basic_auth, token),
              insecure=insecure, max_tasks=max_tasks,
              queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
