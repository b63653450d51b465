"""Chords under faults, with real CLI workers: the body must run exactly once.

Each case sends chords of ``chord.part`` tasks with a ``chord.body`` (tests/chaos/
chordapp.py) and counts, from the record file, how many times each body ran:
- a header task's worker SIGKILLed after storing its result, before the join and the
  ack; and after the join (the body sent), before the ack: the redelivered part
  stores and joins again;
- the body's own sender SIGKILLed after claiming it, before publishing; and after
  publishing, before marking the join done: a redelivered part waits for the claim
  to expire and takes it over; a body published twice runs once (the receiving
  worker drops the copy sent under the second claim);
- header tasks that retry;
- two workers racing on the last header results, and the last part run twice at
  once (a duplicate message) on two workers.
Brokers: SQLite (SQLite results), Redis and RabbitMQ (Redis results).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, chord, group
from celeriac.canvas import Signature
from tests.chaos.conftest import amqp_available, drop_redis_keys
from tests.chaos.harness import (
    HERE,
    REDIS_DB_URL,
    TABLE,
    ChaosWorker,
    Scenario,
    Tally,
    wait_until,
)
from tests.services import need_rabbitmq, need_redis

LEASE_S = "2"


class ChordWorker(ChaosWorker):
    """``python -m celeriac -A chordapp worker ...`` (ChaosWorker runs chaosapp)."""

    def __init__(self, env: dict[str, str], log_path: Path, args: Sequence[str]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "chordapp", "worker", "-l", "info",
             *args], cwd=HERE, env=env, stdout=self._log, stderr=subprocess.STDOUT)


class ChordScenario(Scenario):
    """A Scenario whose workers run chordapp, with a result backend and a client app."""

    def __init__(self, tmp_path: Path, broker_name: str, broker_url: str,
                 results_url: str, prefix: str) -> None:
        super().__init__(tmp_path, broker_name, broker_url,
                         {"global_keyprefix": prefix} if prefix else None)
        self.extra_env = {"CHAOS_RESULT_BACKEND": results_url, "CHAOS_KEYPREFIX": prefix,
                          "CHAOS_QUEUE": self.queue, "CHAOS_LEASE_S": LEASE_S}
        self.client = Celery("chord-client", broker=broker_url)
        self.client.conf.broker_transport_options = {"global_keyprefix": prefix}
        self.client.conf.result_backend = results_url
        self.client.conf.result_backend_transport_options = {"global_keyprefix": prefix}
        self.client.conf.task_default_queue = self.queue

    def worker(self, *args: str, ready: bool = True, broker_url: str | None = None,
               **env: str) -> ChaosWorker:
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        worker = ChordWorker(self.env(**env), log, ["-Q", self.queue, *args])
        self.workers.append(worker)
        if ready:
            worker.wait_for_log("ready.")
        return worker

    def lines(self, kind: str) -> list[list[str]]:
        """The fields of each record line of one kind (part, try, body, errback)."""
        return [line.split()[1:] for line in self.record.read_text().splitlines()
                if line.startswith(kind + " ")]

    def bodies(self) -> Counter[str]:
        """How many times each chord's body ran, by tag."""
        return Counter(fields[0] for fields in self.lines("body"))

    def close(self) -> None:
        super().close()
        self.client.close()


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def cs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChordScenario]:
    """One broker's chord scenario (SQLite: SQLite results; else Redis results)."""
    prefix = f"chordchaos-{uuid.uuid4().hex[:8]}:"
    if request.param == "sqlite":
        s = ChordScenario(tmp_path, "sqlite", f"sqlite:///{tmp_path}/broker.db",
                          f"sqlite:///{tmp_path}/results.db", "")
    else:
        need_redis()
        if request.param == "redis":
            s = ChordScenario(tmp_path, "redis", REDIS_DB_URL, REDIS_DB_URL, prefix)
        else:
            if not amqp_available():
                pytest.skip("celeriac.brokers.amqp is not importable")
            need_rabbitmq()
            s = ChordScenario(tmp_path, "rabbitmq", "amqp://guest:guest@127.0.0.1:5672//",
                              REDIS_DB_URL, prefix)
    yield s
    s.close()
    if request.param != "sqlite":
        drop_redis_keys(REDIS_DB_URL, prefix)


