"""What the fake Kafka's brokers received from producers, and a script of Produce faults.

The producer's unit tests run against :func:`trio_brod.testing.fake.fake_kafka`: the fake
answers Metadata, InitProducerId and Produce as Kafka does (leaders, NOT_LEADER_OR_FOLLOWER,
idempotent sequence checks, duplicates answered with their first offset). :class:`Produced`
is the tests' view of it: every partition batch a Produce request carried (:attr:`sent`,
decoded), the log's values, request counts, and a script of what the next Produce requests
get (fake Kafka actions: ``Fail(...)``, ``Drop()``, ``Drop(after_serving=True)``,
``Hang()``), played by one control registered first, so that a test's own controls still
see every request the script leaves alone.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from trio_brod import ProducerConfig
from trio_brod.protocol import (
    ApiVersionsRequest,
    InitProducerIdRequest,
    MetadataRequest,
    ProduceRequest,
)
from trio_brod.protocol.errors import (
    InvalidProducerEpochError,
    InvalidRecordError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)
from trio_brod.protocol.records import Compression, decode_batches
from trio_brod.testing.fake import (
    Drop,
    Fail,
    FakeKafka,
    Hang,
    Hold,
    Intercepted,
    Pass,
    fake_kafka,
)

#: The topic the producer tests produce to.
TOPIC = "orders"
#: What a script may hold for one Produce request (None: served normally).
Scripted = Fail | Drop | Hang | None
# The scripted faults the producer tests use.
NOT_LEADER = Fail(NotLeaderOrFollowerError)
NOT_ENOUGH_REPLICAS = Fail(NotEnoughReplicasError)
MESSAGE_TOO_LARGE = Fail(MessageTooLargeError)
INVALID_RECORD = Fail(InvalidRecordError)
OUT_OF_ORDER = Fail(OutOfOrderSequenceNumberError)
UNKNOWN_PRODUCER = Fail(UnknownProducerIdError)
INVALID_EPOCH = Fail(InvalidProducerEpochError)
#: The connection closes before the batch is written.
HANG_UP = Drop()
#: The batch is written, and the connection closes before the answer.
APPEND_THEN_HANG_UP = Drop(after_serving=True)
#: No answer ever (the connection's later requests wait behind it, as at a real broker).
IGNORE = Hang()
# Errors about a batch's content, which a broker finds the same way every time.
_CONTENT_ERRORS = (MessageTooLargeError, InvalidRecordError)

Header = tuple[str, bytes | None]


def quick(**options: Any) -> ProducerConfig:
    """A producer config with fast retries, for tests that go through several."""
    return ProducerConfig(retry_backoff=0.01, retry_backoff_max=0.05, **options)


@asynccontextmanager
async def serving(brokers: int = 1, partitions: int = 1) -> AsyncIterator[Produced]:
    """A fake Kafka (no topic auto-creation) where :data:`TOPIC` is, replicated on every
    broker so that its leaders can move, seen through :class:`Produced`."""
    async with fake_kafka(brokers, auto_create_topics=False) as fake:
        fake.create_topic(TOPIC, partitions, replication_factor=brokers)
        yield Produced(fake)


@dataclass
class Sent:
    """One partition's batch of a Produce request, as a broker received it."""

    node: int
    partition: int
    producer_id: int
    epoch: int
    base_sequence: int
    values: list[bytes | None]
    acks: int
    compression: Compression = Compression.NONE
    timeout_ms: int = -1
    #: The batch's records as decoded: (key, value, headers) of each.
    records: list[tuple[bytes | None, bytes | None, tuple[Header, ...]]] = field(
        default_factory=list
    )


class Produced:
    """The producer tests' view of a fake Kafka serving :data:`TOPIC`; see the module
    docstring.

    Attributes:
        sent: Every partition batch received, in order (a Produce request may carry several:
            a connection merges the requests of partitions that wait together).
        produce_requests: How many Produce requests arrived.
        actions: What the next Produce requests get, one each (None: served normally). A
            refusal of a batch's content (MESSAGE_TOO_LARGE, INVALID_RECORD) is skipped for
            a batch the log already holds: a broker checks content the same way every time.
        max_records_per_batch: Batches with more records are refused MESSAGE_TOO_LARGE.
        init_producer_id_calls, metadata_calls, connections: Requests counted (connections
            by their ApiVersions, the first request of each).
    """

    def __init__(self, fake: FakeKafka) -> None:
        self.fake = fake
        self.sent: list[Sent] = []
        self.produce_requests = 0
        self.actions: deque[Scripted] = deque()
        self.max_records_per_batch: float = math.inf
        self.init_producer_id_calls = 0
        self.metadata_calls = 0
        self.connections = 0
        self._hold: Hold | None = None
        self._sent = trio.Event()
        fake.control(None, self._decide, times=None)

    @property
    def bootstrap(self) -> list[str]:
        return self.fake.bootstrap_servers

    def values(self, partition: int = 0) -> list[bytes | None]:
        """The values in a partition's log, by offset."""
        return [
            record.value
            for stored in self.fake.log(TOPIC, partition).batches
            for batch in decode_batches(stored.data).batches
            for record in batch.records()
        ]

    async def wait_sent(self, count: int = 1) -> None:
        """Wait until at least *count* partition batches arrived."""
        while len(self.sent) < count:
            await self._sent.wait()

    def hold(self) -> None:
        """Keep the next Produce requests waiting, unanswered, until :meth:`release`."""
        self._hold = Hold()

    def release(self, then: Fail | Drop | Hang | None = None) -> None:
        """Let the held requests go: served normally, or with *then*."""
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.release(then)

    def _decide(self, request: Intercepted) -> Fail | Drop | Hang | Hold | Pass | None:
        if request.api_key == ApiVersionsRequest.API_KEY:
            self.connections += 1
        elif request.api_key == MetadataRequest.API_KEY:
            self.metadata_calls += 1
        elif request.api_key == InitProducerIdRequest.API_KEY:
            self.init_producer_id_calls += 1
        if not isinstance(request.body, ProduceRequest):
            return None
        self.produce_requests += 1
        written = True
        records = 0
        for sent in self._record(request):
            written = written and self._written(sent)
            records = max(records, len(sent.values))
        if self._hold is not None:
            return self._hold
        action = self.actions.popleft() if self.actions else None
        if isinstance(action, Fail) and issubclass(action.error, _CONTENT_ERRORS) and written:
            action = None
        if action is None and records > self.max_records_per_batch:
            action = Fail(MessageTooLargeError)
        return action

    def _record(self, request: Intercepted) -> list[Sent]:
        body = request.body
        assert isinstance(body, ProduceRequest)
        batches = []
        for topic in body.topic_data:
            for data in topic.partition_data:
                assert data.records is not None
                (batch,) = decode_batches(data.records).batches
                records = batch.records()
                batches.append(
                    Sent(
                        request.broker,
                        data.index,
                        batch.producer_id,
                        batch.producer_epoch,
                        batch.base_sequence,
                        [record.value for record in records],
                        body.acks,
                        batch.compression,
                        body.timeout_ms,
                        [(record.key, record.value, record.headers) for record in records],
                    )
                )
        self.sent += batches
        self._sent.set()
        self._sent = trio.Event()
        return batches

    def _written(self, sent: Sent) -> bool:
        """Whether the log holds this batch (same producer, epoch and first sequence)."""
        if sent.producer_id < 0:
            return False
        for stored in self.fake.log(TOPIC, sent.partition).batches:
            (batch,) = decode_batches(stored.data).batches
            if (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
                sent.producer_id,
                sent.epoch,
                sent.base_sequence,
            ):
                return True
        return False
