"""``Immediate(db)``: one ``BEGIN IMMEDIATE`` transaction on a celeriac SQLite connection
(opened in autocommit mode by ``connect_sqlite``), for the chord join, the beat store and
the broker's dead letters::

    with lock, Immediate(connection) as db:
        db.execute(...)

IMMEDIATE takes SQLite's write lock at the start, so a read-then-write (a claim, a
compare-and-set) cannot be overtaken by another process writing in between. The block
commits when it ends and rolls back when anything is raised, a failed COMMIT or a
cancelled task included, so the connection is never left inside a transaction.

A class, not ``@contextmanager``: the chord join opens one per header task's result, and
the generator's machinery costs ~10,000 instructions a transaction where this costs
~3,900 (callgrind). The broker's hot path (publish, fetch, ack) spells the same
transaction out inline so as to pay neither.
"""

from __future__ import annotations

import sqlite3
from types import TracebackType


class Immediate:
    """See the module docstring. The caller holds the lock that guards ``db``."""

    __slots__ = ("db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is not None:
            self.db.execute("ROLLBACK")
            return
        try:
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
