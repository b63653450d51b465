"""Groups, chords, chunks and maps: the parallel half of the canvas.

Sent exactly as Celery 5.7 sends them: each member of a group is its own message with
the ``group`` header (the group id) and ``group_index``; a chord's header tasks also
carry the body signature in the ``chord`` field of their embed, the body frozen with
its task id and ``group_id``. The header's size is written to the result backend
before its members are sent (``celeriac.chords.set_size``: Redis
``celery-taskset-meta-<gid>.s``), and the task that completes the header sends the
body (``celeriac.chords``). Bad input fails at send time with TypeError (a header that
is not signatures) or ValueError (a group id a saved group has). Import these from
``celeriac`` or ``celeriac.canvas``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from celeriac.canvas import (
    Signature,
    _as_list,
    _kwarg,
    chain,
    maybe_signature,
)
from celeriac.protocol import Message, new_id

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.result import AsyncResult
    from celeriac.result_group import GroupResult

R = TypeVar("R")


#: a group's members are published this many per broker round trip
_BATCH = 1000


def _member_message(app: Celery, sig: Signature[Any], kwargs: Any, body: Any,
                    options: dict[str, Any]) -> tuple[Message, float | None] | None:
    """The message ``sig.apply_async(kwargs=kwargs, chord=body, **options)`` would
    publish, built the same way (routing, the task's options, signing); None for a
    canvas or a task class with its own ``apply_async`` (sent as themselves)."""
    from celeriac.task import Task

    if sig.get("subtask_type"):
        return None
    task = app.tasks.get(sig["task"])
    if task is not None and type(task).apply_async is not Task.apply_async:
        return None
    call_options = {k: v for k, v in options.items() if v is not None}
    if body is not None:
        call_options["chord"] = body
    args, call_kwargs, merged = sig._merge(None, kwargs, call_options)
    merged.pop("add_to_parent", None)
    return app._build_message(sig["task"], args, call_kwargs, task, merged)


def _send_copy(sig: Signature[Any]) -> Signature[Any]:
    """A member's copy to freeze and send, so the caller's signature is left as it was.
    A plain task's copy shares the values of its options: sending only reads them, and
    a deep copy of each member's options (a chord's header tasks each carry the body)
    was the biggest cost of sending a chord. A canvas member is cloned in full."""
    if sig.get("subtask_type") or type(sig) is not Signature:
        return sig.clone()  # type: ignore[no-any-return]
    return Signature({"task": sig["task"], "args": list(sig.get("args") or ()),
                      "kwargs": dict(sig.get("kwargs") or {}),
                      "options": dict(sig.get("options") or {}), "subtask_type": None,
                      "immutable": bool(sig.get("immutable"))}, app=sig._app)


def _header_copy(header: group[Any]) -> group[Any]:
    """A chord's header to send: its own options, the same members (``freeze_members``
    clones each before it changes it; a full ``clone`` here cloned them twice)."""
    sig = group(list(header.tasks), app=header._app)
    sig["options"] = copy.deepcopy(dict(header.get("options") or {}))
    sig["args"], sig["immutable"] = list(header.get("args") or ()), header.get("immutable")
    return sig


def _publish(app: Celery, batch: list[Message]) -> None:
    """Publish the batch in one call (one broker round trip) and empty it."""
    if batch:
        app.publish_many_blocking(list(batch), None)
        batch.clear()


def _member(task: Any, app: Celery | None, kind: str) -> Signature[Any]:
    """One member of a group or chord header as a signature, or a clear TypeError."""
    sig = maybe_signature(task, app=app)
    if not isinstance(sig, Signature):
        raise TypeError(f"{kind} members must be signatures (task.s(...)), got "
                        f"{type(task).__name__}: {task!r}")
    return sig


def _header(header: Any, app: Celery | None) -> group[Any]:
    """A chord's header as a group, as Celery reads it: a group, a list (or any
    iterable) of signatures, one signature, or a chain (its steps)."""
    if isinstance(header, dict) and not isinstance(header, Signature):
        header = maybe_signature(header, app=app)
    if isinstance(header, group):
        return header
    if isinstance(header, chain):
        return group(list(header.tasks), app=app)
    if isinstance(header, Signature):
        return group([header], app=app)
    if header is None or isinstance(header, (str, bytes)) \
            or not isinstance(header, Iterable):
        raise TypeError(f"a chord's header must be a group or a list of signatures, got "
                        f"{type(header).__name__}: {header!r}")
    return group([_member(t, app, "chord header") for t in header], app=app)


def maybe_unroll_group(g: Any) -> Any:
    """A group of one task is that task."""
    if isinstance(g, group) and len(g.tasks) == 1:
        return g.tasks[0]
    return g


class group(Signature[Any], Generic[R]):
    """``group(a.s(1), a.s(2))``: call them all at once; returns a GroupResult.
    ``group[R]``: of signatures of tasks that return R (``GroupResult[R]``,
    ``get()`` is ``list[R]``)."""

    tasks = _kwarg("tasks")

    @classmethod
    def from_dict(cls, d: dict[str, Any], app: Celery | None = None) -> Signature[Any]:
        tasks = [maybe_signature(t, app=app) for t in (d.get("kwargs") or {}).get("tasks", ())]
        sig = cls(tasks, app=app, **(d.get("options") or {}))
        sig["immutable"] = bool(d.get("immutable"))
        return sig

    @overload
    def __init__(self, __tasks: Iterable[Signature[R]], *, app: Celery | None = None,
                 **options: Any) -> None: ...

    @overload
    def __init__(self, *tasks: Signature[R], app: Celery | None = None,
                 **options: Any) -> None: ...

    @overload
    def __init__(self: group[Any], *tasks: Any, app: Celery | None = None,
                 **options: Any) -> None: ...

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        if len(tasks) == 1:
            only = tasks[0]
            if isinstance(only, group):
                tasks = tuple(only.tasks)
            elif isinstance(only, Signature):
                tasks = (only.clone(),)
            elif isinstance(only, (str, bytes)):
                raise TypeError(f"group() takes signatures (task.s(...)), not a string: "
                                f"{only!r}")
            elif isinstance(only, Iterable) and not isinstance(only, dict):
                tasks = tuple(only)
        members = [_member(t, app, "group") for t in tasks]
        super().__init__("celery.group", (), {"tasks": members}, options,
                         subtask_type="group", app=app)

    @property
    def app(self) -> Celery:
        if self._app is None and self.tasks:
            return self.tasks[0].app  # type: ignore[no-any-return]
        return super().app

    def __len__(self) -> int:
        return len(self.tasks)

    def __bool__(self) -> bool:
        return True

    def clone(self, args: Any = None, kwargs: Any = None, **opts: Any) -> Any:
        sig = super().clone(args, kwargs, **opts)
        sig["kwargs"]["tasks"] = [maybe_signature(t, app=self._app, clone=True)
                                  for t in self["kwargs"]["tasks"]]
        return sig

    def __call__(self, *partial_args: Any, **options: Any) -> GroupResult[R]:
        return self.apply_async(partial_args, **options)

    def __or__(self, other: Any) -> Any:
        if isinstance(other, group) and not other.tasks:
            return self
        return _chord(self, body=other, app=self._app)  # group | task -> chord

    def set_immutable(self, immutable: bool) -> None:
        for task in self.tasks:
            task.set_immutable(immutable)

    def link(self, sig: Any) -> Any:
        """Celery links a group's callback to its first task, made immutable (the others'
        results cannot reach it): use a chord to get them all."""
        sig = maybe_signature(sig, app=self._app).clone()
        sig.set(immutable=True)
        return self.tasks[0].link(sig)

    def link_error(self, sig: Any) -> Any:
        sig = maybe_signature(sig, app=self._app)
        return tuple(task.link_error(sig.clone()) for task in self.tasks)

    # -- sending -------------------------------------------------------------------
    def apply_async(  # type: ignore[override]  # a GroupResult, not an AsyncResult
            self, args: Any = None, kwargs: Any = None, add_to_parent: bool = True,
            link: Any = None, link_error: Any = None, **options: Any) -> GroupResult[R]:
        if link is not None:
            raise TypeError("Cannot add link to group: use a chord")
        if link_error is not None:
            raise TypeError("Cannot add link to group: do that on individual tasks")
        app = self.app
        if app.send_defaults().always_eager:
            return self.apply(args, kwargs, **options)  # type: ignore[no-any-return]
        if not self.tasks:
            return self.freeze()
        if options.get("task_id") and options.get("chord") is None \
                and not any((t.get("options") or {}).get("chord") for t in self.tasks):
            from celeriac.chords import check_group_id

            check_group_id(app, options["task_id"])  # a chord checks in set_size
        options = {**(self.get("options") or {}), **{k: v for k, v in options.items()
                                                     if v is not None}}
        group_id = options.pop("task_id", None) or new_id()
        options["group_id"] = group_id
        members = list(self._prepared(self.tasks, list(args or ()), group_id,
                                      options.get("root_id"), app))
        results = self._send(members, app, kwargs, options)
        from celeriac.result_group import GroupResult

        result: GroupResult[R] = GroupResult(group_id, results, app=app)
        only = result.results[0] if len(result.results) == 1 else None
        return only if isinstance(only, GroupResult) else result

    def _prepared(self, tasks: list[Any], partial_args: list[Any], group_id: str,
                  root_id: str | None, app: Celery) -> Iterable[tuple[Signature[Any], Any]]:
        """Each member cloned and frozen in the group (nested groups flattened into it)."""
        for index, task in enumerate(tasks):
            sig = _send_copy(maybe_signature(task, app=app))
            if isinstance(sig, group):
                yield from self._prepared(sig.tasks, partial_args, group_id, root_id, app)
                continue
            if isinstance(sig, chain) and not sig.tasks:
                continue
            if partial_args and not sig.get("immutable"):
                sig["args"] = [*partial_args, *sig["args"]]
            yield sig, sig.freeze(group_id=group_id, root_id=root_id, group_index=index)

    def _send(self, members: list[tuple[Signature[Any], Any]], app: Celery, kwargs: Any,
              options: dict[str, Any]) -> list[Any]:
        """Send every member; with a chord, the header's size goes to the backend first
        (Celery writes it before the last member: first is as safe, and a collision
        with a saved group's id is refused before anything is sent)."""
        from celeriac.chords import set_size

        chord_obj = options.pop("chord", None)
        options.pop("group_index", None)
        bodies = [chord_obj if chord_obj is not None else sig["options"].get("chord")
                  for sig, _ in members]
        if any(body is not None for body in bodies):
            set_size(app, options["group_id"], sum(_chord.descend(sig) for sig, _ in members))
        batch: list[Message] = []
        for (sig, _), body in zip(members, bodies, strict=True):
            built = _member_message(app, sig, kwargs, body, options)
            if built is None or built[1] is not None:  # a canvas, or due later
                _publish(app, batch)
                if built is None:
                    sig.apply_async(kwargs=kwargs, chord=body, add_to_parent=False,
                                    **options)
                else:
                    app.publish_many_blocking([built[0]], built[1])
                continue
            batch.append(built[0])
            if len(batch) >= _BATCH:
                _publish(app, batch)
        _publish(app, batch)
        return [res for _, res in members]

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run every member here, now; a GroupResult of their eager results."""
        from celeriac.result_group import GroupResult

        app = self.app
        group_id = options.pop("task_id", None) or new_id()
        results = [maybe_signature(task, app=app).clone().apply(args, kwargs)
                   for task in self.tasks]
        return GroupResult(group_id, results, app=app)

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               chord: Any = None, root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> GroupResult[R]:
        from celeriac.result_group import GroupResult

        gid, results = self.freeze_members(_id, group_id, chord, root_id, parent_id,
                                           group_index)
        return GroupResult(gid, results, app=self.app)

    def freeze_members(self, _id: str | None = None, group_id: str | None = None,
                       chord: Any = None, root_id: str | None = None,
                       parent_id: str | None = None, group_index: int | None = None
                       ) -> tuple[str, list[Any]]:
        """Fix the group's id and each member's (nested groups flattened); returns
        (group id, member results)."""
        opts = self.setdefault("options", {})
        gid = opts.setdefault("task_id", new_id())
        if group_id:
            opts["group_id"] = group_id
        if chord:
            opts["chord"] = chord
        if group_index is not None:
            opts["group_index"] = group_index
        root_id = opts.setdefault("root_id", root_id)
        parent_id = opts.setdefault("parent_id", parent_id)
        flat: list[Signature[Any]] = []
        results = []
        pending = list(self.tasks)
        while pending:
            task = maybe_signature(pending.pop(0), app=self._app).clone()
            if isinstance(task, group):
                pending[:0] = task.tasks
                continue
            if isinstance(task, chain) and not task.tasks:
                continue
            results.append(task.freeze(group_id=group_id, chord=chord, root_id=root_id,
                                       parent_id=parent_id, group_index=len(flat)))
            flat.append(task)
        self["kwargs"]["tasks"] = flat
        return gid, results

    def __repr__(self) -> str:
        return f"group({list(self.tasks)!r})" if self.tasks else "group(<empty>)"


class _chord(Signature[R]):
    """``chord(header, body)``: run the header's tasks in parallel, then the body with
    the list of their results (in header order). The body runs exactly once; see
    ``celeriac.chords``. ``chord[R]``: its body returns R (``AsyncResult[R]``)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any], app: Celery | None = None) -> Signature[Any]:
        kwargs = dict(d.get("kwargs") or {})
        header, body = kwargs.pop("header", None), kwargs.pop("body", None)
        sig = cls(header, body, app=app, kwargs=kwargs, **(d.get("options") or {}))
        sig["args"], sig["immutable"] = list(d.get("args") or ()), bool(d.get("immutable"))
        return sig

    @overload
    def __init__(self: _chord[Any], header: Any, body: None = None,
                 task: str = "celery.chord", args: Any = None, kwargs: Any = None,
                 app: Celery | None = None, **options: Any) -> None: ...

    @overload
    def __init__(self, header: Any, body: Signature[R], task: str = "celery.chord",
                 args: Any = None, kwargs: Any = None, app: Celery | None = None,
                 **options: Any) -> None: ...

    @overload
    def __init__(self: _chord[Any], header: Any, body: dict[str, Any],
                 task: str = "celery.chord", args: Any = None, kwargs: Any = None,
                 app: Celery | None = None, **options: Any) -> None: ...

    def __init__(self, header: Any, body: Any = None, task: str = "celery.chord",
                 args: Any = None, kwargs: Any = None, app: Celery | None = None,
                 **options: Any) -> None:
        kwargs = dict(kwargs) if kwargs else {"kwargs": {}}
        kwargs.setdefault("kwargs", {})
        kwargs["header"] = _header(header, app)
        kwargs["body"] = maybe_signature(body, app=app)
        super().__init__(task, args or (), kwargs, options, subtask_type="chord", app=app)

    tasks = _kwarg("header")
    body = _kwarg("body")

    @property
    def app(self) -> Celery:
        if self._app is not None:
            return self._app
        header = self.tasks
        if header is not None and header.tasks:
            return header.app  # type: ignore[no-any-return]
        if self.body is not None:
            return self.body.app  # type: ignore[no-any-return]
        return super().app

    def clone(self, args: Any = None, kwargs: Any = None, **opts: Any) -> Any:
        sig = super().clone(args, kwargs, **opts)
        sig["kwargs"]["header"] = maybe_signature(self["kwargs"]["header"], app=self._app,
                                                  clone=True)
        if self["kwargs"].get("body") is not None:
            sig["kwargs"]["body"] = maybe_signature(self["kwargs"]["body"], app=self._app,
                                                    clone=True)
        return sig

    def __call__(self, body: Any = None, **options: Any) -> AsyncResult[R]:
        return self.apply_async((), {"body": body} if body else {}, **options)

    def __or__(self, other: Any) -> Any:
        if isinstance(other, Signature) and not isinstance(other, (group, chain)):
            sig = self.clone()
            sig.body = sig.body | other  # chord | task -> the task follows the body
            return sig
        if isinstance(other, group) and len(other.tasks) == 1:
            sig = self.clone()
            sig.body = sig.body | maybe_unroll_group(other)
            return sig
        return super().__or__(other)

    def set_immutable(self, immutable: bool) -> None:
        for task in self.tasks.tasks:
            task.set_immutable(immutable)

    def link(self, callback: Any) -> Any:
        self.body.link(callback)
        return callback

    def link_error(self, errback: Any) -> Any:
        """On the body (Celery's default, ``task_allow_error_cb_on_chord_header=False``):
        a failed header fails the body with ChordError, which calls it once."""
        errback = maybe_signature(errback, app=self._app)
        for task in self.tasks.tasks:
            if isinstance(task, _chord):
                task.link_error(errback)
        self.body.link_error(errback)
        return errback

    @staticmethod
    def descend(sig: Any) -> int:
        """How many completions a header member reports to its chord (Celery's
        ``_descend``): a task 1, a group its members, a chain its last step, a chord
        its body."""
        if not isinstance(sig, Signature) and isinstance(sig, dict):
            sig = Signature.from_dict(sig)
        if isinstance(sig, group):
            return sum(_chord.descend(t) for t in sig.tasks)
        if isinstance(sig, chain):
            for step in reversed(sig.tasks):
                size = _chord.descend(step)
                if size > 0:
                    return size
            return 0
        if isinstance(sig, _chord):
            return _chord.descend(sig.body)
        return 1

    def unroll_body(self) -> list[Signature[Any]]:
        """``chord(h, a | b | c)`` -> ``[chord(h, a), b, c]``: each header task carries
        the body, so it carries only the first step (as Celery 5.7 sends it)."""
        task = self.clone()
        steps = task.body.unchain_tasks()
        first_options = {k: v for k, v in (task.body.get("options") or {}).items()
                         if k not in _CHAIN_RUN_OPTIONS}
        task.body = steps[0].clone(**first_options)
        return [task, *steps[1:]]

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               chord: Any = None, root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> Any:
        header_result = self.tasks.freeze(parent_id=parent_id, root_id=root_id,
                                          chord=self.body)
        self.setdefault("options", {})["task_id"] = header_result.id
        if self.body is None:
            return None
        body_result = self.body.freeze(_id, root_id=root_id, chord=chord, group_id=group_id,
                                       group_index=group_index)
        node = body_result
        while node is not None:
            if getattr(node, "parent", None) is None:
                node.parent = header_result
                break
            node = node.parent
        return body_result

    # -- sending -------------------------------------------------------------------
    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
                    **options: Any) -> AsyncResult[R]:
        args = tuple(args or ())
        args = (*args, *self["args"]) if args and not self.get("immutable") \
            else tuple(self["args"])
        kwargs = dict(kwargs or {})
        body = kwargs.pop("body", None) or self.body
        if body is None:
            raise TypeError("a chord needs a body: chord(header, body)() or "
                            "chord(header)(body)")
        call_kwargs = {**self["kwargs"].get("kwargs", {}), **kwargs}
        header_delay = {k: options.pop(k) for k in ("countdown", "eta")
                        if options.get(k) is not None}
        callbacks: dict[str, Any] = {k: options.pop(k) for k in ("link", "link_error")
                                     if k in options}
        body = maybe_signature(body, app=self._app).clone(
            **{k: v for k, v in options.items() if k != "parent_id"})
        app = self.app
        header = self.tasks.clone() if app.send_defaults().always_eager \
            else _header_copy(self.tasks)
        if app.send_defaults().always_eager:
            body = _add_body_callbacks(body, dict(callbacks))
            return self.apply(args, call_kwargs, body=body,  # type: ignore[no-any-return]
                              task_id=task_id)
        merged = {**(self.get("options") or {}), **options, **callbacks}
        for key in ("countdown", "eta"):
            header_delay.setdefault(key, merged.pop(key, None))
        option_task_id = merged.pop("task_id", None)
        return self.run(header, body, args, app=app,  # type: ignore[no-any-return]
                        task_id=task_id or option_task_id,
                        kwargs=call_kwargs,
                        header_delay={k: v for k, v in header_delay.items()
                                      if v is not None}, **merged)

    def run(self, header: Any, body: Any, partial_args: Any, app: Celery | None = None,
            task_id: str | None = None, kwargs: Any = None,
            header_delay: dict[str, Any] | None = None, **options: Any) -> Any:
        """Freeze the body in the header's group, write the header's size, send the
        header (each task with the body in its ``chord`` field), or with an empty header
        send the body now with ``[]``."""
        from celeriac.chords import ensure_chords_allowed
        from celeriac.result_group import GroupResult

        app = app or self.app
        group_id = header["options"].get("task_id") or new_id()
        root_id = body["options"].get("root_id")
        for key in ("interval", "countdown", "max_retries", "eager"):
            options.pop(key, None)
        if options:
            options.pop("task_id", None)
            body = _add_body_callbacks(body, options)
            body["options"].update({k: v for k, v in options.items() if k != "parent_id"})
        bodyres = body.freeze(task_id or new_id(), group_id=group_id, root_id=root_id)
        for key in ("chain", "chord", "task_id", "group_id", "group_index"):
            options.pop(key, None)
        header["options"]["task_id"] = group_id
        gid, results = header.freeze_members(group_id=group_id, chord=body, root_id=root_id)
        if header.tasks:
            ensure_chords_allowed(app)
            header_result = header.apply_async(partial_args, kwargs, task_id=group_id,
                                               **{**options, **(header_delay or {})})
        else:
            body.delay([])
            header_result = GroupResult(gid, results, app=app)
        bodyres.parent = header_result
        return bodyres

    def apply(self, args: Any = None, kwargs: Any = None, propagate: bool = True,
              body: Any = None, **options: Any) -> Any:
        """Run the header here, then the body with its results."""
        body = self.body if body is None else body
        header = self.tasks.clone()
        values = header.apply(args, kwargs).get(propagate=propagate)
        return maybe_signature(body, app=self._app).apply(args=(values,))

    def __repr__(self) -> str:
        return f"chord({self.tasks!r}, {self.body!r})"


