"""Celery's built-in tasks, under Celery's names, registered on every app when it is
finalized: a canvas sent by a Celery client (``task.map``, ``task.chunks``, a chord
on a backend without a native join, ...) runs on celeriac workers as on Celery's.

``celery.map``/``celery.starmap`` call the task's function on each item in the worker;
``celery.chunks`` returns the group of ``celery.starmap`` calls it stands for (as
Celery's does: it is not sent); ``celery.chord_unlock`` waits for a header by retrying
itself (only Celery clients on backends without a join send it; celeriac's join does
not poll); ``celery.group``/``celery.chord`` apply what they are given;
``celery.accumulate`` returns its arguments (``Task.replace`` with a group uses it);
``celery.chain`` is not a real task (as in Celery).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.builtins")


def register_builtins(app: Celery) -> None:
    """Add the built-in tasks to ``app`` (a task of the same name already there stays)."""
    for name, fun, options in BUILTINS:
        if name not in app._tasks:
            app._register(fun, {"name": name, "bind": True, **options})


def _xmap(self: Any, task: Any, it: Any) -> list[Any]:
    from celeriac.canvas import signature

    fun = self.app.tasks[signature(task, app=self.app)["task"]]
    return [fun(item) for item in it]


def _xstarmap(self: Any, task: Any, it: Any) -> list[Any]:
    from celeriac.canvas import signature

    fun = self.app.tasks[signature(task, app=self.app)["task"]]
    return [fun(*item) for item in it]


def _chunks(self: Any, task: Any, it: Any, n: int) -> Any:
    from celeriac.canvas import chunks

    return chunks.apply_chunks(task, it, n, app=self.app)


def _accumulate(self: Any, *args: Any, **kwargs: Any) -> Any:
    index = kwargs.get("index")
    return args[index] if index is not None else args


def _backend_cleanup(self: Any) -> None:
    return None


def _group(self: Any, tasks: Any, result: Any, group_id: str, partial_args: Any,
           add_to_parent: bool = True) -> Any:
    from celeriac.canvas import maybe_signature

    for task in tasks:
        maybe_signature(task, app=self.app).clone(partial_args).apply_async(group_id=group_id)
    return result


def _chain(self: Any, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("chain is not a real task")


def _chord(self: Any, header: Any, body: Any, partial_args: Any = (), interval: Any = None,
           countdown: Any = 1, max_retries: Any = None, eager: bool = False,
           **kwargs: Any) -> Any:
    from celeriac.canvas import chord, group, maybe_signature

    app = self.app
    if isinstance(header, dict) and header.get("subtask_type") == "group":
        header = header.get("kwargs", {}).get("tasks", [])
    head = group([maybe_signature(s, app=app) for s in header], app=app)
    sig = chord(head, maybe_signature(body, app=app), app=app)
    return sig.run(head, sig.body, partial_args, app=app, **kwargs).id


def _unlock_chord(self: Any, group_id: str, callback: Any, interval: float | None = None,
                  max_retries: int | None = None, result: Any = None, **kwargs: Any) -> None:
    from celeriac.canvas import maybe_signature
    from celeriac.errors import ChordError
    from celeriac.result_group import GroupResult, result_from_tuple

    app = self.app
    deps: GroupResult[Any] = GroupResult(
        group_id, [result_from_tuple(r, app) for r in result or []], app=app)
    if not deps.ready():
        raise self.retry(countdown=1.0 if interval is None else interval,
                         max_retries=max_retries)
    body = maybe_signature(callback, app=app)
    try:
        values = deps.join(propagate=True, disable_sync_subtasks=False)
    except Exception as exc:
        culprit = next((r for r in deps.results if r.failed()), None)
        reason = f"Dependency {culprit.id} raised {exc!r}" if culprit else repr(exc)
        logger.error("Chord %s: %s", group_id, reason)
        _fail_body_sync(app, body, ChordError(reason))
        return
    body.delay(values)


BUILTINS: list[tuple[str, Any, dict[str, Any]]] = [
    ("celery.map", _xmap, {}),
    ("celery.starmap", _xstarmap, {}),
    ("celery.chunks", _chunks, {}),
    ("celery.accumulate", _accumulate, {}),
    ("celery.backend_cleanup", _backend_cleanup, {}),
    ("celery.group", _group, {}),
    ("celery.chain", _chain, {}),
    ("celery.chord", _chord, {"ignore_result": False}),
    ("celery.chord_unlock", _unlock_chord, {"max_retries": None, "ignore_result": True}),
]


def _fail_body_sync(app: Celery, body: Any, exc: BaseException) -> None:
    """``chords.fail_body`` from a task's thread (the chord_unlock path)."""
    from celeriac.chords import fail_body
    from celeriac.context import current_request
    from celeriac.protocol import TaskCall

    request = current_request.get()
    call = TaskCall(str(request.id or ""), "celery.chord_unlock", [], {}, None, None, None,
                    None, {"root_id": getattr(request, "root_id", None)})

    async def fail() -> None:
        backend = await app.clients.backend()
        await fail_body(app, backend, body, exc, call)

    app.run_sync(fail())
