"""Result backend contract on the in-process backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from celeriac.backends.memory import MemoryBackend
from tests.contract.backend_suite import BackendContract


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[MemoryBackend]:
        yield MemoryBackend(f"memory://{uuid.uuid4().hex}")
