"""Celery's ``%`` abbreviations in node names, pidfiles and logfiles.

In a template (``-n w1@%h``, ``--pidfile=/var/run/celery/%n.pid``,
``--logfile=/var/log/celery/%n%I.log``):

    %p  the full node name (w1@example.com)     %h  the host part (example.com)
    %n  the name part (w1)                       %d  the domain (com)
    %i  the pool process index: 0 in the main process
    %I  the same with a dash (-1), empty in the main process
    %%  a percent sign
"""

from __future__ import annotations

import re
import socket

_ABBREVIATION = re.compile(r"%(.)")

#: Celery's default name part when a node name has none (``celery@host``)
DEFAULT_NAME = "celery"


def split_nodename(nodename: str) -> tuple[str, str]:
    """'w1@host' -> ('w1', 'host'); 'host' -> ('celery', 'host')."""
    name, sep, host = nodename.partition("@")
    if not sep:
        return DEFAULT_NAME, nodename
    return name or DEFAULT_NAME, host


def expand(template: str, values: dict[str, str]) -> str:
    """Replace ``%x`` by ``values['x']``; unknown abbreviations stay as they are."""
    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "%":
            return "%"
        return values.get(key, match.group(0))

    return _ABBREVIATION.sub(one, template)


def host_format(template: str, host: str | None = None, name: str | None = None,
                **extra: str) -> str:
    """``%h %n %d`` from a host name (this machine's by default), plus ``extra``."""
    host = host or socket.gethostname()
    short, _, domain = host.partition(".")
    values = {"h": host, "n": name or short, "d": domain, "i": "0", "I": ""}
    values.update(extra)
    return expand(template, values)


def node_format(template: str, nodename: str, process_index: int = 0) -> str:
    """A pidfile or logfile template for one worker node (Celery's ``node_format``)."""
    name, host = split_nodename(nodename)
    return host_format(template, host, name, p=nodename,
                       i=str(process_index), I=f"-{process_index}" if process_index else "")


__all__ = ["DEFAULT_NAME", "expand", "host_format", "node_format", "split_nodename"]
