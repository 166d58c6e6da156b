"""v2 record batches, decoded: :class:`RecordBatch` and the loop that decodes its records.

Part of :mod:`trio_brod.protocol.records` (the public module; its docstring explains why the
record loop looks as it does). :func:`~trio_brod.protocol.records.decode_batches` (in
``_records_decode``) makes the batches; this module turns a batch's bytes into
:class:`~trio_brod.protocol.records.Record` tuples when they are asked for, with the C loop
when ``_records_speedups`` found it, else with :func:`_decode_v2_records`, the reference.
Legacy message sets (``_records_legacy``) are presented as :class:`RecordBatch` objects too.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any, Final

from trio_brod.protocol import _crc32c
from trio_brod.protocol._compression import decompress_view
from trio_brod.protocol._records_format import (
    BATCH_OVERHEAD,
    COMPRESSION_MASK,
    CONTROL_FLAG,
    CREATE_OR_LOG_APPEND,
    LEGACY_CRC_START,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_FLAG,
    TRANSACTIONAL_FLAG,
    V2_CRC_START,
    Compression,
    ControlRecordType,
    CorruptRecordError,
    Header,
    Record,
    TimestampType,
)
from trio_brod.protocol._records_speedups import c_decode_records
from trio_brod.protocol.errors import DecodeError

# Lookup by attribute bits instead of calling the enum class (a few hundred ns per batch).
_COMPRESSIONS: Final[tuple[Compression | None, ...]] = (*Compression, None, None, None)
_EMPTY_HEADERS: Final[tuple[Header, ...]] = ()


# -- varints ---------------------------------------------------------------------------------------
#
# Kafka's record fields are zigzag varints: n becomes (n << 1) ^ (n >> 63), so small negative
# numbers are short too, then is written 7 bits at a time, least significant first, with the
# high bit of each byte saying "more follows". (Encoding them: ``_records_encode``.)


def _decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read the zigzag varint at ``buf[pos]``; return it and the position after it.

    Raises IndexError if ``buf`` ends inside it (the callers turn that into a
    CorruptRecordError).
    """
    result = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if shift == 63 and byte > 1:  # only the lowest bit of a tenth byte is in 64 bits
                raise CorruptRecordError("a varint does not fit in 64 bits")
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptRecordError("a varint is longer than 10 bytes")


# The value of every one-byte varint (indexed by the byte) and of every two-byte
# varint (indexed by (second byte << 7) | (first byte & 0x7F)).
_ONE_BYTE_VARINT: Final = [(b >> 1) ^ -(b & 1) for b in range(0x80)]
_TWO_BYTE_VARINT: Final = [(v >> 1) ^ -(v & 1) for v in range(1 << 14)]


# -- the batch -------------------------------------------------------------------------------------


