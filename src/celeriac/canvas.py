"""Signatures and chains: a task call as data, and calls that follow each other.

A Signature is a dict in Celery's JSON form (``task``, ``args``, ``kwargs``, ``options``,
``subtask_type``, ``immutable``), so it travels inside messages as it is: the
``callbacks``/``errbacks``/``chain``/``chord`` fields of protocol v2. Groups, chords,
chunks and maps are in ``celeriac.canvas_group``; every name is importable from here,
as from ``celery.canvas``. The composition rules of ``|`` are Celery's (a group
followed by a task is a chord; see docs/canvas.md).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from celeriac.protocol import new_id

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.result import AsyncResult, EagerResult

R = TypeVar("R")
_S = TypeVar("_S", bound="Signature[Any]")

#: options a merge never overrides once set (a member's group is fixed when frozen)
_IMMUTABLE_OPTIONS = frozenset({"group_id", "stamped_headers"})


def _item(name: str) -> property:
    """A property over one key of the signature dict (Celery's ``getitem_property``)."""
    def get(self: dict[str, Any]) -> Any:
        return self.get(name)

    def put(self: dict[str, Any], value: Any) -> None:
        self[name] = value

    return property(get, put)


def _kwarg(name: str) -> property:
    """A property over ``self["kwargs"][name]`` (a group's tasks, a chord's body)."""
    def get(self: dict[str, Any]) -> Any:
        return self["kwargs"].get(name)

    def put(self: dict[str, Any], value: Any) -> None:
        self["kwargs"][name] = value

    return property(get, put)


class Signature(dict[str, Any], Generic[R]):
    """A task call that can be sent later, linked, chained, grouped. ``Signature[R]``:
    a call of a task that returns R (``task.s()``), so ``apply_async().get()`` is R."""

    TYPES: ClassVar[dict[str, type[Signature[Any]]]] = {}
    _app: Celery | None = None

    def __init__(self, task: Any = None, args: Any = None, kwargs: Any = None,
                 options: Any = None, type: Any = None, subtask_type: str | None = None,
                 immutable: bool = False, app: Celery | None = None, **ex: Any) -> None:
        self._app = app
        if isinstance(task, dict):
            super().__init__(task)
            return
        name = getattr(task, "name", task)
        super().__init__(task=name, args=list(args or ()), kwargs=dict(kwargs or {}),
                         options={**dict(options or {}), **ex}, subtask_type=subtask_type,
                         immutable=immutable)

    @classmethod
    def of(cls, name: str, args: Any = (), kwargs: Any = None, *, app: Celery | None = None,
           immutable: bool = False, **options: Any) -> Signature[Any]:
        return cls(name, args, kwargs, options, app=app, immutable=immutable)

    @classmethod
    def from_dict(cls, d: dict[str, Any], app: Celery | None = None) -> Signature[Any]:
        """The right class for a dict: a group, chord, chain, ... by ``subtask_type``."""
        kind = d.get("subtask_type")
        target = cls.TYPES.get(kind) if kind else None
        if target is not None and target is not cls:
            return target.from_dict(d, app=app)
        return Signature(dict(d), app=app)

    task = name = _item("task")
    args = _item("args")
    kwargs = _item("kwargs")
    options = _item("options")
    subtask_type = _item("subtask_type")
    immutable = _item("immutable")

    @property
    def id(self) -> str | None:
        return (self.get("options") or {}).get("task_id")

    @property
    def app(self) -> Celery:
        from celeriac.app import current_app

        return self._app or current_app()

    @property
    def type(self) -> Any:
        """The registered task this signature calls."""
        return self.app.tasks[self["task"]]

    # -- copies and options -----------------------------------------------------------
    def _merge(self, args: Any = None, kwargs: Any = None, options: Any = None,
               force: bool = False) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        own = self.get("options") or {}
        if options:
            new_options = {**own, **{k: v for k, v in options.items()
                                     if k not in _IMMUTABLE_OPTIONS or k not in own}}
        else:
            new_options = dict(own)
        if self.get("immutable") and not force:
            return list(self["args"]), dict(self["kwargs"]), new_options
        return ([*(args or ()), *self["args"]], {**self["kwargs"], **(kwargs or {})},
                new_options)

    def clone(self, args: Any = None, kwargs: Any = None, **opts: Any) -> Any:
        """A copy, with extra args before its own (unless immutable) and options merged."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, opts)
        sig = Signature.from_dict({
            "task": self["task"], "args": new_args, "kwargs": dict(new_kwargs),
            "options": copy.deepcopy(new_options), "subtask_type": self.get("subtask_type"),
            "immutable": bool(self.get("immutable"))}, app=self._app)
        return sig

    partial = clone

    def set(self: _S, immutable: bool | None = None, **options: Any) -> _S:
        """Set calling options (countdown, queue, ...); returns the signature."""
        if immutable is not None:
            self.set_immutable(immutable)
        self.setdefault("options", {}).update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def replace(self, args: Any = None, kwargs: Any = None, options: Any = None
                ) -> Signature[R]:
        sig = self.clone()
        if args is not None:
            sig["args"] = list(args)
        if kwargs is not None:
            sig["kwargs"] = dict(kwargs)
        if options is not None:
            sig["options"] = dict(options)
        return sig  # type: ignore[no-any-return]

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               chord: Any = None, root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> Any:
        """Fix the task id (and group, chord) now; returns the future result."""
        opts = self.setdefault("options", {})
        task_id = opts.get("task_id")
        if task_id is None:
            task_id = opts["task_id"] = _id or new_id()
        if root_id:
            opts["root_id"] = root_id
        if parent_id:
            opts["parent_id"] = parent_id
        if "reply_to" not in opts:
            opts["reply_to"] = reply_address(self.app)
        if group_id and "group_id" not in opts:
            opts["group_id"] = group_id
        if chord:
            opts["chord"] = chord
        if group_index is not None:
            opts["group_index"] = group_index
        from celeriac.result import AsyncResult

        return AsyncResult(task_id, app=self.app)

    # -- links ---------------------------------------------------------------------
    def _append_option(self, key: str, value: Any) -> None:
        opts = self.setdefault("options", {})
        items = opts.get(key)
        if items is None:
            items = opts[key] = []
        elif not isinstance(items, list):
            items = opts[key] = [items]
        if value not in items:
            items.append(value)

    def link(self, callback: Any) -> Any:
        """Call ``callback`` with this task's result when it succeeds."""
        self._append_option("link", callback)
        return callback

    def link_error(self, errback: Any) -> Any:
        """Call ``errback`` with this task's id when it fails."""
        self._append_option("link_error", errback)
        return errback

    def on_error(self: _S, errback: Any) -> _S:
        """``link_error`` that returns this signature, for chaining calls."""
        self.link_error(errback)
        return self

    # -- calling -------------------------------------------------------------------
    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any
                    ) -> AsyncResult[R]:
        """Send it; extra args go before the signature's own (unless immutable)."""
        options = {k: v for k, v in options.items() if v is not None}
        args, kwargs, merged = self._merge(args, kwargs, options)
        merged.pop("add_to_parent", None)
        task = self.app.tasks.get(self["task"])
        if task is not None:
            return task.apply_async(args, kwargs, **merged)
        return self.app.send_task(self["task"], args, kwargs, **merged)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[R]:
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task's function here (not a task call), as Celery's signature does."""
        new_args, new_kwargs, _ = self._merge(args, kwargs)
        return self.type(*new_args, **new_kwargs)

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> EagerResult[R]:
        """Run it here, now, as a worker would (``task.apply``)."""
        new_args, new_kwargs, merged = self._merge(args, kwargs, options)
        return self.type.apply(new_args, new_kwargs,  # type: ignore[no-any-return]
                               task_id=merged.get("task_id"))

    # -- composition ---------------------------------------------------------------
    def __or__(self, other: Any) -> Any:
        """``a.s() | b.s()`` is ``chain(a.s(), b.s())``; see docs/canvas.md."""
        from celeriac.canvas_group import group, maybe_unroll_group

        if isinstance(other, chain):
            return chain(self, *other.unchain_tasks(), app=self._app)
        if isinstance(other, group):
            return chain(self, maybe_unroll_group(other), app=self._app)
        if isinstance(other, Signature):
            return chain(self, other, app=self._app)
        return NotImplemented

    def __ior__(self, other: Any) -> Any:
        return self.__or__(other)

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature[Any]:
        sig = Signature.from_dict(copy.deepcopy(dict(self), memo), app=self._app)
        return sig

    def __reduce__(self) -> Any:
        return (_from_dict, (dict(self),))

    def __repr__(self) -> str:
        return f"{self['task']}({', '.join(map(repr, self.get('args') or ()))})"


def _from_dict(d: dict[str, Any]) -> Signature[Any]:
    return Signature.from_dict(d)


def reply_address(app: Celery) -> str:
    """What a frozen signature names in ``reply_to``: the rpc reply queue or this
    client's id, as a message sent now would."""
    from celeriac import protocol

    d = app.send_defaults()
    if d.rpc_results:
        from celeriac.backends.rpc import reply_queue

        return reply_queue(d.result_expires)
    return protocol._CLIENT_ID


