"""The worker's log handler: a loop turn's lines in one write, never dropped or
reordered, each write at most a pipe's atomic size; a forked child does not repeat its
parent's unwritten lines."""

from __future__ import annotations

import asyncio
import io
import logging
import os

import pytest

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


def test_fast_info_writes_what_logging_would() -> None:
    """The worker logger's fast ``info`` writes the same line as logging's path, and
    steps aside when another handler or a filter would see the record."""
    from celeriac.worker.banner import setup_logging

    fmt = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    switches = logging._srcfile, logging.logThreads, logging.logProcesses
    stream = Writes()
    try:
        setup_logging("info", fmt)
        [handler] = root.handlers
        assert isinstance(handler, TurnHandler)
        handler.setStream(stream)
        log = logging.getLogger("celeriac.worker")
        log.info("Task %s[%s] succeeded in %.6fs: %r", "t.x", "id-1", 0.5, {"a": 1})
        fast = stream.getvalue()
        type(log).info(log, "Task %s[%s] succeeded in %.6fs: %r", "t.x", "id-1", 0.5,
                       {"a": 1})
        usual = stream.getvalue()[len(fast):]
        assert fast.split("] ", 1)[1] == usual.split("] ", 1)[1] \
            == "Task t.x[id-1] succeeded in 0.500000s: {'a': 1}\n"
        assert fast.split(" ")[0] == usual.split(" ")[0] == fast.split(" ")[0]  # the date
        assert fast.split(": ", 1)[1].startswith("INFO/MainProcess] ")
        seen: list[logging.LogRecord] = []

        class Catch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record)

        catch = Catch()
        root.addHandler(catch)  # as pytest's caplog does: records must reach it
        log.info("Task %s[%s] received", "t.x", "id-2")
        assert [r.getMessage() for r in seen] == ["Task t.x[id-2] received"]
        assert stream.getvalue().endswith("Task t.x[id-2] received\n")
        root.removeHandler(catch)
        log.setLevel(logging.WARNING)
        log.info("hidden")
        assert "hidden" not in stream.getvalue()
        log.setLevel(logging.NOTSET)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("celeriac.worker").__dict__.pop("info", None)
        logging._srcfile, logging.logThreads, logging.logProcesses = switches


@pytest.mark.parametrize("fmt", ["[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
                                 "%(name)s %(message)s <%(message)s>",
                                 "%(message)s (%(processName)s %(levelno)s)"])
def test_fast_info_lines_in_one_millisecond_are_each_their_own(fmt: str) -> None:
    """Lines of the same millisecond share a formatted head and tail: each still says its
    own message (a '%' or a '%(message)s' inside it too), and a new process name (a
    child's) is printed as logging would."""
    import multiprocessing

    from celeriac.worker.banner import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    switches = logging._srcfile, logging.logThreads, logging.logProcesses
    stream = Writes()
    log = logging.getLogger("celeriac.worker")
    process = multiprocessing.current_process()
    name = process.name
    try:
        setup_logging("info", fmt)
        [handler] = root.handlers
        handler.setStream(stream)
        messages = ["Task a[1] received", "100% %(message)s %s", "Task a[1] succeeded"]
        for message in messages:
            log.info("%s", message)
        process.name = "ForkPoolWorker-1"
        log.info("after the rename")
        handler.flush()
        lines = stream.getvalue().splitlines()
        formatter = handler.formatter
        assert formatter is not None
        for line, message in zip(lines, [*messages, "after the rename"], strict=True):
            record = logging.LogRecord("celeriac.worker", logging.INFO, "", 0, message,
                                       None, None)
            record.processName = "ForkPoolWorker-1" if message.startswith("after") \
                else name
            want = formatter.format(record)
            if "asctime" in fmt:  # the time differs; what follows it must not
                assert line.split("] ", 1)[1] == want.split("] ", 1)[1]
                assert f"/{record.processName}]" in line
            else:
                assert line == want
    finally:
        process.name = name
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        log.__dict__.pop("info", None)
        logging._srcfile, logging.logThreads, logging.logProcesses = switches
