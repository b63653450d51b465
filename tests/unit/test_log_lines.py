"""The worker's log handler: a loop turn's lines in one write, never dropped or
reordered, each write at most a pipe's atomic size; a forked child does not repeat its
parent's unwritten lines."""

from __future__ import annotations

import asyncio
import io
import logging
import os

from celeriac.worker.log_lines import CHUNK, CachedTimeFormatter, TurnHandler


class Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def handler_logger(name: str) -> tuple[logging.Logger, Writes, TurnHandler]:
    stream = Writes()
    handler = TurnHandler(stream)
    handler.setFormatter(CachedTimeFormatter("[%(asctime)s: %(levelname)s] %(message)s"))
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, stream, handler


def test_one_turn_is_one_write_in_order() -> None:
    log, stream, _ = handler_logger("turns")

    async def main() -> int:
        for i in range(20):
            log.info("Task t[%d] received", i)
            log.info("Task t[%d] succeeded", i)
        pending = len(stream.writes)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return pending

    assert asyncio.run(main()) == 0  # nothing written mid-turn
    assert len(stream.writes) == 1
    lines = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        f"Task t[{i}] {what}" for i in range(20) for what in ("received", "succeeded")]
    assert all(line.startswith("[20") and ": INFO]" in line for line in lines)


def test_warnings_and_lines_off_the_loop_go_at_once_after_what_came_before() -> None:
    log, stream, _ = handler_logger("at-once")
    log.info("no loop")
    assert stream.getvalue() == stream.writes[0]  # written through

    async def main() -> None:
        log.info("first")
        log.warning("second")  # written at once, with the line before it
        assert stream.getvalue().count("first") == 1

    asyncio.run(main())
    assert [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()] == [
        "no loop", "first", "second"]


def test_writes_stay_within_a_chunk() -> None:
    log, stream, _ = handler_logger("chunks")

    async def main() -> None:
        for i in range(500):
            log.info("line %d %s", i, "x" * 50)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert len(stream.writes) > 1 and all(len(w) <= CHUNK for w in stream.writes)
    assert len(stream.getvalue().splitlines()) == 500


def test_a_forked_child_does_not_repeat_unwritten_lines() -> None:
    read_fd, write_fd = os.pipe()
    log, stream, handler = handler_logger("fork")

    async def main() -> None:
        log.info("parent line")
        pid = os.fork()
        if pid == 0:
            handler.setStream(os.fdopen(write_fd, "w"))
            log.info("child line")  # written through, alone
            os._exit(0)
        os.waitpid(pid, 0)
        await asyncio.sleep(0)

    asyncio.run(main())
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        child_text = pipe.read()
    assert "child line" in child_text and "parent line" not in child_text
    assert stream.getvalue().count("parent line") == 1
