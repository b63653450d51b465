"""``celeriac [-A APP] COMMAND``: the command group, and finding the app like Celery does."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from celeriac import __version__
from celeriac.app import Celery
from celeriac.errors import CeleriacError

T = TypeVar("T")


def find_app(spec: str) -> Celery:
    """``-A``: 'module', 'module:attr' or 'module.attr'. In a module, an attribute named
    ``app`` or ``celery`` wins, else the only Celery instance in it (``celery_app``), else
    the module's ``celery`` submodule, as Celery does."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if attr or "." not in module_name or exc.name != module_name:
            raise click.UsageError(
                f"cannot load the app {spec!r}: module {exc.name!r} not found "
                f"(run from the folder that contains it, or fix -A)") from None
        module_name, _, attr = module_name.rpartition(".")
        module = importlib.import_module(module_name)
    if attr:
        found = getattr(module, attr, None)
        if isinstance(found, Celery):
            return found
        raise click.UsageError(f"cannot load the app {spec!r}: {attr!r} is not a Celery app")
    for name in ("app", "celery"):
        found = getattr(module, name, None)
        if isinstance(found, Celery):
            return found
    apps = [v for v in vars(module).values() if isinstance(v, Celery)]
    if len(apps) == 1:
        return apps[0]
    if len(apps) > 1:
        raise click.UsageError(f"{spec!r} holds several Celery apps; name one: -A {spec}:NAME")
    try:
        return find_app(f"{module_name}.celery")
    except click.UsageError:
        raise click.UsageError(f"cannot load the app {spec!r}: no Celery app in it") from None


def run(coro: Awaitable[T]) -> T:
    """Run a CLI coroutine; celeriac errors become one line, exit status 1."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None


class AppContext:
    """What subcommands get: the app, loaded on first use."""

    def __init__(self, spec: str | None, broker: str | None, backend: str | None) -> None:
        self.spec = spec
        self.broker = broker
        self.backend = backend
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        if self._app is None:
            if not self.spec:
                raise click.UsageError("no app given: use celeriac -A your.module COMMAND")
            self._app = find_app(self.spec)
            if self.broker:
                self._app.conf.broker_url = self.broker
            if self.backend:
                self._app.conf.result_backend = self.backend
        return self._app


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "app_spec", metavar="MODULE", help="Where the app is: "
              "module, module:attr or module.attr (as Celery's -A).")
@click.option("-b", "--broker", help="Broker URL, overriding the app's configuration.")
@click.option("--result-backend", help="Result backend URL, overriding the configuration.")
@click.version_option(__version__, "--version", prog_name="celeriac")
@click.pass_context
def cli(ctx: click.Context, app_spec: str | None, broker: str | None,
        result_backend: str | None) -> None:
    """celeriac: Celery's API and wire format, reliable by default."""
    if isinstance(ctx.obj, AppContext):  # app.worker_main(): the app is chosen already
        return
    ctx.obj = AppContext(app_spec, broker, result_backend)


def app_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Also accept -A after the subcommand (``celeriac worker -A proj``, Celery 4 style)."""

    def remember(ctx: click.Context, _param: Any, value: str | None) -> None:
        if value:
            ctx.find_object(AppContext).spec = value  # type: ignore[union-attr]

    return click.option("-A", "--app", "app_spec", expose_value=False, callback=remember,
                        is_eager=True, help="Where the app is (same as before the command).")(fn)


def _register_commands() -> None:
    from celeriac.cli import (
        beat,
        calls,
        dashboard,
        dlq,
        events,
        list_cmd,
        migrate,
        multi,
        purge,
        remote,
        report,
        shell,
        worker,
    )

    cli.add_command(worker.worker)
    cli.add_command(beat.beat)
    cli.add_command(purge.purge)
    cli.add_command(calls.call)
    cli.add_command(calls.result)
    cli.add_command(dlq.dlq)
    cli.add_command(remote.inspect)
    cli.add_command(remote.control)
    cli.add_command(remote.status)
    cli.add_command(dashboard.dashboard)
    cli.add_command(multi.multi)
    cli.add_command(shell.shell)
    cli.add_command(report.report)
    cli.add_command(list_cmd.list_)
    cli.add_command(events.events)
    cli.add_command(migrate.migrate)


_register_commands()


def main() -> None:
    cli(prog_name="celeriac")


def run_cli_for_app(app: Celery, argv: list[str]) -> None:
    """``app.worker_main([...])``: the CLI with this app already chosen."""
    context = AppContext(None, None, None)
    context._app = app
    cli.main(args=argv, prog_name="celeriac", obj=context, standalone_mode=True)
