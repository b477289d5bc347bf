from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from modules.integrations.breakers import Breakers
from tests.upstreams import FakeHttpUpstream

THRESHOLD = 3
TTL = 0.3


@pytest.fixture
async def upstream() -> AsyncIterator[FakeHttpUpstream]:
    server = FakeHttpUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def breakers() -> AsyncIterator[Breakers]:
    owner = Breakers(threshold=THRESHOLD, ttl=TTL)
    await owner.start()
    yield owner
    await owner.close()
