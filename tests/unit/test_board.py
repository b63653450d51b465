"""The board a consumer-children parent shares with its children (worker/pools/board.py):
what a child writes there, the parent reads back, across a real fork."""

from __future__ import annotations

import os

from celeriac.worker.pools.board import (
    DIED,
    HELD_PER_CHILD,
    LOST_ENTRIES,
    REPR_BYTES,
    TERMINATED,
    TIME_LIMIT,
    Board,
)


def in_child(action: object) -> None:
    """Run ``action()`` in a forked child and wait for it (the board is MAP_SHARED)."""
    pid = os.fork()
    if pid == 0:
        try:
            action()  # type: ignore[operator]
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_the_parent_sees_the_task_a_child_runs_and_when_it_is_done() -> None:
    board = Board(2)
    board.clear(0)
    board.clear(1)
    in_child(lambda: board.start(1, "id-1", "proj.add", 2.5))
    task_id, name, started, hard_s = board.running(1) or ("", "", 0.0, 0.0)
    assert (task_id, name, hard_s) == ("id-1", "proj.add", 2.5)
    assert started > 0
    assert board.running(0) is None
    in_child(lambda: board.finish(1))
    assert board.running(1) is None
    assert board.finished(1) == 1


def test_the_parent_reads_the_running_tasks_arguments_cut_to_size() -> None:
    board = Board(1)
    board.clear(0)
    in_child(lambda: board.start(0, "id-1", "proj.add", None, "(2, 3)", "{'x': 'é'}"))
    assert board.arguments(0) == ("(2, 3)", "{'x': 'é'}")
    long = "(" + "é" * 400 + ")"  # 802 bytes of UTF-8
    in_child(lambda: board.start(0, "id-2", "proj.add", None, long, ""))
    args, kwargs = board.arguments(0)
    assert args.endswith("...") and len(args.encode()) <= REPR_BYTES
    assert args.startswith("(éé") and kwargs == ""
    assert board.running(0) is not None and board.running(0)[0] == "id-2"  # type: ignore[index]


def test_held_deliveries_come_back_with_their_types_and_are_cleared() -> None:
    board = Board(2)
    board.clear(0)

    def child() -> None:
        board.hold(0, 0, "tag-a", "celery", "id-a", "add")
        board.hold(0, 1, (12, 3), "other", "id-b", "add")  # SQLite: (row id, count)
        board.hold(0, 2, (7, 1), "celery", "id-c", "mul")
        board.release(0, 0)

    in_child(child)
    expected = [((12, 3), "other", "id-b", "add"), ((7, 1), "celery", "id-c", "mul")]
    assert sorted(board.held(0), key=repr) == expected  # a look (inspect reserved)
    assert sorted(board.held(0, clear=True), key=repr) == expected
    assert board.held(0) == []  # taken once: the parent gives them back once
    assert board.held(1) == []


def test_a_delivery_too_large_for_an_entry_is_refused_not_truncated() -> None:
    board = Board(1)
    assert not board.hold(0, HELD_PER_CHILD - 1, "x" * 300, "celery", "id", "add")
    assert board.held(0) == []


def test_lost_tasks_are_counted_and_found_by_exact_id() -> None:
    board = Board(1)
    board.clear(0)
    assert board.losses("abc") == (0, 0)
    assert board.add_lost("abcdef", DIED, 1.0) == 1
    assert board.losses("abc") == (0, 0)  # a prefix is another task
    assert board.losses("bcdef") == (0, 0)
    assert board.add_lost("abcdef", TIME_LIMIT, 2.0) == 2
    assert board.losses("abcdef") == (2, TIME_LIMIT)
    in_child(lambda: board.add_lost("x-1", TERMINATED, 3.0))
    assert board.losses("x-1") == (1, TERMINATED)


def test_a_dead_childs_slot_counts_before_the_parent_records_it_and_not_twice() -> None:
    """RabbitMQ redelivers when the dead child's connection drops, which can be before
    the parent has reaped the child: its slot still names the task, and counts."""
    board = Board(2)
    board.clear(0)
    board.clear(1)
    in_child(lambda: board.start(1, "victim", "slow", None))  # then it "died"
    assert board.losses("victim") == (1, DIED)
    started_at = (board.running(1) or ("", "", 0.0, 0.0))[2]
    assert board.add_lost("victim", DIED, started_at) == 1  # the parent reaps it
    assert board.losses("victim") == (1, DIED)  # recorded and still in the slot: once
    board.clear(1)  # the replacement child
    assert board.losses("victim") == (1, DIED)
    in_child(lambda: board.start(0, "victim", "slow", None))  # its second run dies too
    assert board.losses("victim") == (2, DIED)


def test_the_lost_list_keeps_the_newest_entries() -> None:
    board = Board(1)
    board.clear(0)
    for i in range(LOST_ENTRIES + 10):
        board.add_lost(f"task-{i}", DIED, float(i))
    assert board.losses("task-0") == (0, 0)  # overwritten, oldest first
    assert board.losses(f"task-{LOST_ENTRIES + 9}") == (1, DIED)
    assert board.losses("task-10") == (1, DIED)
