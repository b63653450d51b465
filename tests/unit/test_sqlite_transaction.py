"""brokers/sqlite/transaction.py: ``Immediate`` commits a block, rolls back one that
raises, and rolls back a COMMIT that fails, so the connection never stays inside a
transaction (the next BEGIN would fail)."""

from __future__ import annotations

import sqlite3

import pytest

from celeriac.brokers.sqlite.transaction import Immediate


def connection() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE child (parent INTEGER REFERENCES parent (id) "
               "DEFERRABLE INITIALLY DEFERRED)")
    return db


def test_a_block_commits_and_a_raising_block_rolls_back() -> None:
    db = connection()
    with Immediate(db) as tx:
        tx.execute("INSERT INTO parent VALUES (1)")
    with pytest.raises(KeyError), Immediate(db) as tx:
        tx.execute("INSERT INTO parent VALUES (2)")
        raise KeyError("the step failed")
    assert not db.in_transaction
    assert db.execute("SELECT id FROM parent").fetchall() == [(1,)]


def test_a_failed_commit_is_rolled_back() -> None:
    db = connection()
    # a deferred foreign key is checked at COMMIT, which then fails
    with pytest.raises(sqlite3.IntegrityError), Immediate(db) as tx:
        tx.execute("INSERT INTO child VALUES (7)")
    assert not db.in_transaction
    assert db.execute("SELECT COUNT(*) FROM child").fetchone() == (0,)
    with Immediate(db) as tx:  # the connection is usable again
        tx.execute("INSERT INTO parent VALUES (7)")
        tx.execute("INSERT INTO child VALUES (7)")
    assert db.execute("SELECT COUNT(*) FROM child").fetchone() == (1,)
