"""One partition's log in the fake Kafka: a pure core, no I/O, no clock.

Everything a broker decides about a partition's data is decided here, so that it can be
tested with hypothesis without sockets: which produced batches are accepted (Kafka's
``LogValidator`` and ``ProducerStateManager`` rules), which offsets they get, what a fetch
returns, where the high watermark and the log start offset are, and which offset a timestamp
maps to.

Kafka's rules kept here, each with the error a real broker answers:

* A produced partition holds exactly one v2 batch (``INVALID_RECORD`` otherwise, as
  Kafka answers for Produce v3+); its CRC-32C must match (``CORRUPT_MESSAGE``); its records
  must decode and be as many as its header says (``CORRUPT_MESSAGE``); clients may not write
  control batches (``INVALID_RECORD``); a batch over ``max.message.bytes`` is
  ``MESSAGE_TOO_LARGE``.
* Idempotent producers (a producer id >= 0): per producer, the epoch may not go back
  (``INVALID_PRODUCER_EPOCH``), a new epoch starts at sequence 0, and each batch's first
  sequence follows the last one's (``OUT_OF_ORDER_SEQUENCE_NUMBER`` otherwise). A batch equal
  to one of the producer's last five is a retry: it is not written again, and the answer is
  the offset it got the first time (as Kafka does; Kafka no longer answers
  ``DUPLICATE_SEQUENCE_NUMBER`` for those).
* The broker assigns offsets: it rewrites the batch's base offset and partition leader
  epoch, which lie outside the CRC, so the client's CRC stays valid.
* Transactions, as Kafka's ``ProducerStateManager`` tracks them per partition: a producer's
  first transactional batch opens its transaction here, and the coordinator's marker
  (:meth:`PartitionLog.append_control`) closes it. The last stable offset is the first offset
  of the oldest open transaction (the high watermark when none is open), and an abort marker
  records the aborted range, which read_committed fetches are told about
  (:meth:`PartitionLog.aborted_between`, Kafka's aborted transaction index). A marker with a
  newer epoch (a fenced or timed out producer) moves the producer to that epoch, so its
  older epoch's batches are INVALID_PRODUCER_EPOCH from then on.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from trio_brod.protocol.errors import (
    CorruptMessageError,
    InvalidProducerEpochError,
    InvalidRecordError,
    KafkaError,
    MessageTooLargeError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceNumberError,
    UnsupportedCompressionTypeError,
)
from trio_brod.protocol.records import (
    ControlRecordType,
    CorruptRecordError,
    RecordBatch,
    UnsupportedCodecError,
    decode_batches,
)

__all__ = ["AppendResult", "LogError", "PartitionLog", "StoredBatch", "holds_transactional"]

#: Kafka's default ``max.message.bytes`` (1 MiB plus the batch overhead).
DEFAULT_MAX_MESSAGE_BYTES = 1048588
#: How many recent batches per producer Kafka keeps to recognise retries.
RECENT_BATCHES = 5
_INT32_MAX = 2**31 - 1
_OFFSET_AND_LENGTH = struct.Struct(">qi")
_EPOCH = struct.Struct(">i")


class LogError(Exception):
    """A request the log refuses, with the Kafka error to answer."""

    def __init__(self, error: type[KafkaError], message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One batch as the log holds it: bytes with the broker's offsets written in."""

    base_offset: int
    last_offset: int
    data: bytes
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    is_transactional: bool
    is_control: bool


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What a produce of one batch got: its base offset, and whether it was a retry."""

    base_offset: int
    log_start_offset: int
    duplicate: bool = False


@dataclass(slots=True)
class _ProducerEntry:
    epoch: int
    # (first sequence, last sequence, base offset) of the latest batches, oldest first.
    recent: deque[tuple[int, int, int]] = field(
        default_factory=lambda: deque(maxlen=RECENT_BATCHES)
    )

    @property
    def last_sequence(self) -> int:
        return self.recent[-1][1] if self.recent else -1


def holds_transactional(data: bytes | None) -> bool:
    """Whether produced records hold a transactional batch (unreadable records: no)."""
    if not data:
        return False
    try:
        return any(b.is_transactional for b in decode_batches(data, verify_crc=False).batches)
    except (CorruptRecordError, UnsupportedCodecError):
        return False


def _sequence_after(sequence: int, count: int) -> int:
    """The sequence *count* records after *sequence*, wrapping past int32's max to 0."""
    return (sequence + count) % (_INT32_MAX + 1)