def signature(varies: Any, *args: Any, app: Celery | None = None, **kwargs: Any
              ) -> Signature[Any]:
    """A Signature from a dict (e.g. one received in a message), a signature (cloned)
    or a task name with args, kwargs and options."""
    if isinstance(varies, Signature):
        return varies.clone()  # type: ignore[no-any-return]
    if isinstance(varies, dict):
        return Signature.from_dict(varies, app=app)
    if args or kwargs.keys() - {"options"}:
        make: Any = Signature
        return make(varies, *args, app=app, **kwargs)  # type: ignore[no-any-return]
    return Signature(varies, options=kwargs.get("options"), app=app)


subtask = signature


def maybe_signature(d: Any, app: Celery | None = None, clone: bool = False) -> Any:
    """A dict or list of dicts as signatures; None stays None."""
    if d is None:
        return None
    if isinstance(d, (list, tuple)):
        return [maybe_signature(s, app=app, clone=clone) for s in d]
    if isinstance(d, Signature):
        if clone:
            d = d.clone()
    elif isinstance(d, dict):
        d = Signature.from_dict(d, app=app)
    if app is not None and isinstance(d, Signature):
        d._app = app
    return d


class chain(Signature[Any]):
    """``chain(a.s(1), b.s(), c.s())``: each step gets the previous one's result.

    Sent as Celery sends it: the first step's message carries the rest, reversed, in
    its ``chain`` field; a group followed by a step becomes a chord. ``apply_async``
    returns the last step's result, whose ``parent`` is the step before.
    """

    tasks = _kwarg("tasks")

    @classmethod
    def from_dict(cls, d: dict[str, Any], app: Celery | None = None) -> Signature[Any]:
        tasks = [maybe_signature(t, app=app) for t in (d.get("kwargs") or {}).get("tasks", ())]
        sig = cls(*tasks, app=app, **(d.get("options") or {}))
        sig["args"], sig["immutable"] = list(d.get("args") or ()), bool(d.get("immutable"))
        return sig

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        if len(tasks) == 1 and isinstance(tasks[0], Iterable) \
                and not isinstance(tasks[0], dict):
            tasks = tuple(tasks[0])
        steps = [maybe_signature(t, app=app) for t in tasks]
        super().__init__("celery.chain", (), {"tasks": steps}, options,
                         subtask_type="chain", app=app)

    @property
    def app(self) -> Celery:
        if self._app is None and self.tasks:
            return self.tasks[0].app  # type: ignore[no-any-return]
        return super().app

    def clone(self, args: Any = None, kwargs: Any = None, **opts: Any) -> Any:
        sig = super().clone(args, kwargs, **opts)
        sig["kwargs"]["tasks"] = [maybe_signature(t, app=self._app, clone=True)
                                  for t in self["kwargs"]["tasks"]]
        return sig

    def unchain_tasks(self) -> list[Signature[Any]]:
        """Copies of the steps; the chain's own link/link_error moved onto them."""
        steps = [t.clone() for t in self.tasks]
        for sig in _as_list((self.get("options") or {}).get("link")):
            steps[-1].link(sig)
        for sig in _as_list((self.get("options") or {}).get("link_error")):
            for step in steps:
                step.link_error(sig)
        return steps

    def __or__(self, other: Any) -> Any:
        from celeriac.canvas_group import _chord, group, maybe_unroll_group

        if isinstance(other, group) and not other.tasks:
            return self
        if isinstance(other, group):
            other = maybe_unroll_group(other)
            if not isinstance(other, group):
                return self | other
            steps = self.unchain_tasks()
            if not steps:
                return other
            if isinstance(steps[-1], _chord):
                steps[-1].body = steps[-1].body | other
                return chain(*steps, app=self._app)
            return chain(*steps, other, app=self._app)
        if isinstance(other, chain):
            result: Any = self
            for step in other.unchain_tasks():
                result = result | step
            return result
        if isinstance(other, Signature):
            steps = self.unchain_tasks()
            if steps and isinstance(steps[-1], group):
                steps[-1] = _chord(steps[-1], other, app=self._app)
                if len(steps) > 1 and isinstance(steps[-2], _chord):
                    steps[-2].body = steps[-2].body | steps[-1]
                    steps.pop()
                return chain(*steps, app=self._app)
            if steps and isinstance(steps[-1], _chord) and not isinstance(other, _chord):
                steps[-1].body = steps[-1].body | other
                return chain(*steps, app=self._app)
            return chain(*steps, other, app=self._app)
        return NotImplemented

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs) if self.tasks else None

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        app = self.app
        merged = {**(self.get("options") or {}), **options}
        if app.send_defaults().always_eager:
            return self.apply(args, kwargs, **merged)
        return self.run(args, kwargs, app=app, **merged)

    def run(self, args: Any = None, kwargs: Any = None, group_id: str | None = None,
            chord: Any = None, task_id: str | None = None, link: Any = None,
            link_error: Any = None, root_id: str | None = None,
            parent_id: str | None = None, app: Celery | None = None,
            group_index: int | None = None, **options: Any) -> Any:
        """Freeze every step, then send the first with the rest in its ``chain``."""
        args = list(args or ())
        if self.get("immutable") or not args:
            args = list(self.get("args") or ())
        else:
            args = [*args, *(self.get("args") or ())]
        steps, results = self.prepare_steps(args, kwargs, self.tasks, root_id, parent_id,
                                            link_error, task_id, group_id, chord,
                                            group_index=group_index)
        if not results:
            return None
        if link:
            for sig in _as_list(link):
                steps[0].link(sig)
        first = steps.pop()
        options.pop("add_to_parent", None)
        result = first.apply_async(chain=[dict(s) for s in steps] or None, **options)
        return result if not steps else results[0]

    def freeze(self, _id: str | None = None, group_id: str | None = None,
               chord: Any = None, root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> Any:
        _, results = self.prepare_steps(self.get("args") or [], self.get("kwargs") or {},
                                        self.tasks, root_id, parent_id, None, _id, group_id,
                                        chord, clone=False, group_index=group_index)
        return results[0]

    def prepare_steps(self, args: Any, kwargs: Any, tasks: Sequence[Any],
                      root_id: str | None = None, parent_id: str | None = None,
                      link_error: Any = None, last_task_id: str | None = None,
                      group_id: str | None = None, chord_body: Any = None,
                      clone: bool = True, group_index: int | None = None
                      ) -> tuple[list[Signature[Any]], list[Any]]:
        """The steps, last first, each frozen, with chords made of a group and the step
        after it; and their results, last first, each one's ``parent`` the step before.
        Partial args go to the first step."""
        from celeriac.canvas_group import _chord, group

        app = self.app
        pending = _flatten_steps(tasks, app, clone)
        out: list[Signature[Any]] = []
        results: list[Any] = []
        prev_task: Signature[Any] | None = None
        prev_res: Any = None
        while pending:
            is_last = not out
            task = _next_step(pending, prev_task, clone, args, kwargs)
            if task is None:
                continue
            if isinstance(task, group) and prev_task is not None:
                task, prev_task, prev_res = _group_then_step(task, out, results, prev_res,
                                                             root_id, app)
            if is_last:
                res = task.freeze(last_task_id, root_id=root_id, group_id=group_id,
                                  chord=chord_body, group_index=group_index)
            else:
                res = task.freeze(root_id=root_id)
            if prev_task is not None and prev_res is not None \
                    and getattr(prev_res, "parent", None) is None:
                prev_res.parent = res
            _link_errbacks(task, link_error)
            out.append(task)
            results.append(res)
            prev_task, prev_res = task, res
            if isinstance(task, _chord):
                from celeriac.chords import ensure_chords_allowed

                ensure_chords_allowed(app)
                while getattr(prev_res, "parent", None) is not None:
                    prev_res = prev_res.parent
        if clone:
            from celeriac.canvas_group import strip_chord_header_links

            for task in out:
                strip_chord_header_links(task)
        return out, results

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run every step here, in order, each with the previous one's result."""
        last: Any = None
        call_args = list(args or ())
        for step in _flatten_steps(self.tasks, self.app, True):
            res = step.clone(call_args, kwargs).apply(**options) if last is None \
                else step.clone([last.get()]).apply(**options)
            res.parent, last = last, res
            kwargs = None
        return last

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks) or "chain(<empty>)"


