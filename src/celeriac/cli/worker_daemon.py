"""The worker command's daemon options: ``--detach``, ``--pidfile``, ``--logfile``,
``--uid/--gid/--umask/--workdir``, ``--autoscale``, ``-O``, time limits.

Kept apart from cli/worker.py so that file stays the list of options; the daemon work
itself is in worker/daemon.py and worker/nodenames.py.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from celeriac.errors import ConfigurationError
from celeriac.worker.daemon import Pidfile, check_logfile, detach
from celeriac.worker.nodenames import node_format
from celeriac.worker.worker import expand_hostname

if TYPE_CHECKING:  # generic from click 8.2; the project accepts 8.1
    _ParamType = click.ParamType[tuple[int, int], Any]
else:
    _ParamType = click.ParamType


class Autoscale(_ParamType):
    """``--autoscale=MAX,MIN`` (or ``MAX``: min 0); the larger number is the max."""

    name = "max,min"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            self.fail(f"{value!r} is not MAX,MIN: two whole numbers, e.g. --autoscale=10,3",
                      param, ctx)
        if len(numbers) > 2 or any(n < 0 for n in numbers) or max(numbers) < 1:
            self.fail(f"{value!r} is not MAX,MIN: two whole numbers, MAX at least 1, e.g. "
                      f"--autoscale=10,3", param, ctx)
        high, low = max(numbers), (min(numbers) if len(numbers) == 2 else 0)
        return high, low


#: what -O means here (Celery: "default" or "fair")
OPTIMIZATIONS = click.Choice(["default", "fair"], case_sensitive=False)
FAIR_NOTE = ("-O fair is how celeriac always hands out tasks: a task goes to a pool slot "
             "(prefork child, thread) only when it is free, never queued behind a busy one")


def daemon_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options Celery's worker shares with its other daemons."""
    for option in reversed([
        click.option("-D", "--detach", is_flag=True,
                     help="Start the worker in the background (a daemon)."),
        click.option("--pidfile", help="Write the pid here (%n, %h, %p expand); refuse "
                     "to start if that worker runs."),
        click.option("--uid", help="Run as this user (name or id; root only)."),
        click.option("--gid", help="Run as this group (name or id; root only)."),
        click.option("--umask", help="umask of the detached worker (e.g. 022)."),
        click.option("--workdir", type=click.Path(file_okay=False),
                     help="Working directory of the detached worker (default: here)."),
        click.option("--executable", help="Python to run the detached worker with."),
        click.option("--autoscale", type=Autoscale(),
                     help="MAX,MIN: grow the pool to MAX under load, shrink to MIN."),
        click.option("--time-limit", type=click.FloatRange(min=0, min_open=True),
                     help="Hard time limit of every task, in seconds."),
        click.option("--soft-time-limit", type=click.FloatRange(min=0, min_open=True),
                     help="Soft time limit of every task, in seconds."),
    ]):
        fn = option(fn)
    return fn


def detach_argv(argv: list[str]) -> list[str]:
    """The command line the daemon runs: ours without --detach/-D, --uid, --gid,
    --executable (the detaching process has dealt with them)."""
    out: list[str] = []
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
            continue
        if arg in ("--detach", "-D"):
            continue
        name = arg.split("=", 1)[0]
        if name in ("--uid", "--gid", "--executable", "--umask", "--workdir"):
            skip_next = "=" not in arg
            continue
        out.append(arg)
    return out


def maybe_detach(options: dict[str, Any], hostname: str | None) -> bool:
    """``--detach``: start the daemon and return True (the caller exits 0)."""
    if not options.get("detach"):
        return False
    nodename = expand_hostname(hostname)
    logfile = options.get("logfile")
    pidfile = options.get("pidfile")
    argv = ["-m", "celeriac", *detach_argv(sys.argv[1:])]
    if options.get("executable"):
        sys.executable = options["executable"]
    try:
        detach(argv, logfile=node_format(logfile, nodename) if logfile else None,
               pidfile=node_format(pidfile, nodename) if pidfile else None,
               uid=options.get("uid"), gid=options.get("gid"), umask=options.get("umask"),
               workdir=options.get("workdir"))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    return True


def log_to_file(logfile: str, nodename: str, fmt: str, replace_stderr: bool = True) -> None:
    """``--logfile``: the worker logs there instead of stderr (Celery's %n %i %I %p); the
    application's own handlers stay when it keeps the root logger
    (``worker_hijack_root_logger=False``)."""
    path = node_format(logfile, nodename)
    try:
        check_logfile(path)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="'--logfile'") from None
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers) if replace_stderr else ():
        if isinstance(old, logging.StreamHandler) and not isinstance(
                old, logging.FileHandler):
            root.removeHandler(old)
    root.addHandler(handler)


@contextlib.contextmanager
def pidlock(pidfile: str | None, nodename: str) -> Iterator[None]:
    """``--pidfile``: hold it while the worker runs; refuse if that worker runs."""
    if not pidfile:
        yield
        return
    lock = Pidfile(node_format(pidfile, nodename))
    try:
        lock.acquire()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield
    finally:
        lock.release()


__all__ = ["FAIR_NOTE", "OPTIMIZATIONS", "Autoscale", "daemon_options", "detach_argv",
           "log_to_file", "maybe_detach", "pidlock"]
