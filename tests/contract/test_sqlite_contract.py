"""The contract suite on the embedded SQLite broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from celeriac.brokers.sqlite.broker import SQLiteBroker
from tests.contract.broadcast_suite import BroadcastContract
from tests.contract.suite import BrokerContract


class TestSQLiteBroker(BrokerContract, BroadcastContract):
    @pytest.fixture
    async def broker(self, tmp_path: Path) -> AsyncIterator[SQLiteBroker]:
        broker = SQLiteBroker(f"sqlite:///{tmp_path}/broker.db")
        await broker.connect()
        yield broker
        await broker.close()

    @pytest.fixture
    async def short_lease_broker(self, tmp_path: Path) -> AsyncIterator[SQLiteBroker]:
        broker = SQLiteBroker(f"sqlite:///{tmp_path}/lease.db", {"visibility_timeout": 1.0})
        await broker.connect()
        yield broker
        await broker.close()