class RecordBatch:
    """One decoded batch: header fields decoded eagerly, records on demand.

    Made by :func:`decode_batches`, not directly. The attributes are the batch header's
    fields; treat them as read-only. Legacy message sets (magic 0 and 1) are presented as
    batches too, one per top-level message: a plain message is a batch of one record, a
    compressed wrapper message a batch of its inner messages. Their producer fields are -1 and
    their ``partition_leader_epoch`` is -1.

    ``len(batch)`` is :attr:`record_count`, read from the header without decoding anything
    (so a batch without records is falsy). A batch may indeed hold no records at all: log
    compaction can empty a batch and keep its header (to preserve producer state), and a
    consumer must still move past it, to :attr:`next_offset`.
    """

    __slots__ = (
        "_data",
        "_records",
        "_start",
        "attributes",
        "base_offset",
        "base_sequence",
        "base_timestamp",
        "compression",
        "crc",
        "is_control",
        "is_transactional",
        "last_offset_delta",
        "magic",
        "max_timestamp",
        "partition_leader_epoch",
        "producer_epoch",
        "producer_id",
        "record_count",
        "size",
        "timestamp_type",
    )

    #: The offset of the first record (for v2 batches, as assigned when the batch was written;
    #: compaction may have removed it).
    base_offset: int
    #: The leader epoch of the broker that appended the batch (-1 if unknown).
    partition_leader_epoch: int
    #: The format version: 2, or 0 and 1 for legacy messages.
    magic: int
    #: The checksum stored in the batch (CRC-32C for v2, CRC-32 for v0/v1).
    crc: int
    #: The raw attributes field.
    attributes: int
    #: The last offset of the batch minus :attr:`base_offset`.
    last_offset_delta: int
    #: The timestamp of the first record (ms), or the delete horizon (see Kafka's KIP-534);
    #: -1 if none.
    base_timestamp: int
    #: The largest record timestamp (ms), or the broker's append time for LOG_APPEND_TIME.
    max_timestamp: int
    #: The idempotent/transactional producer's id, or -1.
    producer_id: int
    #: The producer's epoch, or -1.
    producer_epoch: int
    #: The producer's sequence number of the first record, or -1.
    base_sequence: int
    #: How many records the batch holds, from the header.
    record_count: int
    #: The batch's codec.
    compression: Compression
    #: What the records' timestamps mean.
    timestamp_type: TimestampType
    #: The batch belongs to a transaction.
    is_transactional: bool
    #: The batch is a control batch (a transaction marker), not user data.
    is_control: bool
    #: How many bytes the batch occupies in the buffer it was decoded from.
    size: int

    def __init__(
        self,
        data: bytes,
        start: int,
        header: tuple[int, ...],
        records: list[Record] | None = None,
    ) -> None:
        (
            self.base_offset,
            length,
            self.partition_leader_epoch,
            self.magic,
            self.crc,
            attributes,
            self.last_offset_delta,
            self.base_timestamp,
            self.max_timestamp,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.record_count,
        ) = header
        self.attributes = attributes
        self.size = length + LOG_OVERHEAD
        compression = _COMPRESSIONS[attributes & COMPRESSION_MASK]
        if compression is None:
            raise CorruptRecordError(
                f"unknown compression codec id {attributes & COMPRESSION_MASK}", self.base_offset
            )
        self.compression = compression
        if self.magic == 0:
            self.timestamp_type = TimestampType.NO_TIMESTAMP
        else:
            self.timestamp_type = CREATE_OR_LOG_APPEND[(attributes & TIMESTAMP_TYPE_FLAG) >> 3]
        self.is_transactional = bool(attributes & TRANSACTIONAL_FLAG)
        self.is_control = bool(attributes & CONTROL_FLAG)
        self._data = data
        self._start = start
        # The decoded records, once records() has run (legacy batches: from the start).
        self._records = records

    @property
    def last_offset(self) -> int:
        """The offset of the last record the batch was written with."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """The offset after this batch: where a consumer continues."""
        return self.base_offset + self.last_offset_delta + 1

    def __len__(self) -> int:
        return self.record_count

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def __repr__(self) -> str:
        return (
            f"<RecordBatch magic={self.magic} offsets={self.base_offset}..{self.last_offset} "
            f"records={self.record_count} compression={self.compression.name} "
            f"transactional={self.is_transactional} control={self.is_control} size={self.size}>"
        )

    def records(self, *, keep: bool = True) -> list[Record]:
        """Decompress (if needed) and decode the records.

        The result is cached: later calls return the same list, so do not modify it. With
        ``keep=False`` it is not: the records are decoded anew on every such call (unless a
        call with ``keep=True`` cached them), for a reader that goes through the batch once
        and wants their memory back as soon as it is done with them. (A consumer going
        through a message set of thousands of records this way spends several percent less
        CPU per record than with all of them kept: what it frees is reused while still in
        the CPU's caches.)

        Raises:
            CorruptRecordError: the records are malformed or do not match the header.
            UnsupportedCodecError: the batch is compressed with snappy, lz4 or zstd and
                ``cramjam`` is not installed.
        """
        records = self._records
        if records is None:
            records = self._decode()
            if keep:
                self._records = records
        return records

    def _decode(self) -> list[Record]:
        count = self.record_count
        if count == 0:
            return []
        start = self._start + BATCH_OVERHEAD
        end = self._start + self.size
        buf: bytes | memoryview
        if self.compression is Compression.NONE:
            buf = self._data
        else:
            buf = self._decompress()
            start = 0
            end = len(buf)
        # Every record takes at least 7 bytes; checking first bounds the work a corrupt count
        # can cause.
        if count > (end - start) // 7:
            raise CorruptRecordError(
                f"the batch claims {count} records but has only {end - start} bytes of records",
                self.base_offset,
            )
        if c_decode_records is not None:
            log_append = self.timestamp_type is TimestampType.LOG_APPEND_TIME
            try:
                records = c_decode_records(
                    Record,
                    buf,
                    start,
                    end,
                    count,
                    self.base_offset,
                    self.base_timestamp,
                    self.timestamp_type,
                    self.max_timestamp if log_append else None,
                )
            except ValueError as exc:  # the C decoder's way of saying "corrupt"
                raise CorruptRecordError(str(exc), self.base_offset) from None
            return records
        if not isinstance(buf, bytes):
            buf = bytes(buf)  # the Python loop slices it, and keys and values must be bytes
        records = _decode_v2_records(
            buf, start, end, count, self.base_offset, self.base_timestamp, self.timestamp_type
        )
        if self.timestamp_type is TimestampType.LOG_APPEND_TIME:
            # The broker's append time is in the header; the records' own deltas still
            # describe their create times, which Kafka's clients do not report. Rebuilding
            # the list here keeps a per-record branch out of the hot loop for everyone else.
            append_time = self.max_timestamp
            new = _new_record
            records = [
                new(Record, (offset, append_time, timestamp_type, key, value, headers))
                for offset, _, timestamp_type, key, value, headers in records
            ]
        return records

    def _decompress(self) -> bytes | memoryview:
        start = self._start + BATCH_OVERHEAD
        end = self._start + self.size
        try:
            return decompress_view(self.compression, memoryview(self._data)[start:end])
        except DecodeError as exc:
            raise CorruptRecordError(str(exc), self.base_offset) from exc

    def control_type(self) -> ControlRecordType:
        """The type of a control batch: ABORT or COMMIT for transaction markers.

        Raises:
            ValueError: this is not a control batch.
            CorruptRecordError: the control record is malformed.
        """
        if not self.is_control:
            raise ValueError(f"{self!r} is not a control batch")
        records = self.records()
        if not records:
            raise CorruptRecordError("a control batch holds no record", self.base_offset)
        key = records[0].key
        if key is None or len(key) < 4:
            raise CorruptRecordError(
                f"a control record's key must be at least 4 bytes, not {key!r}", self.base_offset
            )
        version, type_id = struct.unpack_from(">hh", key)
        if version < 0:
            raise CorruptRecordError(
                f"a control record has the invalid version {version}", self.base_offset
            )
        try:
            return ControlRecordType(type_id)
        except ValueError:
            return ControlRecordType.UNKNOWN

    def validate_crc(self) -> None:
        """Check the stored checksum against the batch's bytes.

        Raises:
            CorruptRecordError: they do not match.
        """
        start = self._start
        end = start + self.size
        if self.magic == 2:
            computed = _crc32c.value(self._data[start + V2_CRC_START : end])
        else:
            computed = zlib.crc32(memoryview(self._data)[start + LEGACY_CRC_START : end])
        if computed != self.crc:
            raise CorruptRecordError(
                f"checksum mismatch: the batch says {self.crc:#010x}, its bytes give "
                f"{computed:#010x}",
                self.base_offset,
            )


_new_record: Any = tuple.__new__


def _decode_v2_records(
    buf: bytes,
    pos: int,
    end: int,
    count: int,
    base_offset: int,
    base_timestamp: int,
    timestamp_type: TimestampType,
) -> list[Record]:
    """Decode ``count`` records from ``buf[pos:end]``: the hot loop of every consumer.

    The one- and two-byte varint cases are written out inline (see
    :mod:`trio_brod.protocol.records`); anything longer goes through :func:`_decode_varint`.
    """
    records: list[Record] = []
    append = records.append
    new = _new_record
    record_class = Record
    one = _ONE_BYTE_VARINT
    two = _TWO_BYTE_VARINT
    varint = _decode_varint
    no_headers = _EMPTY_HEADERS
    try:
        for _ in range(count):
            # length
            b = buf[pos]
            if b < 0x80:
                length = one[b]
                pos += 1
            else:
                c = buf[pos + 1]
                if c < 0x80:
                    length = two[(c << 7) | (b & 0x7F)]
                    pos += 2
                else:
                    length, pos = varint(buf, pos)
            record_end = pos + length
            # attributes (unused) and timestampDelta
            b = buf[pos + 1]
            if b < 0x80:
                timestamp_delta = one[b]
                pos += 2
            else:
                timestamp_delta, pos = varint(buf, pos + 1)
            # offsetDelta
            b = buf[pos]
            if b < 0x80:
                offset_delta = one[b]
                pos += 1
            else:
                c = buf[pos + 1]
                if c < 0x80:
                    offset_delta = two[(c << 7) | (b & 0x7F)]
                    pos += 2
                else:
                    offset_delta, pos = varint(buf, pos)
            # key
            b = buf[pos]
            if b < 0x80:
                key_length = one[b]
                pos += 1
            else:
                key_length, pos = varint(buf, pos)
            if key_length >= 0:
                key = buf[pos : pos + key_length]
                pos += key_length
            else:  # any negative length is null, as in Kafka's Java client
                key = None
            # value
            b = buf[pos]
            if b < 0x80:
                value_length = one[b]
                pos += 1
            else:
                c = buf[pos + 1]
                if c < 0x80:
                    value_length = two[(c << 7) | (b & 0x7F)]
                    pos += 2
                else:
                    value_length, pos = varint(buf, pos)
            if value_length >= 0:
                value = buf[pos : pos + value_length]
                pos += value_length
            else:
                value = None
            # headers
            if buf[pos] == 0:
                headers = no_headers
                pos += 1
            else:
                headers, pos = _decode_headers(buf, pos)
            if pos != record_end:
                raise CorruptRecordError(
                    f"a record's length says {length} bytes but its fields take "
                    f"{length + pos - record_end}"
                )
            append(
                new(
                    record_class,
                    (
                        base_offset + offset_delta,
                        base_timestamp + timestamp_delta,
                        timestamp_type,
                        key,
                        value,
                        headers,
                    ),
                )
            )
    except IndexError:
        raise CorruptRecordError("the records end early", base_offset) from None
    except CorruptRecordError as exc:
        if exc.base_offset is None:
            raise CorruptRecordError(str(exc), base_offset) from None
        raise
    if pos < end:
        raise CorruptRecordError(
            f"{end - pos} bytes are left over after the last record", base_offset
        )
    if pos > end:
        raise CorruptRecordError("the last record runs past the end of the batch", base_offset)
    return records


def _decode_headers(buf: bytes, pos: int) -> tuple[tuple[Header, ...], int]:
    """Decode the header count and headers at ``buf[pos]``; return them and the next position.

    Called only for records that have headers. Header keys and values are short, so their
    lengths get the one-byte fast path.
    """
    one = _ONE_BYTE_VARINT
    b = buf[pos]
    if b < 0x80:
        count = one[b]
        pos += 1
    else:
        count, pos = _decode_varint(buf, pos)
    if count < 0:
        raise CorruptRecordError(f"a record has an invalid header count {count}")
    headers: list[Header] = []
    append = headers.append
    for _ in range(count):
        b = buf[pos]
        if b < 0x80:
            key_length = one[b]
            pos += 1
        else:
            key_length, pos = _decode_varint(buf, pos)
        if key_length < 0:
            raise CorruptRecordError(f"a header has an invalid key length {key_length}")
        key_end = pos + key_length
        try:
            key = buf[pos:key_end].decode()
        except UnicodeDecodeError:
            raise CorruptRecordError("a header key is not valid UTF-8") from None
        b = buf[key_end]  # IndexError here too if the key ran past the end
        if b < 0x80:
            value_length = one[b]
            pos = key_end + 1
        else:
            value_length, pos = _decode_varint(buf, key_end)
        if value_length >= 0:
            append((key, buf[pos : pos + value_length]))
            pos += value_length
        else:
            append((key, None))
    return tuple(headers), pos
