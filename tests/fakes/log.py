"""An in-memory partition log behind the scripted fake broker, for the few consumer tests
the fake Kafka (:mod:`trio_brod.testing.fake`) cannot play.

Consumer unit tests run against the fake Kafka, which answers errors, hang-ups, held and
delayed fetches on demand. This scripted log stays for what the fake Kafka, a model of a
current Kafka, never does:

* cut even the first batch of a fetch at ``max_bytes`` (:attr:`FakeLog.strict_max_bytes`),
  as a broker without KIP-74 did, so that a consumer must grow its fetch size;
* answer a lone long poll at once with nothing (:attr:`FakeLog.early_answers`), as Kafka
  answers a merged long poll when another partition in it has data;
* serve a log that diverged from what the consumer read, with a leader epoch per batch
  (:attr:`FakeLog.diverging`, KIP-320): an unclean leader election, which the fake Kafka,
  holding one copy of each log, has none of;
* beside the scripted broker (tests/fakes/broker.py), which keeps every request with the
  connection it came on, and lets a test answer old Fetch versions and OffsetForLeaderEpoch.

It speaks Metadata, ListOffsets and Fetch, much as a broker does for one topic led by one
broker. Real consuming is tested against real Kafka (tests/integration/test_consumer*.py).
"""

from __future__ import annotations

import struct
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.fakes.broker import FakeBroker, Request, answer
from trio_brod.protocol import FetchResponse, ListOffsetsResponse, MetadataResponse
from trio_brod.protocol.records import encode_batch

FETCH, LIST_OFFSETS, METADATA = 1, 2, 3


@dataclass
class Batch:
    """One batch of the fake log, encoded with its offsets."""

    base_offset: int
    last_offset: int
    data: bytes
    timestamps: list[int]


