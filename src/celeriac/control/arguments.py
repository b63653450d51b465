"""Positional CLI arguments -> a command's keyword arguments, as Celery's CLI converts
them (``celery control rate_limit tasks.add 10/s``): in order by the command's ``args``
(each converted), the rest as a list under its ``variadic`` name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celeriac.control.commands import CommandInfo


def compile_arguments(method: str, info: CommandInfo, args: Sequence[str]) -> dict[str, Any]:
    """Raises ValueError, with the command's signature, for arguments it cannot take."""
    specs = list(info.args or ())
    if len(args) > len(specs) and not info.variadic:
        raise ValueError(f"Command {method!r} takes arguments: {info.signature or '(none)'}")
    arguments: dict[str, Any] = {}
    for (name, convert), value in zip(specs, args, strict=False):
        try:
            arguments[name] = convert(value) if convert is not None else value
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Command {method!r}: {name}={value!r}: {exc} "
                             f"(takes: {info.signature or name})") from None
    if info.variadic:
        arguments[info.variadic] = list(args[len(specs):])
    return arguments
