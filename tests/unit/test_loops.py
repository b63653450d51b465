"""CELERIAC_EVENT_LOOP picks the loop celeriac runs its own I/O on."""

from __future__ import annotations

import asyncio

import pytest

from celeriac import loops
from celeriac.errors import ConfigurationError


def test_asyncio_choice_is_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_EVENT_LOOP", "asyncio")
    assert loops.loop_factory() is asyncio.new_event_loop


def test_auto_takes_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("CELERIAC_EVENT_LOOP", raising=False)
    assert loops.loop_factory() is uvloop.new_event_loop

    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loops.run(kind()) == "uvloop"


def test_unknown_choice_says_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_EVENT_LOOP", "tokio")
    with pytest.raises(ConfigurationError, match="use one of auto, uvloop, asyncio"):
        loops.loop_factory()
