"""Delay-level routing keys, queue declarations from Celery's task_queues, URL parsing."""

from __future__ import annotations

import pytest
from kombu import Exchange, Queue

from celeriac.brokers.amqp.link import parse_url
from celeriac.brokers.amqp.topology import (
    DELAY_LEVELS,
    DELIVER_EXCHANGE,
    MAX_DELAY_S,
    ExchangeSpec,
    Topology,
    _bit_pattern,
    delay_exchange,
    delay_route,
    target_word,
    topic_matches,
)
from celeriac.errors import ConfigurationError


def walk(delay_s: int, queue: str) -> tuple[int, str]:
    """Follow a delayed message through the bindings: (seconds waited, final exchange)."""
    exchange, key = delay_route(delay_s, queue)
    waited = 0
    while exchange != DELIVER_EXCHANGE:
        level = int(exchange.rsplit(".", 1)[1])
        to_queue = topic_matches(_bit_pattern(level, "1"), key)
        onwards = topic_matches(_bit_pattern(level, "0"), key)
        assert to_queue != onwards  # exactly one binding of each level matches
        if to_queue:
            waited += 2**level  # the queue's TTL, then dead-lettered one level down
        exchange = delay_exchange(level - 1)
    assert topic_matches(f"#.{target_word(queue)}", key)
    return waited, exchange


@pytest.mark.parametrize("delay_s", [1, 2, 3, 5, 60, 3600, 86400 + 7, 365 * 86400, MAX_DELAY_S])
def test_a_message_waits_exactly_its_delay_across_the_levels(delay_s: int) -> None:
    assert walk(delay_s, "celery") == (delay_s, DELIVER_EXCHANGE)


def test_delays_are_clamped_to_the_levels_range() -> None:
    assert walk(0, "q")[0] == 1
    assert walk(MAX_DELAY_S * 3, "q")[0] == MAX_DELAY_S
    assert MAX_DELAY_S > 365 * 86400 and DELAY_LEVELS == 25


def test_queue_names_become_single_words_that_do_not_collide() -> None:
    names = ["a.b", "b", "a%2Eb", "*", "#", "x.*.#"]
    words = [target_word(n) for n in names]
    assert all("." not in w and w not in ("*", "#") for w in words)
    assert len(set(words)) == len(names)
    _, key = delay_route(5, "a.b")
    assert topic_matches(f"#.{target_word('a.b')}", key)
    assert not topic_matches(f"#.{target_word('b')}", key)


def test_a_bare_queue_is_declared_as_celery_declares_it() -> None:
    spec = Topology().queue("celery")
    assert spec.durable and not spec.auto_delete and not spec.exclusive
    assert dict(spec.arguments) == {}
    assert spec.bindings == ((ExchangeSpec("celery", "direct"), "celery"),)


def test_kombu_queues_with_named_exchanges_and_arguments() -> None:
    media = Exchange("media", type="topic")
    topology = Topology([
        Queue("video", media, routing_key="media.video.#", max_priority=10),
        Queue("images", media, routing_key="media.image.*"),
        Queue("all", Exchange("broadcast", type="fanout")),
        Queue("q", queue_arguments={"x-queue-type": "quorum", "x-max-priority": 5}),
    ])
    video = topology.specs["video"]
    assert video.arguments == {"x-max-priority": 10}
    assert video.bindings == ((ExchangeSpec("media", "topic"), "media.video.#"),)
    assert topology.queues_for("media", "media.video.hd.x") == ["video"]
    assert topology.queues_for("media", "media.image.png") == ["images"]
    assert topology.queues_for("broadcast", "whatever") == ["all"]
    assert topology.queues_for("", "celery") == ["celery"]
    assert dict(topology.specs["q"].arguments) == {"x-queue-type": "quorum"}


def test_dict_forms_and_defaults_for_every_queue() -> None:
    topology = Topology({"hi": {"exchange": "hi", "routing_key": "hi"}},
                        {"x-max-priority": 9})
    assert topology.specs["hi"].arguments == {"x-max-priority": 9}
    assert topology.queue("other").arguments == {"x-max-priority": 9}


@pytest.mark.parametrize("url, vhost, port", [
    ("amqp://guest:guest@localhost:5672//", "/", 5672),
    ("amqp://guest:guest@localhost:5672/", "/", 5672),
    ("amqp://u:p@h/%2F", "/", 5672),
    ("pyamqp://u:p@h:1234/prod", "prod", 1234),
    ("amqps://u:p@h/prod", "prod", 5671),
])
def test_urls_as_kombu_reads_them(url: str, vhost: str, port: int) -> None:
    params = parse_url(url)
    assert (params.vhost, params.port) == (vhost, port)
    assert params.scheme in ("amqp", "amqps")


def test_url_options_and_masking() -> None:
    params = parse_url("amqp://bob:s3cret@h/v?heartbeat=10", {"connect_timeout": 2})
    assert (params.user, params.password, params.heartbeat) == ("bob", "s3cret", 10)
    assert params.connect_timeout == 2
    assert "s3cret" not in params.masked and "bob:**@" in params.masked
    with pytest.raises(ConfigurationError):
        parse_url("redis://h/0")
