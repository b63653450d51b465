"""Celery's retry policy read as a window: how long a send keeps reaching for the broker."""

from __future__ import annotations

import math

import pytest

from celeriac import Celery, publish_retry
from celeriac.publish_retry import RetryPolicy, window_for


def test_celerys_default_policy_waits_0_4_s_in_all() -> None:
    assert RetryPolicy.from_mapping({}).window_s() == pytest.approx(0.4)
    assert window_for(True, publish_retry.CELERY_DEFAULT) == pytest.approx(0.4)


def test_pauses_grow_by_step_up_to_max() -> None:
    policy = RetryPolicy.from_mapping({"max_retries": 4, "interval_start": 1,
                                       "interval_step": 2, "interval_max": 4})
    assert policy.window_s() == 1 + 3 + 4 + 4


def test_no_max_retries_means_no_end_and_retry_off_means_one_attempt() -> None:
    assert window_for(True, {"max_retries": None}) == math.inf
    assert window_for(False, {"max_retries": None}) == 0.0
    assert window_for(True, None) is None  # the broker's retry_timeout


def test_the_app_reads_the_settings_and_apply_async_overrides_them() -> None:
    app = Celery("pr", broker="memory://", set_as_current=False,
                 task_publish_retry_policy={"max_retries": 2, "interval_step": 1,
                                            "interval_max": 1})
    assert app.send_defaults().publish_window_s == pytest.approx(1.0)
    assert app._publish_window({}) == pytest.approx(1.0)
    options = {"retry": False, "retry_policy": {"max_retries": 9}}
    assert app._publish_window(options) == 0.0
    assert options == {}  # taken out: they are not message options
    app.conf.task_publish_retry = False
    assert app.send_defaults().publish_window_s == 0.0


def test_the_deadline_follows_the_window_only_inside_covering() -> None:
    import time

    start = time.monotonic()
    assert publish_retry.deadline(30.0) >= start + 30.0
    with publish_retry.covering(0.0):
        assert publish_retry.deadline(30.0) < start + 30.0
    assert publish_retry.deadline(30.0) >= start + 30.0
