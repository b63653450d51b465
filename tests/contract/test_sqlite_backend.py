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


class TestSQLAlchemyStyleSQLiteURL(BackendContract):
    """Celery's ``db+sqlite:///path`` names the same backend."""

    @pytest.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
        from celeriac.backends import create_backend

        backend = create_backend(f"db+sqlite:///{tmp_path}/results.db")
        assert isinstance(backend, SQLiteBackend) and backend.path == f"{tmp_path}/results.db"
        await backend.connect()
        yield backend
        await backend.close()