chord = _chord

#: options a chain keeps for itself rather than passing to its first step
_CHAIN_RUN_OPTIONS = frozenset({"chord", "group_id", "group_index", "link", "link_error",
                                "parent_id", "root_id", "task_id"})


def strip_chord_header_links(sig: Any) -> None:
    """Drop the body copies freezing left on a chord's header tasks (and the header's
    own options) in a copy about to travel in a chain: the chord puts them back when it
    is sent, so every header task does not carry the body twice (as Celery 5.7)."""
    if isinstance(sig, _chord):
        _clear_chord_option(sig.tasks)
        strip_chord_header_links(sig.tasks)
        if sig.body is not None:
            strip_chord_header_links(sig.body)
    elif isinstance(sig, (group, chain)):
        for task in sig.tasks:
            strip_chord_header_links(task)


def _clear_chord_option(sig: Any) -> None:
    (sig.get("options") or {}).pop("chord", None)
    if isinstance(sig, group):
        for task in sig.tasks:
            _clear_chord_option(task)
    elif isinstance(sig, chain) and sig.tasks:
        _clear_chord_option(sig.tasks[-1])
    elif isinstance(sig, _chord) and sig.body is not None:
        _clear_chord_option(sig.body)


def _add_body_callbacks(body: Signature[Any], options: dict[str, Any]) -> Signature[Any]:
    """Move ``link``/``link_error`` from a chord's options onto its body (Celery: a
    chord's errback lives on the body, where a failed header reaches it once)."""
    callbacks = _as_list(options.pop("link", None))
    errbacks = _as_list(options.pop("link_error", None))
    if not callbacks and not errbacks:
        return body
    body = body.clone()
    for callback in callbacks:
        body.link(maybe_signature(callback, app=body._app))
    for errback in errbacks:
        if isinstance(body, group):
            body.link_error(maybe_signature(errback, app=body._app))
        else:
            body._append_option("link_error", errback)
    return body


