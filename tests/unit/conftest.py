"""Fixtures shared by the unit tests: a client of the fake Kafka (the plugin's ``fake_kafka``)
with one topic of one partition; a scripted broker (tests/fakes/broker.py) with one
partition's log, for the scenarios the fake Kafka does not play; and the record codec to run
a module's tests with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import cast

import pytest
import trio

from tests.fakes.broker import FakeBroker
from tests.fakes.log import FakeLog
from tests.records_helpers import pure_python_codec
from trio_brod import Client, open_client
from trio_brod.protocol import ApiVersionsRequest, FetchRequest, Message, records
from trio_brod.testing.fake import FakeKafka, Intercepted, Pass

#: The topic :func:`fake_client` creates (one partition) in the fake Kafka.
FAKE_TOPIC = "fake-topic"


class Requests:
    """Every request the fake Kafka received, in order, as its controls see them.

    It watches through a control registered before the test's own, that acts on nothing:
    a request the test's controls fail, drop or hold is in :attr:`seen` all the same.
    """

    def __init__(self, fake: FakeKafka) -> None:
        self.seen: list[Intercepted] = []
        fake.control(None, self._see, times=None)

    def _see(self, request: Intercepted) -> None:
        self.seen.append(request)

    def of(self, api: type[Message]) -> list[Intercepted]:
        """The requests of one API (by its request class)."""
        return [r for r in self.seen if r.api_key == api.API_KEY]

    def fetches(self) -> list[FetchRequest]:
        """The Fetch requests' bodies."""
        return [cast(FetchRequest, r.body) for r in self.of(FetchRequest)]

    @property
    def connections(self) -> int:
        """Connections opened: each one's first request is ApiVersions."""
        return len(self.of(ApiVersionsRequest))


@pytest.fixture
def fake_requests(fake_kafka: FakeKafka) -> Requests:
    """The requests ``fake_kafka`` receives (see :class:`Requests`)."""
    return Requests(fake_kafka)


@pytest.fixture
async def fake_client(fake_kafka: FakeKafka, fake_requests: Requests) -> AsyncIterator[Client]:
    """A client of the plugin's ``fake_kafka``, where :data:`FAKE_TOPIC` (one partition) is;
    ``fake_requests`` watches from before its first request."""
    fake_kafka.create_topic(FAKE_TOPIC)
    async with open_client(fake_kafka.bootstrap_servers, request_timeout=5.0) as opened:
        yield opened


def fill(fake: FakeKafka, batches: int, per_batch: int) -> None:
    """Append batches of records valued ``b"m<offset>"`` to :data:`FAKE_TOPIC`'s partition 0,
    stamped 1_000_000 + i within each batch."""
    log = fake.log(FAKE_TOPIC, 0)
    for _ in range(batches):
        start = log.high_watermark
        fake.append(FAKE_TOPIC, 0, [b"m%d" % offset for offset in range(start, start + per_batch)])


def fetch_at(offset: int) -> Callable[[Intercepted], Pass | None]:
    """A control's decision that watches the (first partition's) fetch at ``offset`` and
    leaves the others to the next control: ``fake.control(FetchRequest, fetch_at(10))``,
    then ``await control.wait_seen()`` waits for that fetch to arrive."""

    def decide(request: Intercepted) -> Pass | None:
        assert isinstance(request.body, FetchRequest)
        return Pass() if request.body.topics[0].partitions[0].fetch_offset == offset else None

    return decide


@pytest.fixture
async def broker(nursery: trio.Nursery) -> FakeBroker:
    """A fake broker serving on a loopback port, with only the default handlers."""
    fake: FakeBroker = await nursery.start(FakeBroker().serve)
    return fake


@pytest.fixture
def log(broker: FakeBroker) -> FakeLog:
    """One partition's log (of FakeLog's topic, "fake-topic"), served by ``broker``: for the
    few scenarios the fake Kafka does not play (see tests/fakes/log.py)."""
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
