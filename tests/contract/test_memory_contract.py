"""The contract suite on the in-process reference broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from celeriac.brokers.memory import MemoryBroker
from tests.contract.broadcast_suite import BroadcastContract
from tests.contract.suite import BrokerContract


class TestMemoryBroker(BrokerContract, BroadcastContract):
    @pytest.fixture
    async def broker(self) -> AsyncIterator[MemoryBroker]:
        yield MemoryBroker(f"memory://{uuid.uuid4().hex}")

    @pytest.fixture
    async def short_lease_broker(self) -> AsyncIterator[MemoryBroker]:
        yield MemoryBroker(f"memory://{uuid.uuid4().hex}", {"visibility_timeout": 1.0})