class _basemap(Signature[Any]):
    """``task.map(items)`` / ``task.starmap(items)``: one task message that calls the
    task's function on each item in the worker (``celery.map`` / ``celery.starmap``)."""

    task_name = "celery.map"

    @classmethod
    def from_dict(cls, d: dict[str, Any], app: Celery | None = None) -> Signature[Any]:
        kwargs = d.get("kwargs") or {}
        return cls(kwargs["task"], kwargs["it"], app=app, **(d.get("options") or {}))

    def __init__(self, task: Any, it: Any, app: Celery | None = None, **options: Any) -> None:
        sig = maybe_signature(task, app=app) if isinstance(task, dict) \
            else Signature(task, app=app)
        clean = {k: v for k, v in sig.items()}
        super().__init__(self.task_name, (), {"task": clean, "it": list(it)}, options,
                         immutable=True, app=app)
        self["subtask_type"] = self.subtask_name

    subtask_name = "xmap"

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        task_name = self["kwargs"]["task"]["task"]
        task = self.app.tasks.get(task_name)
        route = {"queue": getattr(task, "queue", None)} if task is not None else {}
        merged = {**{k: v for k, v in route.items() if v}, **(self.get("options") or {}),
                  **options}
        return self.app.send_task(self["task"], [], dict(self["kwargs"]), **merged)