@dataclass
class PartitionLog:
    """A partition's records and the producer state that guards them.

    With one in-memory copy there is no replication: every appended batch is at once
    committed, so the high watermark is the log end. The last stable offset is held back by
    open transactions (see :meth:`last_stable_offset`).
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    batches: list[StoredBatch] = field(default_factory=list)
    log_start_offset: int = 0
    _end: int = 0
    _producers: dict[int, _ProducerEntry] = field(default_factory=dict)
    #: producer id -> first offset of its open transaction in this partition.
    _open_transactions: dict[int, int] = field(default_factory=dict)
    #: (producer id, first offset, marker offset) of every aborted transaction, in order.
    _aborted: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def high_watermark(self) -> int:
        """The offset the next record gets (every record below it is committed)."""
        return self._end

    @property
    def last_stable_offset(self) -> int:
        """The offset read_committed consumers read up to.

        The first offset of the oldest open transaction, or the high watermark while no
        transaction is open: a read_committed reader cannot know yet whether records past it
        will commit.
        """
        return min(self._open_transactions.values(), default=self._end)

    def aborted_between(self, start: int, upto: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions a fetch of the offsets
        [*start*, *upto*) must be told about: those that end at or after *start* and begin
        before *upto* (Kafka's aborted transaction index, as ``collectAbortedTxns`` reads it).
        """
        return [
            (producer_id, first)
            for producer_id, first, last in self._aborted
            if last >= start and first < upto
        ]

    # -- produce -------------------------------------------------------------------------

    def validate(self, data: bytes | None) -> RecordBatch:
        """Check a produced partition's records as Kafka does, and return its one batch.

        Raises:
            LogError: The records are refused; its ``error`` is what to answer.
        """
        if not data:
            raise LogError(InvalidRecordError, "a produce request must hold one record batch")
        try:
            decoded = decode_batches(data)
        except CorruptRecordError as exc:
            raise LogError(CorruptMessageError, str(exc)) from None
        except UnsupportedCodecError as exc:
            raise LogError(UnsupportedCompressionTypeError, str(exc)) from None
        if decoded.truncated:
            raise LogError(CorruptMessageError, "the records end inside a batch")
        if len(decoded.batches) != 1:
            raise LogError(
                InvalidRecordError,
                f"produce requests must hold exactly one record batch per partition, "
                f"not {len(decoded.batches)}",
            )
        (batch,) = decoded.batches
        if batch.magic != 2:
            raise LogError(InvalidRecordError, "produce requests must use record format v2")
        if batch.is_control:
            raise LogError(InvalidRecordError, "clients may not write control batches")
        if batch.size > self.max_message_bytes:
            raise LogError(
                MessageTooLargeError,
                f"the batch is {batch.size} bytes, over max.message.bytes "
                f"({self.max_message_bytes})",
            )
        try:
            records = batch.records()
        except CorruptRecordError as exc:
            raise LogError(CorruptMessageError, str(exc)) from None
        except UnsupportedCodecError as exc:
            raise LogError(UnsupportedCompressionTypeError, str(exc)) from None
        if len(records) != batch.last_offset_delta + 1:
            raise LogError(
                CorruptMessageError,
                f"the batch holds {len(records)} records but its last offset delta is "
                f"{batch.last_offset_delta}",
            )
        return batch

    def append(self, data: bytes | None, *, leader_epoch: int = 0) -> AppendResult:
        """Validate and append a produced batch (the records of one produced partition).

        Raises:
            LogError: The batch is refused; nothing was written.
        """
        batch = self.validate(data)
        assert data is not None
        duplicate = self._check_producer(batch)
        if duplicate is not None:
            return AppendResult(duplicate, self.log_start_offset, duplicate=True)
        return AppendResult(self._write(batch, data, leader_epoch), self.log_start_offset)

    def append_control(self, data: bytes, *, leader_epoch: int = 0) -> int:
        """Append a control batch (a transaction marker) as the coordinator writes it.

        The transaction coordinator's entry point; clients cannot reach it. It closes the
        producer's open transaction in this partition (if it wrote here), records the range
        of an aborted one, and moves the producer to the marker's epoch if that is newer (its
        next epoch starts at sequence 0). Returns the marker's offset.
        """
        (batch,) = decode_batches(data).batches
        producer_id = batch.producer_id
        entry = self._producers.get(producer_id)
        if entry is None or batch.producer_epoch > entry.epoch:
            self._producers[producer_id] = _ProducerEntry(batch.producer_epoch)
        offset = self._write(batch, data, leader_epoch)
        first = self._open_transactions.pop(producer_id, None)
        if first is not None and batch.control_type() == ControlRecordType.ABORT:
            self._aborted.append((producer_id, first, offset))
        return offset

    def _check_producer(self, batch: RecordBatch) -> int | None:
        """Kafka's sequence checks; the base offset of the first write for a retry."""
        producer_id = batch.producer_id
        if producer_id < 0:
            return None
        first = batch.base_sequence
        last = _sequence_after(first, batch.last_offset_delta)
        entry = self._producers.get(producer_id)
        if entry is not None and batch.producer_epoch < entry.epoch:
            raise LogError(
                InvalidProducerEpochError,
                f"producer {producer_id} epoch {batch.producer_epoch} is older than the "
                f"current epoch {entry.epoch}",
            )
        if entry is not None and batch.producer_epoch == entry.epoch:
            for seen_first, seen_last, base_offset in entry.recent:
                if (seen_first, seen_last) == (first, last):
                    return base_offset
            expected = _sequence_after(entry.last_sequence, 1)
            if entry.last_sequence >= 0 and first != expected:
                raise LogError(
                    OutOfOrderSequenceNumberError,
                    f"producer {producer_id}: sequence {first}, expected {expected}",
                )
        elif first != 0:
            raise LogError(
                OutOfOrderSequenceNumberError,
                f"producer {producer_id} epoch {batch.producer_epoch} is new to this "
                f"partition: its first sequence must be 0, not {first}",
            )
        return None

    def _write(self, batch: RecordBatch, data: bytes, leader_epoch: int) -> int:
        base = self._end
        length = _OFFSET_AND_LENGTH.unpack_from(data)[1]
        stored = (
            _OFFSET_AND_LENGTH.pack(base, length) + _EPOCH.pack(leader_epoch) + bytes(data[16:])
        )
        self.batches.append(
            StoredBatch(
                base_offset=base,
                last_offset=base + batch.last_offset_delta,
                data=stored,
                max_timestamp=batch.max_timestamp,
                producer_id=batch.producer_id,
                producer_epoch=batch.producer_epoch,
                is_transactional=batch.is_transactional,
                is_control=batch.is_control,
            )
        )
        self._end = base + batch.last_offset_delta + 1
        if batch.is_transactional and not batch.is_control:
            self._open_transactions.setdefault(batch.producer_id, base)
        if batch.producer_id >= 0 and not batch.is_control:
            entry = self._producers.get(batch.producer_id)
            if entry is None or entry.epoch != batch.producer_epoch:
                entry = self._producers[batch.producer_id] = _ProducerEntry(batch.producer_epoch)
            last = _sequence_after(batch.base_sequence, batch.last_offset_delta)
            entry.recent.append((batch.base_sequence, last, base))
        return base

    # -- fetch ---------------------------------------------------------------------------

    def check_fetch_offset(self, offset: int) -> None:
        """Raise :class:`LogError` (OFFSET_OUT_OF_RANGE) unless a fetch may start there."""
        if not self.log_start_offset <= offset <= self._end:
            raise LogError(
                OffsetOutOfRangeError,
                f"offset {offset} is outside the log [{self.log_start_offset}, {self._end}]",
            )

    def read(self, offset: int, max_bytes: int, *, upto: int, min_one: bool) -> bytes:
        """The bytes a fetch from *offset* gets, as Kafka slices its log.

        From the batch holding *offset*, the batches below *upto* (the high watermark or the
        last stable offset), cut at *max_bytes* even inside a batch, as Kafka cuts its log
        files; with *min_one* (the first partition of a response with data, KIP-74) at least
        the first whole batch, however large.
        """
        self.check_fetch_offset(offset)
        chunks: list[bytes] = []
        limit = max(max_bytes, 0)
        total = 0
        for batch in self._batches_from(offset):
            if batch.base_offset >= upto:
                break
            if min_one and not chunks:
                limit = max(limit, len(batch.data))
            if total >= limit:
                break
            chunks.append(batch.data)
            total += len(batch.data)
        return b"".join(chunks)[:limit]

    def _batches_from(self, offset: int) -> list[StoredBatch]:
        batches = self.batches
        low, high = 0, len(batches)
        while low < high:  # the first batch whose last offset is >= offset
            middle = (low + high) // 2
            if batches[middle].last_offset < offset:
                low = middle + 1
            else:
                high = middle
        return batches[low:]

    # -- offsets -------------------------------------------------------------------------

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """The first record whose timestamp is at least *timestamp*: (offset, timestamp).

        None if there is none (Kafka then answers offset -1, timestamp -1).
        """
        for batch in self._batches_from(self.log_start_offset):
            if batch.is_control or batch.max_timestamp < timestamp:
                continue
            (decoded,) = decode_batches(batch.data).batches
            for record in decoded.records():
                if record.offset >= self.log_start_offset and record.timestamp >= timestamp:
                    return record.offset, record.timestamp
        return None

    def max_timestamp_offset(self) -> tuple[int, int] | None:
        """The record with the largest timestamp (the first of equals): (offset, timestamp)."""
        best: tuple[int, int] | None = None
        for batch in self._batches_from(self.log_start_offset):
            if batch.is_control or (best is not None and batch.max_timestamp <= best[1]):
                continue
            (decoded,) = decode_batches(batch.data).batches
            for record in decoded.records():
                if record.offset < self.log_start_offset:
                    continue
                if best is None or record.timestamp > best[1]:
                    best = (record.offset, record.timestamp)
        return best

    def delete_records(self, offset: int) -> int:
        """Move the log start offset up to *offset* (-1: the high watermark), as
        DeleteRecords does; returns the new log start offset (the "low watermark").

        Raises:
            LogError: OFFSET_OUT_OF_RANGE for an offset past the high watermark.
        """
        if offset == -1:
            offset = self._end
        if not 0 <= offset <= self._end:
            raise LogError(
                OffsetOutOfRangeError,
                f"cannot delete records up to {offset}: the high watermark is {self._end}",
            )
        if offset > self.log_start_offset:
            self.log_start_offset = offset
            self.batches = [b for b in self.batches if b.last_offset >= offset]
        return self.log_start_offset