@dataclass
class FakeLog:
    """A partition's log and the broker's answers about it.

    Attributes:
        batches: The log, in offset order.
        log_start: The first offset still in the log (raise it to "delete records").
        fetch_errors: Error codes to answer the next fetches with, one each.
        strict_max_bytes: Cut even the first batch at ``max_bytes`` (a broker without
            Kafka's KIP-74), so that a consumer must grow its fetch size.
        early_answers: Answer long polls at once, with nothing, as the broker answers a
            merged long poll as soon as another partition in it has data.
    """

    topic: str = "fake-topic"
    topic_id: uuid.UUID = field(default_factory=uuid.uuid4)
    batches: list[Batch] = field(default_factory=list)
    log_start: int = 0
    fetch_errors: deque[int] = field(default_factory=deque)
    strict_max_bytes: bool = False
    early_answers: bool = False
    #: The partition's leader epoch in Metadata answers.
    leader_epoch: int = -1
    #: (epoch, end offset): answer a fetch past ``end offset`` that names a last fetched
    #: epoch with this diverging epoch, as a leader whose log diverged does (KIP-320).
    diverging: tuple[int, int] | None = None
    fetches: list[Any] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event)
    _fetched: trio.Event = field(default_factory=trio.Event)

    @property
    def end(self) -> int:
        """The high watermark: the offset the next record gets."""
        return self.batches[-1].last_offset + 1 if self.batches else 0

    def append(
        self,
        values: list[bytes],
        *,
        keys: list[bytes | None] | None = None,
        timestamp: int = 1_000_000,
        **options: Any,
    ) -> Batch:
        """Append one batch of records with these values (timestamps 1 ms apart)."""
        keys = keys or [None] * len(values)
        timestamps = [timestamp + i for i in range(len(values))]
        records = [(t, k, v, ()) for t, k, v in zip(timestamps, keys, values, strict=True)]
        data = encode_batch(records, base_offset=self.end, **options)
        return self._add(Batch(self.end, self.end + len(values) - 1, data, timestamps))

    def _add(self, batch: Batch) -> Batch:
        self.batches.append(batch)
        self.changed()
        return batch

    def changed(self) -> None:
        """Wake fetches waiting for data."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_fetch(self, offset: int) -> None:
        """Wait until the last fetch that arrived is one at ``offset``."""
        while not self.fetches or self.fetches[-1].topics[0].partitions[0].fetch_offset != offset:
            await self._fetched.wait()

    # ---------------------------------------------------------------- answers

    def serve(self, broker: FakeBroker) -> None:
        """Answer Metadata, ListOffsets and Fetch on ``broker`` about this log."""

        async def metadata(stream: trio.SocketStream, request: Request) -> None:
            await answer(stream, request, self.metadata(broker))

        async def list_offsets(stream: trio.SocketStream, request: Request) -> None:
            await answer(stream, request, self.list_offsets(request.body))

        async def fetch(stream: trio.SocketStream, request: Request) -> None:
            self.fetches.append(request.body)
            self._fetched.set()
            self._fetched = trio.Event()
            await answer(stream, request, await self.fetch(request.body))

        broker.handlers[METADATA] = metadata
        broker.handlers[LIST_OFFSETS] = list_offsets
        broker.handlers[FETCH] = fetch

    def metadata(self, broker: FakeBroker) -> MetadataResponse:
        return MetadataResponse(
            cluster_id="fake",
            controller_id=1,
            brokers=[
                MetadataResponse.MetadataResponseBroker(
                    node_id=1, host="127.0.0.1", port=broker.port
                )
            ],
            topics=[
                MetadataResponse.MetadataResponseTopic(
                    name=self.topic,
                    topic_id=self.topic_id,
                    partitions=[
                        MetadataResponse.MetadataResponsePartition(
                            partition_index=0,
                            leader_id=1,
                            leader_epoch=self.leader_epoch,
                            replica_nodes=[1],
                            isr_nodes=[1],
                        )
                    ],
                )
            ],
        )

    def list_offsets(self, body: Any) -> ListOffsetsResponse:
        wanted = body.topics[0].partitions[0].timestamp
        if wanted == -2:
            offset = self.log_start
        elif wanted == -1:
            offset = self.end
        else:
            offset = -1
            for batch in self.batches:
                for i, stamp in enumerate(batch.timestamps):
                    if stamp >= wanted and batch.base_offset + i >= self.log_start:
                        offset = batch.base_offset + i
                        break
                if offset >= 0:
                    break
        return ListOffsetsResponse(
            topics=[
                ListOffsetsResponse.ListOffsetsTopicResponse(
                    name=self.topic,
                    partitions=[
                        ListOffsetsResponse.ListOffsetsPartitionResponse(
                            partition_index=0, offset=offset, timestamp=-1
                        )
                    ],
                )
            ]
        )

    async def fetch(self, body: Any) -> FetchResponse:
        wanted = body.topics[0].partitions[0]
        offset, limit = wanted.fetch_offset, wanted.partition_max_bytes
        error = self.fetch_errors.popleft() if self.fetch_errors else 0
        if not error and not self.log_start <= offset <= self.end:
            error = 1  # OFFSET_OUT_OF_RANGE
        end = self.end
        if not error and offset >= end and body.max_wait_ms > 0 and not self.early_answers:
            # Long poll: wait for data, or max_wait_ms.
            with trio.move_on_after(body.max_wait_ms / 1000):
                while offset >= self.end:
                    await self._changed.wait()
            end = self.end
        diverging = FetchResponse.EpochEndOffset()
        if self.diverging is not None and wanted.last_fetched_epoch >= 0:
            epoch, end_offset = self.diverging
            if offset > end_offset:
                diverging = FetchResponse.EpochEndOffset(epoch=epoch, end_offset=end_offset)
                end = offset  # nothing to read
        records = b"" if error else self._read(offset, end, limit)
        return FetchResponse(
            responses=[
                FetchResponse.FetchableTopicResponse(
                    topic=self.topic,
                    topic_id=self.topic_id,
                    partitions=[
                        FetchResponse.PartitionData(
                            partition_index=0,
                            error_code=error,
                            high_watermark=self.end,
                            last_stable_offset=self.end,
                            log_start_offset=self.log_start,
                            diverging_epoch=diverging,
                            records=records,
                        )
                    ],
                )
            ]
        )

    def _read(self, offset: int, end: int, limit: int) -> bytes:
        """The log's bytes from the batch holding ``offset``, cut at ``limit`` bytes as a
        broker cuts them (the first batch whole, unless :attr:`strict_max_bytes`)."""
        chunks: list[bytes] = []
        size = 0
        for batch in self.batches:
            if batch.last_offset < offset or batch.base_offset < self.log_start:
                continue
            if batch.base_offset >= end:
                break
            if not chunks and not self.strict_max_bytes:
                limit = max(limit, len(batch.data))
            chunks.append(batch.data)
            size += len(batch.data)
            if size >= limit:
                break
        return b"".join(chunks)[:limit]


def _varint(value: int) -> bytes:
    """A zigzag varint, as v2 records use."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def compacted_batch(base_offset: int, deltas: list[int], last_offset_delta: int) -> bytes:
    """An uncompressed v2 batch whose records have the given offset deltas, as log
    compaction leaves batches: fewer records than offsets. Values are ``b"v<offset>"``."""
    from trio_brod.protocol._crc32c import value as crc32c

    records = bytearray()
    for delta in deltas:
        value = f"v{base_offset + delta}".encode()
        body = (
            b"\x00"  # attributes
            + _varint(delta)  # timestamp delta
            + _varint(delta)  # offset delta
            + _varint(-1)  # null key
            + _varint(len(value))
            + value
            + _varint(0)  # no headers
        )
        records += _varint(len(body)) + body
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            0,  # attributes
            last_offset_delta,
            1_000_000,
            1_000_000 + last_offset_delta,
            -1,
            -1,
            -1,
            len(deltas),
        )
        + records
    )
    crc = crc32c(after_crc)
    head = struct.pack(">iBI", -1, 2, crc)  # partition leader epoch, magic, crc
    length = len(head) + len(after_crc)
    return struct.pack(">qi", base_offset, length) + head + after_crc
