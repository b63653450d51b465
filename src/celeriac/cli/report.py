"""``celeriac -A APP report``: celeriac/report.py's text, as ``celery report`` prints it."""

from __future__ import annotations

import click

from celeriac.cli.main import AppContext, app_option
from celeriac.report import report_text


@click.command()
@app_option
@click.pass_obj
def report(ctx: AppContext) -> None:
    """Versions, platform and settings (secrets masked) for a bug report."""
    click.echo(report_text(ctx.app))
