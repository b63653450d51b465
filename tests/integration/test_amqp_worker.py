"""Real workers on a real RabbitMQ (``python -m celeriac -A taskapp worker``), one vhost
per test: rpc:// results (read by celeriac and by Celery), delays through the delay
levels, dead letters through the CLI, connection loss, warm shutdown, bad credentials."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.brokers.amqp.broker import AMQPBroker
from tests.integration.conftest import Harness
from tests.services import AMQP_HOST, AMQP_PORT, need_rabbitmq


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=60,
                          capture_output=True, text=True)
    return done.stdout


@pytest.fixture
def vhost() -> Iterator[str]:
    need_rabbitmq()
    name = f"celeriac-itest-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], timeout=60,
                   capture_output=True)


@pytest.fixture
def harness(tmp_path: Path, vhost: str) -> Iterator[Harness]:
    harness = Harness(tmp_path, f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}")
    yield harness
    harness.close()


def queue_counts(vhost: str) -> dict[str, tuple[int, int]]:
    """queue -> (ready, unacked), as RabbitMQ reports them."""
    out = rabbitmqctl("list_queues", "-p", vhost, "name", "messages_ready",
                      "messages_unacknowledged")
    counts = {}
    for line in out.splitlines()[1:]:
        name, ready, unacked = line.split("\t")
        counts[name] = (int(ready), int(unacked))
    return counts


def delayed(vhost: str) -> int:
    return sum(ready for name, (ready, _) in queue_counts(vhost).items()
               if name.startswith("celeriac.delay."))


def test_rpc_results_reach_a_celeriac_caller(harness: Harness) -> None:
    harness.worker("-P", "threads", "-c", "2", CELERY_RESULT_BACKEND="rpc://")
    harness.client.conf.result_backend = "rpc://"
    results = [harness.client.send_task("add", (i, i)) for i in range(5)]
    assert [r.get(timeout=20) for r in results] == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="bad value"):
        harness.client.send_task("fail").get(timeout=20)


def test_celery_caller_reads_rpc_results_of_a_celeriac_worker(harness: Harness) -> None:
    from celery import Celery as RealCelery

    harness.worker(CELERY_RESULT_BACKEND="rpc://")
    celery = RealCelery("caller", broker=harness.broker_url, backend="rpc://",
                        set_as_current=False)
    try:
        assert celery.send_task("add", (20, 22)).get(timeout=20) == 42
        with pytest.raises(Exception) as failed:
            celery.send_task("fail").get(timeout=20)
        assert type(failed.value).__name__ == "ValueError"
        assert failed.value.args == ("bad value", 42)
    finally:
        celery.close()


def test_countdown_waits_in_rabbitmq_not_in_the_worker(harness: Harness, vhost: str) -> None:
    harness.worker()
    started = time.monotonic()
    harness.client.send_task("add", (1, 2), countdown=3)
    assert delayed(vhost) == 1  # in a delay-level queue, not in the task queue
    assert queue_counts(vhost)["celery"] == (0, 0)
    harness.wait_for_record("add 1 2", timeout_s=20)
    assert time.monotonic() - started >= 2.9
    assert delayed(vhost) == 0


def test_far_eta_from_a_celery_client_moves_into_the_delay_levels(
        harness: Harness, vhost: str) -> None:
    from celery import Celery as RealCelery

    worker = harness.worker()
    celery = RealCelery("caller", broker=harness.broker_url, set_as_current=False)
    try:
        celery.send_task("add", (5, 5), countdown=86400)
    finally:
        celery.close()
    deadline = time.monotonic() + 20
    while delayed(vhost) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert delayed(vhost) == 1
    assert queue_counts(vhost)["celery"] == (0, 0)  # acked: the worker holds nothing
    assert harness.lines("add 5 5") == []
    worker.wait_for_log("kept in the broker")


def test_dead_letters_listed_requeued_and_purged_through_the_cli(harness: Harness) -> None:
    harness.client.send_task("no.such.task", (1,))
    worker = harness.worker()
    worker.wait_for_log("dead-lettered")
    listed = harness.cli("dlq", "list")
    assert "no.such.task" in listed.stdout and "unregistered task" in listed.stdout
    assert "1 dead letter." in listed.stdout
    assert "Requeued 1 message" in harness.cli("dlq", "requeue", "--all").stdout
    deadline = time.monotonic() + 20
    while worker.log.count("dead-lettered") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the requeued message comes back to the worker, and fails again
    assert worker.log.count("dead-lettered") == 2
    assert "Deleted 1 dead letter" in harness.cli("dlq", "purge", "-f").stdout
    assert "No dead letters." in harness.cli("dlq", "list").stdout


def test_connection_closed_by_the_server_redelivers_the_running_task(
        harness: Harness, vhost: str) -> None:
    worker = harness.worker("-c", "1")
    harness.client.send_task("slow", (2.0, "s1"))
    harness.wait_for_record("start s1")
    rabbitmqctl("close_all_connections", "-p", vhost, "test: connection lost")
    harness.wait_for_record("start s1", n=2, timeout_s=30)  # redelivered, run again
    harness.wait_for_record("done s1", n=2, timeout_s=30)
    harness.client.send_task("add", (7, 7))  # the worker consumes again
    harness.wait_for_record("add 7 7", timeout_s=30)
    assert "lost the connection" in worker.log and "reconnected" in worker.log
    # once per process with a connection (the parent, and its child consuming itself)
    losses = re.findall(r"/(\w+(?:-\d+)?)\] lost the connection", worker.log)
    assert losses and len(losses) == len(set(losses)), losses


def test_warm_shutdown_gives_reserved_messages_back(harness: Harness, vhost: str) -> None:
    worker = harness.worker("-c", "1", "--prefetch-multiplier", "4")
    for i in range(4):
        harness.client.send_task("slow", (1.0, f"w{i}"))
    harness.wait_for_record("start w0")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0  # one signal: a warm shutdown
    assert harness.lines("done w0") == ["done w0"]  # the running task finished
    assert queue_counts(vhost)["celery"] == (3, 0)  # the reserved ones are back


def test_wrong_password_fails_fast_with_the_password_masked(harness: Harness) -> None:
    bad = harness.broker_url.replace("guest:guest@", "guest:s3cret-pw@")
    worker = harness.worker(ready=False, CELERIAC_BROKER_URL=bad)
    assert worker.proc.wait(30) != 0
    assert "refused the login" in worker.log
    assert "s3cret-pw" not in worker.log and "guest:**@" in worker.log


async def test_publish_to_an_unroutable_exchange_raises(vhost: str) -> None:
    from celeriac.errors import PublishError
    from tests.contract.suite import make

    broker = AMQPBroker(f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}",
                        {"queues": [{"name": "routed", "exchange": "fan",
                                     "exchange_type": "fanout"}]})
    await broker.connect()
    try:
        message = make(1)
        message.exchange, message.routing_key = "lonely", "nowhere"
        with pytest.raises(PublishError, match="unroutable"):
            await broker.publish([message])
        fanned = make(2)
        fanned.exchange, fanned.routing_key = "fan", "anything"
        await broker.publish([fanned])  # the fanout exchange reaches its queue
        got: list[Any] = []
        for _ in range(10):
            got += await broker.fetch(["routed"], 1, 0.5)
            if got:
                break
        assert [d.message.task_id for d in got] == ["id-2"]
        await broker.ack(got)
        await asyncio.sleep(0)
    finally:
        await broker.close()


async def test_quorum_queues_as_an_option(vhost: str) -> None:
    from tests.contract.suite import make

    broker = AMQPBroker(f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}",
                        {"queue_type": "quorum"})
    await broker.connect()
    try:
        await broker.publish([make(1), make(2)])
        got = await broker.fetch(["q1"], 2, 2.0)
        got += await broker.fetch(["q1"], 2, 1.0) if len(got) < 2 else []
        assert sorted(d.message.task_id for d in got) == ["id-1", "id-2"]
        await broker.ack(got)
    finally:
        await broker.close()
    assert "quorum" in rabbitmqctl("list_queues", "-p", vhost, "name", "type")


async def test_celery_and_celeriac_put_the_same_message_on_the_wire(vhost: str) -> None:
    """A task sent by Celery 5.7 (py-amqp) and the same task sent by celeriac, read back."""
    from celery import Celery as RealCelery

    from celeriac import Celery

    url = f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    celery = RealCelery("wire", broker=url, set_as_current=False)
    try:
        celery.send_task("proj.add", (2, 3), {"z": 1.5}, task_id="from-celery", priority=4,
                         countdown=0)
    finally:
        celery.close()
    ours = Celery("wire", broker=url, set_as_current=False)
    await ours.asend_task("proj.add", (2, 3), {"z": 1.5}, task_id="from-celeriac", priority=4)
    broker = AMQPBroker(url)
    await broker.connect()
    try:
        got: list[Any] = []
        while len(got) < 2:
            batch = await broker.fetch(["celery"], 2, 5.0)
            assert batch, "a message did not arrive"
            got += batch
        our_msg, celery_msg = sorted((d.message for d in got), key=lambda m: m.task_id)
        assert celery_msg.task_id == "from-celery"
        assert set(our_msg.headers) == set(celery_msg.headers)
        for key in ("lang", "task", "retries", "timelimit", "argsrepr", "kwargsrepr",
                    "stamps", "group", "shadow", "parent_id"):
            assert our_msg.headers[key] == celery_msg.headers[key], key
        # Celery's send_task leaves it None where apply_async writes the task's bool
        assert not our_msg.headers["ignore_result"] and not celery_msg.headers["ignore_result"]
        assert set(our_msg.properties) == set(celery_msg.properties)
        for key in ("delivery_mode", "priority"):
            assert our_msg.properties[key] == celery_msg.properties[key], key
        assert (our_msg.content_type, our_msg.content_encoding) == (
            celery_msg.content_type, celery_msg.content_encoding)
        assert json.loads(our_msg.body) == json.loads(celery_msg.body)  # spacing differs
        assert (our_msg.exchange, our_msg.routing_key) == ("", "celery")
        assert (celery_msg.exchange, celery_msg.routing_key) == ("", "celery")
        await broker.ack(got)
    finally:
        await broker.close()
        await ours.clients.close()
