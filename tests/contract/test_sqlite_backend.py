"""Result backend contract on the SQLite backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from celeriac.backends.sqlite import SQLiteBackend
from tests.contract.backend_suite import BackendContract


class TestSQLiteBackend(BackendContract):
    @pytest.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
        backend = SQLiteBackend(f"sqlite:///{tmp_path}/results.db")
        await backend.connect()
        yield backend
        await backend.close()
