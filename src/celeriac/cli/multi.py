"""``celeriac multi start|stop|stopwait|restart|kill|show|names``: Celery's ``celery
multi`` for init scripts: start several detached workers, stop them by their pidfiles.

    celeriac -A proj multi start w1 w2 -c 4 --pidfile=/var/run/celery/%n.pid \\
        --logfile=/var/log/celery/%n%I.log
    celeriac multi stopwait w1 w2 --pidfile=/var/run/celery/%n.pid

Give ``stop`` the same names and ``--pidfile`` as ``start``: nothing is stored between
the two. ``stop`` sends SIGTERM (or ``-KILL``, ``-INT``, ``-9``...) and returns;
``stopwait`` waits until each worker has finished its running tasks and exited;
``restart`` does a ``stopwait`` and starts each node again as it goes down. Node names
and per-node options: worker/multi_nodes.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import click

from celeriac import __version__
from celeriac.cli.main import AppContext
from celeriac.worker.daemon import Pidfile, is_alive
from celeriac.worker.multi_nodes import Node, build_nodes, ensure_dirs

USAGE = """\
usage: celeriac multi start <node1 node2 nodeN|range> [worker options]
       celeriac multi stop <n1 n2 nN|range> [-SIG (default: -TERM)]
       celeriac multi stopwait <n1 n2 nN|range> [-SIG (default: -TERM)]
       celeriac multi restart <n1 n2 nN|range> [-SIG] [worker options]
       celeriac multi kill <n1 n2 nN|range>
       celeriac multi show <n1 n2 nN|range> [worker options]
       celeriac multi names <n1 n2 nN|range>

Long options need '=' (--pidfile=/var/run/celery/%n.pid); give stop the same names and
--pidfile as start. Options: --nosplash, -q/--quiet, --verbose."""

_SIGNAL_ARG = re.compile(r"^-([A-Z][A-Z0-9]+|\d+)$")
#: seconds between two looks at the nodes stopwait waits for
POLL_S = 0.5


class Multi:
    """The multi program: one method per command, Celery's output."""

    def __init__(self, quiet: bool, nosplash: bool, verbose: bool) -> None:
        self.quiet, self.nosplash, self.verbose = quiet, nosplash, verbose

    def note(self, text: str, newline: bool = True) -> None:
        if not self.quiet:
            click.echo(text, nl=newline)

    def splash(self) -> None:
        if not self.nosplash:
            self.note(f"celeriac multi v{__version__}")

    # -- commands -----------------------------------------------------------------------
    def start(self, nodes: list[Node]) -> int:
        self.splash()
        self.note("> Starting nodes...")
        return int(any([self._start(node, "\t> {}: ") for node in nodes]))

    def _start(self, node: Node, heading: str) -> int:
        self.note(heading.format(node.name), newline=False)
        try:
            ensure_dirs(node)
        except OSError as exc:
            self.note("FAILED")
            self.note(f"* cannot create {exc.filename}: {exc.strerror} (set --pidfile= and "
                      f"--logfile= to folders you may write)")
            return 1
        if self.verbose:
            self.note(f"\n  {node.command()}")
        code = subprocess.run(node.argv(), env=os.environ.copy()).returncode
        self.note("FAILED" if code else "OK")
        if code < 0:
            self.note(f"* Child was terminated by signal {-code}")
        elif code > 0:
            self.note(f"* Child terminated with exit code {code}")
        return code

    def stop(self, nodes: list[Node], sig: int, wait: bool,
             on_down: Callable[[Node], None] | None = None) -> int:
        self.splash()
        running = self._running(nodes, on_down)
        if not running:
            return 0
        self.note("> Stopping nodes...")
        waiting: dict[Node, int] = {}
        for node, pid in running:
            self.note(f"\t> {node.name}: {signal.Signals(sig).name[3:]} -> {pid}")
            try:
                if _is_zombie(pid):  # exited, not yet reaped by init
                    raise ProcessLookupError(pid)
                os.kill(pid, sig)
            except ProcessLookupError:
                self.note(f"Could not signal {node.name} ({pid}): No such process")
                self._down(node, on_down)
                continue
            waiting[node] = pid
        if wait and waiting:
            self._wait(waiting, on_down)
        return 0

    def _running(self, nodes: list[Node], on_down: Callable[[Node], None] | None
                 ) -> list[tuple[Node, int]]:
        running = []
        for node in nodes:
            try:
                pid = Pidfile(node.pidfile).read_pid()
            except ValueError:
                pid = None
            if pid is None:
                self.note(f"> {node.name}: DOWN")
                self._down(node, on_down)
            else:
                running.append((node, pid))
        return running

    def _wait(self, waiting: dict[Node, int], on_down: Callable[[Node], None] | None) -> None:
        count = len(waiting)
        self.note(f"> Waiting for {count} {'node' if count == 1 else 'nodes'} -> "
                  f"{', '.join(str(p) for p in waiting.values())}...", newline=False)
        while waiting:
            time.sleep(POLL_S)
            self.note(".", newline=False)
            for node, pid in list(waiting.items()):
                if not is_alive(pid) or _is_zombie(pid):
                    del waiting[node]
                    self.note(f"\n\t> {node.name}: OK", newline=False)
                    self._down(node, on_down)
        self.note("")

    def _down(self, node: Node, on_down: Callable[[Node], None] | None) -> None:
        if on_down is not None:
            on_down(node)

    def restart(self, nodes: list[Node], sig: int) -> int:
        codes: list[int] = []

        def start_again(node: Node) -> None:
            codes.append(self._start(node, "\n> Restarting node {}: "))

        self.stop(nodes, sig, wait=True, on_down=start_again)
        return int(any(codes))

    def kill(self, nodes: list[Node]) -> int:
        self.splash()
        for node, pid in self._running(nodes, None):
            self.note(f"Sending SIGKILL to node {node.name} ({pid})")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                self.note(f"Could not signal {node.name} ({pid}): No such process")
        return 0


