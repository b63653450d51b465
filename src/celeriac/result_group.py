"""Results of many tasks: ResultSet, GroupResult, and Celery's tuple form of results.

``group(...)()`` returns a GroupResult: its id is the group id every member carries in
its ``group`` header; ``get()``/``join()`` wait for every member in order and return
their values. ``join_native`` first reads every member in one backend round trip
(``get_many``) and waits only for the ones not done. ``save()`` stores the group's
shape under Celery's key (``celery-taskset-meta-<id>``) so ``GroupResult.restore(id)``
finds it in another process, Celery's or celeriac's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from celeriac import states
from celeriac.errors import TimeoutError
from celeriac.result import AsyncResult, EagerResult, ResultBase, assert_will_not_block

if TYPE_CHECKING:
    from celeriac.app import Celery

R = TypeVar("R")


class ResultSet(ResultBase, Generic[R]):
    """A list of results, waited on and inspected together. ``ResultSet[R]``: members
    whose values are R (``get()`` is ``list[R]``)."""

    def __init__(self, results: Sequence[Any], app: Celery | None = None,
                 **_ignored: Any) -> None:
        if app is None:
            from celeriac.app import current_app

            app = current_app()
        self.app = app
        self.results: list[Any] = list(results)

    def add(self, result: Any) -> None:
        if result not in self.results:
            self.results.append(result)

    def remove(self, result: Any) -> None:
        if isinstance(result, str):
            result = AsyncResult(result, app=self.app)
        self.results.remove(result)

    discard = remove

    def clear(self) -> None:
        self.results.clear()

    # -- state -------------------------------------------------------------------
    def _states(self) -> list[str]:
        return [r.state for r in self.results]

    def successful(self) -> bool:
        """Every member succeeded."""
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        """Any member failed."""
        return any(r.failed() for r in self.results)

    def waiting(self) -> bool:
        """Any member not ready yet."""
        return any(not r.ready() for r in self.results)

    def ready(self) -> bool:
        """Every member is ready (succeeded, failed or revoked)."""
        return all(r.ready() for r in self.results)

    def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(int(r.successful()) for r in self.results)

    def forget(self) -> None:
        for r in self.results:
            r.forget()

    # -- waiting -----------------------------------------------------------------
    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, **kwargs: Any) -> list[R]:
        """Every member's value, in order (``join``)."""
        return self.join(timeout=timeout, propagate=propagate, interval=interval, **kwargs)

    def join(self, timeout: float | None = None, propagate: bool = True,
             interval: float = 0.5, callback: Any = None, no_ack: bool = True,
             disable_sync_subtasks: bool = True, **_ignored: Any) -> list[R]:
        """Wait for each member in turn; a member's failure is raised (``propagate``).
        Inside a worker's task: RuntimeError unless ``allow_join_result()`` or
        ``disable_sync_subtasks=False`` (as ``AsyncResult.get``)."""
        if disable_sync_subtasks and not all(isinstance(r, EagerResult)
                                             for r in self.results):
            assert_will_not_block()
        deadline = None if timeout is None else time.monotonic() + timeout
        values: list[R] = []
        for result in self.results:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("the operation timed out")
            value = result.get(timeout=remaining, propagate=propagate,
                               disable_sync_subtasks=False)
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    def join_native(self, timeout: float | None = None, propagate: bool = True,
                    interval: float = 0.5, callback: Any = None,
                    disable_sync_subtasks: bool = True, **_ignored: Any) -> list[R]:
        """``join`` that reads every plain member in one backend round trip first."""
        if disable_sync_subtasks:
            assert_will_not_block()
        plain = [r for r in self.results if type(r) is AsyncResult and not r.ready_cached]
        if plain:
            found = self.app.run_sync(_get_many(self.app, [r.id for r in plain]))
            for r in plain:
                meta = found.get(r.id)
                if meta is not None and meta.get("status") in states.READY_STATES:
                    r._meta = meta
        return self.join(timeout=timeout, propagate=propagate, callback=callback,
                         disable_sync_subtasks=False)

    def iter_native(self, timeout: float | None = None, **kwargs: Any
                    ) -> Iterator[tuple[str, Any]]:
        for result in self.results:
            yield result.id, result.get(timeout=timeout, propagate=False)

    supports_native_join = True

    # -- sequence ----------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(r.id for r in self.results))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"


class GroupResult(ResultSet[R]):
    """The result of a group: its id and its members' results."""

    def __init__(self, id: str | None = None, results: Sequence[Any] | None = None,
                 parent: Any = None, app: Celery | None = None, **kwargs: Any) -> None:
        super().__init__(results or [], app=app)
        self.id = id
        self.parent = parent

    @property
    def children(self) -> list[Any]:
        return self.results

    def as_tuple(self) -> tuple[Any, Any]:
        parent = self.parent
        return ((self.id, parent.as_tuple() if parent is not None else None),
                [r.as_tuple() for r in self.results])

    def save(self, backend: Any = None) -> GroupResult[R]:
        """Store the group's shape (``celery-taskset-meta-<id>``) for ``restore``."""
        from celeriac.chords import save_group

        save_group(self.app, str(self.id), self.as_tuple())
        return self

    def delete(self, backend: Any = None) -> None:
        from celeriac.chords import delete_group

        delete_group(self.app, str(self.id))

    @classmethod
    def restore(cls, id: str, backend: Any = None, app: Celery | None = None
                ) -> GroupResult[Any] | None:
        """The group saved under ``id``, or None."""
        from celeriac.chords import restore_group

        if app is None:
            from celeriac.app import current_app

            app = current_app()
        shape = restore_group(app, id)
        if shape is None:
            return None
        found = result_from_tuple(shape, app)
        return found if isinstance(found, GroupResult) else None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"


async def _get_many(app: Celery, ids: list[str]) -> dict[str, Any]:
    backend = await app.clients.backend()
    return await backend.get_many(ids)


def result_from_tuple(r: Any, app: Celery | None = None) -> Any:
    """Celery's tuple form -> AsyncResult / GroupResult (parents included)."""
    if isinstance(r, (AsyncResult, ResultSet)):
        return r
    if app is None:
        from celeriac.app import current_app

        app = current_app()
    head, nodes = r
    task_id, parent = head if isinstance(head, (list, tuple)) else (head, None)
    parent_result = result_from_tuple(parent, app) if parent else None
    if nodes is not None:
        return GroupResult(task_id, [result_from_tuple(n, app) for n in nodes],
                           parent=parent_result, app=app)
    return AsyncResult(task_id, app=app, parent=parent_result)


__all__ = ["GroupResult", "ResultSet", "result_from_tuple"]
