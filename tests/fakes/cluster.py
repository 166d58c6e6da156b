"""A fake cluster of brokers serving one topic to the producer: Metadata, InitProducerId and
Produce, with one shared log per partition (as if replicated), idempotent sequence numbers
checked the way a broker does, and a script of what goes wrong (an error code, a response
that never comes, a connection that breaks before or after the append, a leader that moves).

What a real broker does on its own is tested against real Kafka (tests/integration).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.fakes.broker import FakeBroker, Request, answer
from trio_brod import ProducerConfig
from trio_brod.protocol import (
    InitProducerIdRequest,
    InitProducerIdResponse,
    MetadataRequest,
    MetadataResponse,
    ProduceRequest,
    ProduceResponse,
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

PRODUCE = ProduceRequest.API_KEY
METADATA = MetadataRequest.API_KEY
INIT_PRODUCER_ID = InitProducerIdRequest.API_KEY
TOPIC = "orders"
# Error codes the fake answers with.
NOT_LEADER = NotLeaderOrFollowerError.code
MESSAGE_TOO_LARGE = MessageTooLargeError.code
NOT_ENOUGH_REPLICAS = NotEnoughReplicasError.code
OUT_OF_ORDER = OutOfOrderSequenceNumberError.code
INVALID_EPOCH = InvalidProducerEpochError.code
UNKNOWN_PRODUCER = UnknownProducerIdError.code
INVALID_RECORD = InvalidRecordError.code
# Errors about a batch's content, which a broker finds the same way every time.
_CONTENT_ERRORS = frozenset({MESSAGE_TOO_LARGE, INVALID_RECORD})


def quick(**options: Any) -> ProducerConfig:
    """A config with fast retries, for tests that go through several."""
    return ProducerConfig(retry_backoff=0.01, retry_backoff_max=0.05, **options)


@dataclass
class Sent:
    """One Produce request as a fake broker saw it (for one partition)."""

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
    records: list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]] = field(
        default_factory=list
    )


@dataclass
class ProducerEntry:
    """The broker's idempotence state for one producer id on one partition."""

    epoch: int
    next_sequence: int
    # The last few batches: (base sequence, record count, base offset), to spot duplicates.
    recent: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=5))


