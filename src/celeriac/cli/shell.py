"""``celeriac -A APP shell``: a Python shell with the app, its tasks and the canvas
preloaded, as ``celery shell``: ``app`` and ``celery`` (the app), each task by its
function's name (``add``), ``Task``, ``signature``, ``subtask``, ``chain``, ``group``,
``chord``, ``chunks``, ``xmap``, ``xstarmap``. IPython when it is installed (``--python``
for the plain shell), bpython with ``--bpython``."""

from __future__ import annotations

import code
import importlib
from typing import Any

import click

from celeriac.cli.main import AppContext, app_option


def shell_locals(app: Any, with_tasks: bool = True) -> dict[str, Any]:
    """The names the shell starts with."""
    import celeriac
    from celeriac import canvas

    names: dict[str, Any] = {"app": app, "celery": app, "Task": celeriac.Task,
                             "signature": canvas.signature, "subtask": canvas.signature}
    for name in ("chain", "group", "chord", "chunks", "xmap", "xstarmap"):
        found = getattr(celeriac, name, None)
        if found is not None:
            names[name] = found
    if with_tasks:
        app.finalize()
        for task in app.tasks.values():
            if task.name.startswith("celery."):
                continue
            short = getattr(getattr(task, "run", None), "__name__", None) or \
                task.name.rsplit(".", 1)[-1]
            names.setdefault(short, task)
    return names


@click.command()
@app_option
@click.option("--ipython", "kind", flag_value="ipython", help="Use IPython.")
@click.option("--bpython", "kind", flag_value="bpython", help="Use bpython.")
@click.option("--python", "kind", flag_value="python", help="Use the plain Python shell.")
@click.option("-T", "--without-tasks", is_flag=True, help="Do not preload the tasks.")
@click.pass_obj
def shell(ctx: AppContext, kind: str | None, without_tasks: bool) -> None:
    """A Python shell with the app and its tasks loaded."""
    names = shell_locals(ctx.app, not without_tasks)
    if kind in (None, "ipython"):
        try:
            ipython = importlib.import_module("IPython")  # optional, untyped
        except ImportError:
            if kind == "ipython":
                raise click.UsageError("IPython is not installed: pip install ipython, or "
                                       "use --python") from None
        else:
            ipython.start_ipython(argv=[], user_ns=names)
            return
    if kind == "bpython":
        try:
            bpython = importlib.import_module("bpython")
        except ImportError:
            raise click.UsageError("bpython is not installed: pip install bpython, or use "
                                   "--python") from None
        bpython.embed(names)
        return
    banner = "celeriac shell: " + ", ".join(sorted(names))
    code.interact(banner=banner, local=names, exitmsg="")
