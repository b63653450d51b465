"""``celeriac multi``'s command line: node names and per-node options, as Celery's.

    celeriac multi start 3 -c 2               celery1@host celery2@host celery3@host
    celeriac multi start image video -c 3 -c:image 10
    celeriac multi start 5 -Q:1-3 images,video -Q default
    celeriac multi start w1@%h --pidfile=/var/run/celery/%n.pid

Parsing follows Celery's ``NamespacedOptionParser``: a short option takes the next word
as its value unless it starts with ``-``; a long one has a value only after ``=``
(``--logfile=x``); ``-c:1-3 10``, ``-c:1,2 10`` and ``-c:image 10`` apply to those
nodes only; everything after ``--`` is passed to each worker as it is. In the
pidfile/logfile templates ``%n`` is the node's short name, ``%h`` its full node name,
``%d`` its host; ``%i``/``%I`` are left for the worker (its process index).
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass, field

from celeriac.worker.nodenames import expand

#: Celery multi's defaults: an init script's layout
DEFAULT_PIDFILE = "/var/run/celery/%n.pid"
DEFAULT_LOGFILE = "/var/log/celery/%n%I.log"
#: options that go before the ``worker`` word (they belong to ``celeriac`` itself)
GLOBAL_OPTIONS = ("-A", "--app", "-b", "--broker", "--result-backend")
#: options multi reads itself and does not hand to the workers
MULTI_OPTIONS = ("--cmd", "--append", "--hostname", "-n", "--prefix", "--suffix",
                 "--range-prefix", "--executable")


@dataclass
class ParsedArgs:
    values: list[str] = field(default_factory=list)
    options: dict[str, str | None] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str | None]] = field(default_factory=dict)
    passthrough: list[str] = field(default_factory=list)


def parse_args(args: list[str]) -> ParsedArgs:
    """Celery's NamespacedOptionParser (see the module docstring)."""
    parsed = ParsedArgs()
    words = [a for a in args if a]
    pos = 0
    while pos < len(words):
        arg = words[pos]
        if arg == "--":
            parsed.passthrough = words[pos + 1:]
            break
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            _add(parsed, "--", name, value if "=" in arg else None)
        elif arg.startswith("-") and len(arg) > 1:
            value = None
            if pos + 1 < len(words) and not words[pos + 1].startswith("-"):
                value = words[pos + 1]
                pos += 1
            _add(parsed, "-", arg[1:], value)
        else:
            parsed.values.append(arg)
        pos += 1
    return parsed


def _add(parsed: ParsedArgs, prefix: str, name: str, value: str | None) -> None:
    if ":" in name:
        name, namespace = name.split(":", 1)
        parsed.namespaces.setdefault(namespace, {})[prefix + name] = value
    else:
        parsed.options[prefix + name] = value


@dataclass(eq=False)  # a node is itself: hashable by identity
class Node:
    """One worker of the cluster: its name and the command that starts it."""

    name: str                    # full node name: w1@host
    options: dict[str, str | None]
    passthrough: list[str]
    executable: str = sys.executable

    @property
    def shortname(self) -> str:
        return self.name.split("@", 1)[0]

    def expand(self, template: str) -> str:
        short, _, host = self.name.partition("@")
        return expand(template, {"n": short, "N": short, "h": self.name, "d": host,
                                 "p": self.name, "i": "%i", "I": "%I"})

    @property
    def pidfile(self) -> str:
        return self.expand(self._opt("--pidfile", "-p") or DEFAULT_PIDFILE)

    @property
    def logfile(self) -> str:
        return self.expand(self._opt("--logfile", "-f") or DEFAULT_LOGFILE)

    def _opt(self, *names: str) -> str | None:
        for name in names:
            if self.options.get(name):
                return self.options[name]
        return None

    def argv(self) -> list[str]:
        """``python -m celeriac [global options] worker --detach -n NAME ...``."""
        head = [self.executable, "-m", "celeriac"]
        tail = ["worker", "--detach", "-n", self.name, f"--pidfile={self.pidfile}",
                f"--logfile={self.logfile}"]
        for name, value in self.options.items():
            if name in ("--pidfile", "-p", "--logfile", "-f", "-n"):
                continue
            words = _format_option(name, None if value is None else self.expand(value))
            (head if name in GLOBAL_OPTIONS else tail).extend(words)
        return head + tail + self.passthrough

    def command(self) -> str:
        return " ".join(shlex.quote(word) for word in self.argv())


def _format_option(name: str, value: str | None) -> list[str]:
    if value is None:
        return [name]
    if name.startswith("--"):
        return [f"{name}={value}"]
    return [name, value]


def build_nodes(args: list[str], global_options: dict[str, str | None] | None = None
                ) -> list[Node]:
    """The cluster named by a multi command line (see the module docstring)."""
    parsed = parse_args(args)
    options = dict(global_options or {})
    options.update(parsed.options)
    hostname = options.pop("--hostname", None) or options.pop("-n", None) \
        or socket.gethostname()
    options.pop("-n", None)
    prefix = options.pop("--prefix", None) or ""
    suffix = options.pop("--suffix", None) or hostname
    range_prefix = options.pop("--range-prefix", None) or "celery"
    executable = options.pop("--executable", None) or sys.executable
    for name in ("--cmd", "--append"):
        options.pop(name, None)
    names = parsed.values
    if len(names) == 1 and names[0].isdigit():
        names = [str(n) for n in range(1, int(names[0]) + 1)]
        prefix = range_prefix
    namespaces = _resolve_namespaces(parsed.namespaces, names)
    nodes = []
    for name in names:
        if "@" in name:
            nodename = expand(name, {"h": socket.gethostname(),
                                     "n": socket.gethostname().split(".")[0],
                                     "d": socket.gethostname().partition(".")[2]})
            short = nodename.split("@", 1)[0]
        else:
            short = name
            nodename = f"{prefix}{name}@{suffix}"
        merged = dict(options)
        for key in (name, short, nodename):
            merged.update(namespaces.get(key, {}))
        nodes.append(Node(nodename, merged, list(parsed.passthrough), executable))
    return nodes


def _resolve_namespaces(namespaces: dict[str, dict[str, str | None]], names: list[str]
                        ) -> dict[str, dict[str, str | None]]:
    """``1-3`` / ``1,2`` / ``2`` / ``image`` -> per node-name options."""
    out: dict[str, dict[str, str | None]] = {}
    for key, opts in namespaces.items():
        for part in key.split(","):
            targets: list[str]
            if "-" in part and all(p.isdigit() for p in part.split("-", 1)):
                start, stop = (int(p) for p in part.split("-", 1))
                targets = [names[i - 1] for i in range(start, stop + 1) if 0 < i <= len(names)]
            elif part.isdigit():
                index = int(part)
                if not 0 < index <= len(names):
                    raise ValueError(f"no node number {index} (nodes are 1..{len(names)})")
                targets = [names[index - 1]]
            else:
                targets = [part]
            for target in targets:
                out.setdefault(target, {}).update(opts)
    return out


def ensure_dirs(node: Node) -> None:
    """Create the pidfile's and logfile's folders (Celery multi does too)."""
    for path in (node.pidfile, node.logfile):
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)


__all__ = ["DEFAULT_LOGFILE", "DEFAULT_PIDFILE", "Node", "ParsedArgs", "build_nodes",
           "ensure_dirs", "parse_args"]