def _next_step(pending: list[Any], prev_task: Any, clone: bool, args: Any,
               kwargs: Any) -> Any:
    """Take the next step from the end (None: it was dropped or expanded into
    ``pending``); the first step gets the partial args."""
    from celeriac.canvas_group import _chord, group, maybe_unroll_group

    task = pending.pop()
    is_first = not pending
    if isinstance(task, group):
        task = maybe_unroll_group(task)
        if isinstance(task, group) and not task.tasks and (pending or prev_task):
            return None
    if clone and isinstance(task, _chord) and _led_by_task(task.body):
        pending.extend(task.unroll_body())
        return None
    if clone:
        task = task.clone(args, kwargs) if is_first else task.clone()
    elif is_first:
        task["args"] = [*(args or ()), *task["args"]]
    if isinstance(task, chain):
        pending.extend(task.tasks)
        return None
    return task


def _group_then_step(task: Any, out: list[Any], results: list[Any], prev_res: Any,
                     root_id: str | None, app: Celery) -> tuple[Any, Any, Any]:
    """A group followed by a (frozen) step is a chord with that step as its body: the
    chord replaces the step; returns (chord, step before it, result before it)."""
    from celeriac.canvas_group import _chord

    body = out.pop()
    body_res = results.pop()
    task = _chord(task, body=body, app=app, task_id=getattr(prev_res, "id", None),
                  root_id=root_id)
    node = results[-1] if results else None
    while node is not None and getattr(node, "parent", None) is not body_res:
        node = node.parent
    if node is not None:
        node.parent = None
        prev_res = node
    return task, (out[-1] if out else None), prev_res


