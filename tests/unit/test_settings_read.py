"""Settings do what they say: each one declared in config.py is read somewhere in
src/celeriac, or is in config.UNSUPPORTED with its reason and warns once when set."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from celeriac import config
from celeriac.config import SETTINGS, UNSUPPORTED, Config
from celeriac.errors import UnsupportedSetting

SRC = Path(config.__file__).resolve().parent
_SOURCES = {p: p.read_text() for p in SRC.rglob("*.py") if p.name != "config.py"}


def _read_in(name: str) -> list[str]:
    """Files that read the setting: ``conf.name``, ``"name"``, ``seconds("name")``."""
    pattern = re.compile(rf"(\.{name}\b|[\"']{name}[\"'])")
    return sorted(str(p.relative_to(SRC)) for p, text in _SOURCES.items()
                  if pattern.search(text))


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_setting_is_read_or_declared_unsupported(name: str) -> None:
    readers = _read_in(name)
    if name in UNSUPPORTED:
        assert not readers, (f"{name} is read in {readers}: take it out of "
                             f"config.UNSUPPORTED (and test what it does)")
    else:
        assert readers, f"{name} is never read: make it work, or add it to UNSUPPORTED"


def test_unsupported_names_are_settings() -> None:
    assert set(UNSUPPORTED) <= set(SETTINGS)


def test_an_unsupported_setting_warns_once_and_not_at_its_default() -> None:
    config._warned_unsupported.discard("worker_lost_wait")
    conf = Config()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conf.worker_lost_wait = SETTINGS["worker_lost_wait"].default  # Celery's default
        conf.worker_lost_wait = 30.0
        conf.worker_lost_wait = 40.0
        Config().worker_lost_wait = 50.0
    found = [w for w in caught if issubclass(w.category, UnsupportedSetting)]
    assert len(found) == 1
    assert "worker_lost_wait=30.0 has no effect" in str(found[0].message)
    assert UNSUPPORTED["worker_lost_wait"] in str(found[0].message)
