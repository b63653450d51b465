"""Settings: Celery's names and defaults, loading, environment overrides, typo warnings."""

from __future__ import annotations

import datetime as dt
import sys
import types
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.config import default_sqlite_path


def fresh(**kw: object) -> Celery:
    return Celery("cfgtest", set_as_current=False, **kw)


def test_celery_defaults_and_attribute_access() -> None:
    app = fresh()
    assert app.conf.task_default_queue == "celery"
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.result_expires == 86400
    assert app.conf.worker_prefetch_multiplier == 4
    assert app.conf.task_always_eager is False
    assert app.conf.task_acks_late is True  # celeriac's reliable default
    app.conf.task_default_queue = "q"
    assert app.conf["task_default_queue"] == "q"
    app.conf.update(task_routes={"a.*": "other"}, result_expires=dt.timedelta(hours=1))
    assert app.conf.seconds("result_expires") == 3600


def test_constructor_arguments() -> None:
    app = fresh(broker="memory://x", backend="memory://y", include=["m1"])
    assert app.conf.broker_url == "memory://x"
    assert app.conf.result_backend == "memory://y"
    assert app.conf.include == ["m1"]


def test_config_from_module_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "cfgpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text(
        "import os\nbroker_url = 'memory://frommodule'\nSMS_TIMEOUT = 5\n"
        "task_default_queue = 'sms'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = fresh()
    app.config_from_object("cfgpkg.config")
    assert app.conf.broker_url == "memory://frommodule"
    assert app.conf.task_default_queue == "sms"
    assert "SMS_TIMEOUT" not in app.conf  # upper-case non-settings are not settings


def test_config_from_django_style_settings_with_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = types.SimpleNamespace(CELERY_BROKER_URL="memory://django",
                                     CELERY_TASK_ACKS_LATE=False, DEBUG=True)
    conf_module = types.ModuleType("fakedjango.conf")
    conf_module.settings = settings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fakedjango", types.ModuleType("fakedjango"))
    monkeypatch.setitem(sys.modules, "fakedjango.conf", conf_module)
    app = fresh()
    app.config_from_object("fakedjango.conf:settings", namespace="CELERY")
    assert app.conf.broker_url == "memory://django"
    assert app.conf.task_acks_late is False


def test_config_from_object_instance() -> None:
    class Config:
        broker_url = "memory://obj"
        worker_concurrency = 3

    app = fresh()
    app.config_from_object(Config)
    assert app.conf.worker_concurrency == 3


def test_unknown_setting_warns_with_closest_name() -> None:
    app = fresh()
    with pytest.warns(UserWarning, match=r"unknown setting 'task_acks_lates'.*'task_acks_late'"):
        app.conf.task_acks_lates = True
    with pytest.warns(UserWarning, match="brokr_url.*broker_url"):
        app.conf.update(brokr_url="x")


def test_environment_overrides_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_BROKER_URL", "memory://env")
    monkeypatch.setenv("CELERIAC_WORKER_PREFETCH_MULTIPLIER", "16")
    monkeypatch.setenv("CELERIAC_TASK_ACKS_LATE", "false")
    monkeypatch.setenv("CELERIAC_ACCEPT_CONTENT", "json,pickle")
    app = fresh(broker="memory://code")
    assert app.conf.broker_url == "memory://env"
    assert app.broker_url == "memory://env"
    assert app.conf.worker_prefetch_multiplier == 16
    assert app.conf.task_acks_late is False
    assert app.conf.accept_content == ["json", "pickle"]


def test_embedded_sqlite_by_default_keyed_by_app_name(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("CELERIAC_HOME", str(tmp_path))
    monkeypatch.delenv("CELERIAC_BROKER_URL", raising=False)
    app = fresh()
    assert app.broker_url == f"sqlite:///{tmp_path}/cfgtest.sqlite3"
    assert app.result_backend_url == app.broker_url  # results work out of the box
    assert default_sqlite_path("cfgtest") == tmp_path / "cfgtest.sqlite3"
    other = Celery("other", set_as_current=False)
    assert other.broker_url != app.broker_url


def test_server_broker_has_no_result_backend_unless_configured() -> None:
    app = fresh(broker="redis://localhost/0")
    assert app.result_backend_url is None