def _link_errbacks(task: Any, link_error: Any) -> None:
    from celeriac.canvas_group import _chord

    for errback in _as_list(link_error):
        task.link_error(errback)
        if isinstance(task, _chord) and task.body is not None:
            task.body.link_error(errback)


def _flatten_steps(tasks: Sequence[Any], app: Celery, clone: bool) -> list[Signature[Any]]:
    """The steps with nested chains spliced in (the first step is never a chain)."""
    steps: list[Signature[Any]] = []
    for task in tasks:
        sig = maybe_signature(task, app=app)
        if isinstance(sig, chain):
            steps.extend(_flatten_steps(sig.clone().tasks if clone else sig.tasks, app, clone))
        else:
            steps.append(sig)
    return steps


def _led_by_task(body: Any) -> bool:
    """A chain body whose first step is a task (not a group): Celery runs the chord with
    that step as its body and the rest of the chain after it."""
    from celeriac.canvas_group import group

    return isinstance(body, chain) and bool(body.tasks) \
        and not isinstance(body.tasks[0], group)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


Signature.TYPES["chain"] = chain

from celeriac.canvas_group import (  # noqa: E402  (they subclass Signature)
    chord,
    chunks,
    group,
    xmap,
    xstarmap,
)

__all__ = ["Signature", "chain", "chord", "chunks", "group", "maybe_signature",
           "signature", "subtask", "xmap", "xstarmap"]