def _is_zombie(pid: int) -> bool:
    """A dead child of ours not yet reaped still answers kill(pid, 0)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _take_signal(args: list[str]) -> tuple[int, list[str]]:
    sig, rest = signal.SIGTERM, []
    for arg in args:
        match = _SIGNAL_ARG.match(arg)
        if match:
            word = match.group(1)
            if word.isdigit():
                sig = signal.Signals(int(word))
                continue
            found = getattr(signal, f"SIG{word}", None)
            if isinstance(found, signal.Signals):
                sig = found
                continue
        rest.append(arg)
    return int(sig), rest


def _take_flags(args: list[str]) -> tuple[dict[str, bool], list[str]]:
    flags = {"quiet": False, "nosplash": False, "verbose": False}
    rest = []
    for arg in args:
        if arg in ("-q", "--quiet"):
            flags["quiet"] = True
        elif arg == "--nosplash":
            flags["nosplash"] = True
        elif arg == "--verbose":
            flags["verbose"] = True
        elif arg == "--no-color":
            pass
        else:
            rest.append(arg)
    return flags, rest


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": []})
@click.argument("command", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def multi(ctx: AppContext, command: str | None, args: tuple[str, ...]) -> None:
    """Start and stop several detached workers (Celery's multi; 'multi help')."""
    commands = ("start", "stop", "stopwait", "stop_verify", "restart", "kill", "show",
                "names", "help")
    if command in (None, "help", "-h", "--help"):
        click.echo(__doc__ if command == "help" else USAGE)
        return
    if command not in commands:
        raise click.UsageError(f"unknown multi command {command!r}: use one of start, stop, "
                               f"stopwait, restart, kill, show, names (see 'multi help')")
    flags, rest = _take_flags(list(args))
    sig, rest = _take_signal(rest)
    global_options: dict[str, str | None] = {}
    if ctx.spec:
        global_options["--app"] = ctx.spec
    if ctx.broker:
        global_options["--broker"] = ctx.broker
    if ctx.backend:
        global_options["--result-backend"] = ctx.backend
    try:
        nodes = build_nodes(rest, global_options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not nodes:
        raise click.UsageError(f"name the nodes: celeriac multi {command} w1 w2 (or a "
                               f"number: multi {command} 3)")
    sys.exit(_dispatch(Multi(**flags), command, nodes, sig))


def _dispatch(tool: Multi, command: str, nodes: list[Node], sig: int) -> int:
    if command == "show":
        click.echo("\n".join(node.command() for node in nodes))
        return 0
    if command == "names":
        click.echo("\n".join(node.name for node in nodes))
        return 0
    if command == "start":
        return tool.start(nodes)
    if command == "restart":
        return tool.restart(nodes, sig)
    if command == "kill":
        return tool.kill(nodes)
    return tool.stop(nodes, sig, wait=command != "stop")
