"""Fixtures shared by the unit tests that talk to a scripted broker (tests/fakebroker.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from tests.consumer_fakes import FakeLog
from tests.fakebroker import FakeBroker
from trio_brod import Client, open_client


@pytest.fixture
async def broker(nursery: trio.Nursery) -> FakeBroker:
    """A fake broker serving on a loopback port, with only the default handlers."""
    fake: FakeBroker = await nursery.start(FakeBroker().serve)
    return fake


@pytest.fixture
def log(broker: FakeBroker) -> FakeLog:
    """One partition's log (of FakeLog's topic, "fake-topic"), served by ``broker``."""
    fake = FakeLog()
    fake.serve(broker)
    return fake


@pytest.fixture
async def client(broker: FakeBroker, log: FakeLog) -> AsyncIterator[Client]:
    """A client of ``broker``, whose log is ``log``."""
    async with open_client([broker.address], request_timeout=5.0) as opened:
        yield opened