def send_chord(s: ChordScenario, tag: str, n: int, until: float = 0.0,
               task: str = "chord.part", **options: Any) -> Any:
    header = group(Signature.of(task, (tag, i, until) if task == "chord.part"
                                else (tag, i), app=s.client) for i in range(n))
    body = Signature.of("chord.body", (tag,), app=s.client)
    return chord(header, body).apply_async(**options)


def tally(s: ChordScenario, fault: str, tags: list[str]) -> Tally:
    """A row of the ``make chaos`` table: chords sent, bodies run once, extra runs."""
    time.sleep(1.0)  # a late duplicate still counts
    bodies = s.bodies()
    row = Tally(fault, s.broker_name, len(tags), sum(1 for t in tags if bodies[t]),
                sum(bodies[t] - 1 for t in tags if bodies[t] > 1),
                sum(1 for t in tags if not bodies[t]))
    TABLE.append(row)
    return row


def wait_dead(worker: ChaosWorker, timeout_s: float = 60) -> None:
    wait_until(lambda: worker.proc.poll() is not None, timeout_s, "the worker to kill itself")


@pytest.mark.parametrize("point", ["after_store", "after_join"])
def test_header_worker_killed_before_ack(cs: ChordScenario, point: str) -> None:
    """The last header part's worker dies after storing its result (before the join),
    or after joining it (the body sent), in both cases before the ack: the part is
    redelivered, stored and joined again, and the body still runs once."""
    tag = f"kill-{uuid.uuid4().hex[:6]}"
    first = cs.worker("-P", "threads", "-c", "1", CHAOS_KILL=f"{point}:{tag}:3")
    result = send_chord(cs, tag, 4)
    wait_dead(first)
    assert f"killed {point}" in cs.record.read_text()
    cs.worker("-P", "threads", "-c", "2")
    assert result.get(timeout=60) == 60
    wait_until(lambda: sum(1 for f in cs.lines("part") if f[1] == "3") >= 2, 30,
               "the killed part to run again")  # after its lease, maybe after the body
    row = tally(cs, f"chord: header worker killed {point.replace('_', ' ')}", [tag])
    assert row.completed == 1 and row.duplicates == 0
    assert cs.lines("body")[0][2] == "[0,10,20,30]"


@pytest.mark.parametrize("point", ["before_body_send", "after_body_send"])
def test_body_sender_killed(cs: ChordScenario, point: str) -> None:
    """The worker that claimed the body dies before publishing it, or after publishing
    it and before marking the join done. The last part comes back; its worker finds the
    claim held, waits for it to expire, takes it over and sends the body; a copy the
    dead worker did publish and the new one run once between them."""
    tag = f"send-{uuid.uuid4().hex[:6]}"
    first = cs.worker("-P", "threads", "-c", "1", CHAOS_KILL=point)
    result = send_chord(cs, tag, 4)
    wait_dead(first)
    second = cs.worker("-P", "threads", "-c", "2")
    assert result.get(timeout=60) == 60
    row = tally(cs, f"chord: body sender killed {point.replace('_', ' ')}", [tag])
    assert row.completed == 1 and row.duplicates == 0
    wait_until(lambda: "took over the claim" in second.log, 30, "the take-over's log line")
    if point == "after_body_send":
        wait_until(lambda: "dropped: a second copy" in second.log, 30,
                   "the second copy to be dropped")


