"""Passwords never reach banners, logs or errors."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.brokers import create_broker
from celeriac.brokers.base import mask_url
from celeriac.errors import ConfigurationError
from celeriac.worker.banner import banner


@pytest.mark.parametrize("url, masked", [
    ("redis://:s3cret@localhost:6379/0", "redis://:**@localhost:6379/0"),
    ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:**@127.0.0.1:5672//"),
    ("redis://localhost/0", "redis://localhost/0"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_banner_masks_broker_and_result_passwords() -> None:
    app = Celery("m", broker="amqp://user:hunter2@h:5672//", set_as_current=False)
    text = banner(app, "w@h", "0", "1 (solo)", ["celery"], "redis://:hunter2@h/1", False)
    assert "hunter2" not in text
    assert "amqp://user:**@h:5672//" in text and "redis://:**@h/1" in text


def test_unknown_scheme_error_is_masked_and_lists_schemes() -> None:
    with pytest.raises(ConfigurationError) as info:
        create_broker("kafka://user:hunter2@h:9092")
    message = str(info.value)
    assert "hunter2" not in message and "kafka://user:**@h:9092" in message
    assert "redis://" in message and "sqlite://" in message
