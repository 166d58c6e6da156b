"""Fixtures shared by the unit tests: a scripted broker (tests/fakes/broker.py) with one
partition's log, a client of it, and the record codec to run a module's tests with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import trio

from tests.fakes.broker import FakeBroker
from tests.fakes.log import FakeLog
from tests.records_helpers import pure_python_codec
from trio_brod import Client, open_client
from trio_brod.protocol import records


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


@pytest.fixture(scope="module", params=["c", "python"])
def codec(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test module's tests with each record codec: C (if built), then pure Python."""
    if request.param == "python":
        with pure_python_codec():
            yield "python"
    elif records.IMPLEMENTATION == "c":
        yield "c"
    else:
        pytest.skip("the C record codec (trio_brod.protocol._speedups) is not in use")