def test_header_tasks_that_retry(cs: ChordScenario) -> None:
    """Each header task retries twice: its part is joined when it finally succeeds,
    once; the body runs once with every result."""
    cs.worker("-P", "threads", "-c", "4")
    cs.worker("-P", "threads", "-c", "4")
    tags = [f"retry-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    results = [send_chord(cs, tag, 4, task="chord.flaky") for tag in tags]
    assert [r.get(timeout=60) for r in results] == [60, 60, 60]
    row = tally(cs, "chord: header tasks retry x2", tags)
    assert row.completed == 3 and row.duplicates == 0
    tries = Counter((f[0], f[1]) for f in cs.lines("try"))
    assert set(tries.values()) == {3}  # every part ran three times


def test_workers_race_on_the_last_results(cs: ChordScenario) -> None:
    """Every part of four chords ends at the same instant on two workers, and each
    chord's last part is sent twice (same id: both copies run at once): the join counts
    each part once and one claim sends each body."""
    cs.worker("-P", "threads", "-c", "12")
    cs.worker("-P", "threads", "-c", "12")
    until = time.time() + 4.0
    tags = [f"race-{uuid.uuid4().hex[:6]}" for _ in range(4)]
    results = []
    for tag in tags:
        result = send_chord(cs, tag, 4, until)
        header = result.parent
        body = Signature.of("chord.body", (tag,), app=cs.client)
        body.freeze(result.id, group_id=header.id)
        cs.client.send_task("chord.part", (tag, 3, until), task_id=header.results[3].id,
                            group_id=header.id, group_index=3, chord=dict(body))
        results.append(result)
    assert [r.get(timeout=60) for r in results] == [60] * 4
    row = tally(cs, "chord: 2 workers race on the last parts", tags)
    assert row.completed == 4 and row.duplicates == 0
    runs = Counter((f[0], f[1]) for f in cs.lines("part"))
    assert all(runs[(tag, "3")] == 2 for tag in tags)  # the duplicate did run


def test_failed_header_errback_once_when_its_sender_dies(cs: ChordScenario) -> None:
    """A failed header fails the body with ChordError and calls its errback; the worker
    sending the errback dies after sending it; the take-over sends it again under the
    same (derived) id, and the receiving worker drops that copy."""
    if cs.broker_name != "redis":
        pytest.skip("one broker is enough for the errback path")
    tag = f"fail-{uuid.uuid4().hex[:6]}"
    first = cs.worker("-P", "threads", "-c", "1", CHAOS_KILL="after_body_send")
    header = group([Signature.of("chord.part", (tag, 0), app=cs.client),
                    Signature.of("chord.fail", (tag, 1), app=cs.client)])
    body = Signature.of("chord.body", (tag,), app=cs.client)
    body.link_error(Signature.of("chord.errback", (tag,), app=cs.client))
    result = chord(header, body).apply_async()
    wait_dead(first)
    cs.worker("-P", "threads", "-c", "2")
    wait_until(lambda: cs.lines("errback"), 60, "the errback")
    wait_until(lambda: result.state == "FAILURE", 30, "the body to be failed")
    assert "Dependency" in repr(result.info)
    wait_until(lambda: "took over the claim" in cs.workers[1].log, 30, "the take-over")
    time.sleep(2.0)
    assert len(cs.lines("errback")) == 1
    assert not cs.lines("body")


def test_replace_and_add_to_chord_on_real_workers(cs: ChordScenario) -> None:
    """Header tasks that add a task to their chord and replace themselves (with a group,
    with a chain), on two workers: the body runs once, with every part in order."""
    if cs.broker_name == "sqlite":
        pytest.skip("Redis and RabbitMQ are enough for the API path")
    cs.worker("-P", "threads", "-c", "4")
    cs.worker("-P", "threads", "-c", "4")
    tag = f"replace-{uuid.uuid4().hex[:6]}"
    header = group(Signature.of("chord.replaced", (tag, i), app=cs.client)
                   for i in range(2))
    result = chord(header, Signature.of("chord.body", (tag,), app=cs.client))()
    # index 0 -> [100, 200] (the group) and 1000 (added), in either order (equal scores
    # are ordered by task id, as in Celery); then index 1 -> 210 and 1010 (added)
    assert result.get(timeout=60) == 300 + 1000 + 210 + 1010
    values = json.loads(cs.lines("body")[0][2])
    assert sorted(map(str, values[:2])) == ["1000", "[100, 200]"]
    assert sorted(values[2:]) == [210, 1010]
    row = tally(cs, "chord: header tasks replace themselves", [tag])
    assert row.completed == 1 and row.duplicates == 0


def test_bad_chords_end_in_a_log_line_not_silence(cs: ChordScenario) -> None:
    """What the client cannot know: a body naming a task no worker has is dead-lettered
    with its reason; header parts whose chord size never comes are logged after
    result_chord_join_timeout."""
    if cs.broker_name == "sqlite":
        pytest.skip("Redis and RabbitMQ are enough for the log lines")
    worker = cs.worker("-P", "threads", "-c", "2")
    tag = f"bad-{uuid.uuid4().hex[:6]}"
    header = group(Signature.of("chord.part", (tag, i), app=cs.client) for i in range(2))
    chord(header, Signature.of("chord.nope", (tag,), app=cs.client))()
    worker.wait_for_log("unregistered task 'chord.nope'")
    body = Signature.of("chord.body", (tag,), app=cs.client)
    body.freeze(group_id="never-sized")
    cs.client.send_task("chord.part", (tag, 0), group_id="never-sized", group_index=0,
                        chord=dict(body))
    worker.wait_for_log("Chord never-sized: header parts arrived but the header's size "
                        "was not recorded")
    assert not cs.lines("body")