class xmap(_basemap):
    task_name = "celery.map"
    subtask_name = "xmap"


class xstarmap(_basemap):
    task_name = "celery.starmap"
    subtask_name = "xstarmap"


class chunks(Signature[Any]):
    """``task.chunks(items, n)``: the items in groups of ``n``, each a ``celery.starmap``
    task; a group of them when called (``.group()``)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any], app: Celery | None = None) -> Signature[Any]:
        kwargs = d.get("kwargs") or {}
        return cls(kwargs["task"], kwargs["it"], kwargs["n"], app=app,
                   **(d.get("options") or {}))

    def __init__(self, task: Any, it: Any, n: int, app: Celery | None = None,
                 **options: Any) -> None:
        sig = maybe_signature(task, app=app) if isinstance(task, dict) \
            else Signature(task, app=app)
        super().__init__("celery.chunks", (), {"task": dict(sig), "it": list(it), "n": n},
                         options, immutable=True, app=app)
        self["subtask_type"] = "chunks"

    def __call__(self, **options: Any) -> Any:
        return self.apply_async(**options)

    def apply_async(self, args: Any = None, kwargs: Any = None, **opts: Any) -> Any:
        return self.group().apply_async(args, kwargs, **{**(self.get("options") or {}),
                                                         **opts})

    def group(self) -> Signature[Any]:
        kw = self["kwargs"]
        return self.apply_chunks(kw["task"], kw["it"], kw["n"], app=self._app)

    @classmethod
    def apply_chunks(cls, task: Any, it: Any, n: int, app: Celery | None = None
                     ) -> Signature[Any]:
        items = list(it)
        parts = [items[i:i + n] for i in range(0, len(items), max(1, int(n)))]
        return group([xstarmap(task, part, app=app) for part in parts], app=app)


Signature.TYPES.update({"group": group, "chord": _chord, "xmap": xmap,
                        "xstarmap": xstarmap, "chunks": chunks})

__all__ = ["chord", "chunks", "group", "maybe_unroll_group", "xmap", "xstarmap"]