class FakeCluster:
    """Fake brokers 1..n serving one topic; see the module docstring.

    Attributes:
        leaders: The leader of each partition; change it to move leadership (the old
            leader then answers NOT_LEADER_OR_FOLLOWER, as a real one would).
        logs: Each partition's log: the values, by offset.
        sent: Every partition's batch received, in order (a Produce request may carry
            several: a connection merges the requests of partitions that wait together).
        produce_requests: How many Produce requests arrived.
        actions: What to do with the next partition batches, one action each: an error code
            (answered without appending), ``"hang_up"`` (close the connection, nothing
            appended), ``"append_then_hang_up"``, ``"ignore"`` (never answer), or None
            (answer as usual).
    """

    def __init__(self, brokers: int = 1, partitions: int = 1) -> None:
        self.brokers = [FakeBroker() for _ in range(brokers)]
        self.leaders = {p: 1 + p % brokers for p in range(partitions)}
        self.logs: dict[int, list[bytes | None]] = {p: [] for p in range(partitions)}
        self.sent: list[Sent] = []
        # Produce requests received (one may carry several partitions' batches).
        self.produce_requests = 0
        self.actions: deque[int | str | None] = deque()
        self.max_records_per_batch = math.inf
        self.idempotence: dict[tuple[int, int], ProducerEntry] = {}
        self.next_producer_id = 1000
        self.init_producer_id_calls = 0
        # Error codes to answer the next InitProducerId requests with, one each.
        self.init_producer_id_errors: deque[int] = deque()
        self.metadata_calls = 0
        self._gate: trio.Event | None = None
        # Connections the fake hung up on: requests already read from them are dropped, as
        # a real broker never gets to them.
        self._hung_up: set[int] = set()

    async def start(self, nursery: trio.Nursery) -> FakeCluster:
        for node, broker in enumerate(self.brokers, start=1):
            await nursery.start(broker.serve)
            broker.handlers[METADATA] = self._metadata
            broker.handlers[INIT_PRODUCER_ID] = self._init_producer_id
            broker.handlers[PRODUCE] = self._produce_handler(node)
        return self

    @property
    def bootstrap(self) -> list[str]:
        return [broker.address for broker in self.brokers]

    def hold(self) -> None:
        """Keep Produce requests waiting (unanswered) until :meth:`release`."""
        self._gate = trio.Event()

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def values(self, partition: int = 0) -> list[bytes | None]:
        return self.logs[partition]

    async def _metadata(self, stream: trio.SocketStream, request: Request) -> None:
        self.metadata_calls += 1
        body: MetadataRequest = request.body
        wanted = None if body.topics is None else [t.name for t in body.topics]
        topics = []
        if wanted is None or TOPIC in wanted:
            topics.append(
                MetadataResponse.MetadataResponseTopic(
                    name=TOPIC,
                    partitions=[
                        MetadataResponse.MetadataResponsePartition(
                            partition_index=p, leader_id=leader, replica_nodes=[leader]
                        )
                        for p, leader in sorted(self.leaders.items())
                    ],
                )
            )
        for name in wanted or ():
            if name != TOPIC:
                topics.append(MetadataResponse.MetadataResponseTopic(name=name, error_code=3))
        await answer(
            stream,
            request,
            MetadataResponse(
                cluster_id="fake",
                controller_id=1,
                brokers=[
                    MetadataResponse.MetadataResponseBroker(
                        node_id=node, host="127.0.0.1", port=broker.port
                    )
                    for node, broker in enumerate(self.brokers, start=1)
                ],
                topics=topics,
            ),
        )

    async def _init_producer_id(self, stream: trio.SocketStream, request: Request) -> None:
        self.init_producer_id_calls += 1
        if self.init_producer_id_errors:
            code = self.init_producer_id_errors.popleft()
            await answer(stream, request, InitProducerIdResponse(error_code=code))
            return
        producer_id, self.next_producer_id = self.next_producer_id, self.next_producer_id + 1
        await answer(
            stream, request, InitProducerIdResponse(producer_id=producer_id, producer_epoch=0)
        )

    def _produce_handler(self, node: int) -> Callable[[trio.SocketStream, Request], Any]:
        async def handle(stream: trio.SocketStream, request: Request) -> None:
            """Answer a Produce request, for each of its partitions in turn (a connection
            may merge several partitions' requests into one)."""
            if id(stream) in self._hung_up:
                return
            body: ProduceRequest = request.body
            self.produce_requests += 1
            results: list[tuple[int, int, int]] = []
            for topic in body.topic_data:
                for data in topic.partition_data:
                    outcome = await self._produce_partition(node, body, data)
                    if outcome is None:  # no answer at all
                        return
                    if isinstance(outcome, str):  # "hang_up"
                        await self._hang_up(stream)
                        return
                    results.append(outcome)
            if body.acks == 0:
                return
            await answer(
                stream,
                request,
                ProduceResponse(
                    responses=[
                        ProduceResponse.TopicProduceResponse(
                            name=TOPIC,
                            partition_responses=[
                                ProduceResponse.PartitionProduceResponse(
                                    index=partition, error_code=code, base_offset=offset
                                )
                                for partition, code, offset in results
                            ],
                        )
                    ]
                ),
            )

        return handle

    async def _produce_partition(
        self, node: int, body: ProduceRequest, data: Any
    ) -> tuple[int, int, int] | str | None:
        """Take one partition's batch: its (partition, error code, base offset), or
        ``"hang_up"``, or None when the request must go unanswered."""
        partition = data.index
        assert data.records is not None
        (batch,) = decode_batches(data.records).batches
        values = [record.value for record in batch.records()]
        self.sent.append(
            Sent(
                node,
                partition,
                batch.producer_id,
                batch.producer_epoch,
                batch.base_sequence,
                values,
                body.acks,
                batch.compression,
                body.timeout_ms,
                [(record.key, record.value, record.headers) for record in batch.records()],
            )
        )
        if self._gate is not None:
            await self._gate.wait()
        action = self.actions.popleft() if self.actions else None
        if action in _CONTENT_ERRORS and self._written(partition, batch, len(values)):
            # A broker checks a batch's content the same way each time: one it wrote
            # before is not refused for its content when it comes again.
            action = None
        if action == "ignore":
            return None
        if action == "hang_up":
            return "hang_up"
        if isinstance(action, int):
            code, offset = action, -1
        elif self.leaders[partition] != node:
            code, offset = NOT_LEADER, -1
        elif len(values) > self.max_records_per_batch:
            code, offset = MESSAGE_TOO_LARGE, -1
        else:
            code, offset = self._append(partition, batch, values)
        if action == "append_then_hang_up":
            return "hang_up"
        return partition, code, offset

    async def _hang_up(self, stream: trio.SocketStream) -> None:
        self._hung_up.add(id(stream))
        await trio.aclose_forcefully(stream)

    def _written(self, partition: int, batch: Any, count: int) -> bool:
        """Whether this batch (same producer, epoch and sequence numbers) is in the log."""
        entry = self.idempotence.get((partition, batch.producer_id))
        if batch.producer_id < 0 or entry is None or entry.epoch != batch.producer_epoch:
            return False
        return (batch.base_sequence, count) in {(first, n) for first, n, _ in entry.recent}

    def _append(self, partition: int, batch: Any, values: list[bytes | None]) -> tuple[int, int]:
        """Append like a broker: check idempotent sequence numbers first."""
        log = self.logs[partition]
        if batch.producer_id >= 0:
            key = (partition, batch.producer_id)
            entry = self.idempotence.get(key)
            sequence = batch.base_sequence
            if entry is not None:
                if batch.producer_epoch < entry.epoch:
                    return INVALID_EPOCH, -1
                if batch.producer_epoch > entry.epoch:
                    if sequence != 0:
                        return OUT_OF_ORDER, -1
                elif sequence != entry.next_sequence:
                    for first, count, offset in entry.recent:
                        if first == sequence and count == len(values):
                            return 0, offset  # a duplicate: the offset it was written at
                    return OUT_OF_ORDER, -1
            if entry is None or batch.producer_epoch != entry.epoch:
                entry = self.idempotence[key] = ProducerEntry(batch.producer_epoch, sequence)
            entry.recent.append((sequence, len(values), len(log)))
            entry.next_sequence = sequence + len(values)
        offset = len(log)
        log.extend(values)
        return 0, offset
