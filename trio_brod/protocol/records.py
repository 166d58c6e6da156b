"""Kafka record batches: encoding (magic v2) and decoding (magic v2, and legacy v0/v1).

Every produced and consumed message passes through this module, so its two loops --
:func:`encode_batch` writing records and :meth:`RecordBatch.records` reading them -- are
written for CPython's speed (see "Why the code looks like this" below). Everything else is
plain.

Decoding::

    decoded = decode_batches(fetch_partition.records)   # headers (and CRCs) now
    for batch in decoded.batches:
        if batch.is_control:
            ...                                         # transaction marker, see control_type()
            continue
        for record in batch:                            # records decoded on demand
            handle(record.offset, record.key, record.value)
    if decoded.truncated:
        ...                                             # the fetch cut a batch short

Encoding::

    batch = encode_batch([(timestamp_ms, key, value, headers), ...],
                         compression=Compression.ZSTD)

The layouts follow Kafka's documentation ("Record Batch", "Record", "Old Message Format") and
its Java client, which is the reference for everything the documentation leaves open (for
instance that a LOG_APPEND_TIME batch gives every record the batch's max timestamp, or that
any negative key length means a null key).

Why the code looks like this
----------------------------
CPython spends most of its time per bytecode, not per byte, so the record loops do as few
operations per record as they can:

* Varints are rarely longer than two bytes, so encoding looks them up in tables of
  precomputed ``bytes`` (every one- and two-byte varint) and decoding handles one- and two-byte
  varints inline, calling a function only for longer ones.
* Each record is one ``bytes % tuple`` format, and a batch is one ``b"".join``.
* Loop-invariant names (tables, methods) are bound to locals.
* :class:`Record` is a :class:`~typing.NamedTuple` built with ``tuple.__new__``: about 90 ns,
  against about 500 ns for a frozen slots dataclass (whose ``__init__`` must go through
  ``object.__setattr__`` once per field).
* Error handling costs nothing until it is needed: the loops are wrapped in ``try`` blocks
  (free in CPython 3.11+ until something raises) and bad input is diagnosed afterwards.

That is as far as pure Python goes (about 1.5 M records/s decoded, most of it in making the
``Record`` tuples), so the same two loops also exist in C, in the optional extension module
``trio_brod.protocol._speedups`` (``_speedups.c``), which is several times faster. This module
uses it when it was built and can be imported, unless the environment variable
``TRIO_BROD_PURE_PYTHON`` is set (to anything but ``0``); :data:`IMPLEMENTATION` says which is in
use. The Python code here stays the reference: the C code keeps its behaviour, messages
included, and the tests run against both and compare them.
"""

from __future__ import annotations

import enum
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from trio_brod.protocol import _crc32c
from trio_brod.protocol._compression import (
    UnsupportedCodecError,
    check_level,
    compress,
    decompress,
)
from trio_brod.protocol.errors import DecodeError, EncodeError

__all__ = [
    "BATCH_OVERHEAD",
    "CRC32C_IMPLEMENTATION",
    "IMPLEMENTATION",
    "Compression",
    "ControlRecordType",
    "CorruptRecordError",
    "DecodedBatches",
    "Header",
    "Record",
    "RecordBatch",
    "TimestampType",
    "UnsupportedCodecError",
    "decode_batches",
    "encode_batch",
    "encode_control_batch",
    "estimate_record_size",
    "with_producer_state",
]

#: ``"c"`` if CRC-32C checksums are computed by google-crc32c's C extension, ``"python"`` if by
#: the pure-Python fallback (about a thousand times slower; a :class:`RuntimeWarning` says so
#: the first time it is used).
CRC32C_IMPLEMENTATION: Final = _crc32c.IMPLEMENTATION

# The record loops in C (see the module docstring), or None for the pure-Python ones.
_c_decode_records: (
    Callable[
        [type[Record], bytes, int, int, int, int, int, TimestampType, int | None], list[Record]
    ]
    | None
) = None
_c_encode_records: (
    Callable[[Sequence[Any], int, Callable[[int, Any, int], tuple[bytes, int]]], tuple[bytes, int]]
    | None
) = None
if os.environ.get("TRIO_BROD_PURE_PYTHON", "") in ("", "0"):
    try:
        from trio_brod.protocol import _speedups
    except ImportError:  # not built (no compiler at install time), or built for another Python
        pass
    else:
        _c_decode_records = _speedups.decode_records
        _c_encode_records = _speedups.encode_records

#: ``"c"`` if records are encoded and decoded by the C extension
#: ``trio_brod.protocol._speedups``, ``"python"`` if by this module's pure-Python code (the
#: extension was not built, or ``TRIO_BROD_PURE_PYTHON`` is set). Both give the same results;
#: the C code is several times faster.
IMPLEMENTATION: Literal["c", "python"] = "python" if _c_decode_records is None else "c"


class Compression(enum.IntEnum):
    """The compression codec of a batch (bits 0-2 of its attributes)."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class TimestampType(enum.IntEnum):
    """What a record's timestamp means."""

    #: No timestamp (messages of magic 0); the timestamp is -1.
    NO_TIMESTAMP = -1
    #: The producer's clock when the record was created.
    CREATE_TIME = 0
    #: The broker's clock when it appended the batch (a topic setting).
    LOG_APPEND_TIME = 1


class ControlRecordType(enum.IntEnum):
    """The type of a control batch's record, from its key."""

    #: Any type this client does not know (Kafka's Java client has the same catch-all).
    #: Consumers should skip such batches.
    UNKNOWN = -1
    #: The transaction of the batch's producer was aborted.
    ABORT = 0
    #: The transaction of the batch's producer was committed.
    COMMIT = 1


#: A record header: a key (text) and a value (bytes, or ``None``).
Header = tuple[str, bytes | None]


class Record(NamedTuple):
    """One consumed message.

    A :class:`~typing.NamedTuple` rather than a dataclass because it is several times faster
    to build, and records are built by the million. So it is also a tuple: it compares
    equal to a tuple of the same fields, and :meth:`_replace` makes a changed copy.
    """

    #: The record's offset in its partition.
    offset: int
    #: Milliseconds since the Unix epoch, or -1 if the record has none.
    timestamp: int
    #: What :attr:`timestamp` means.
    timestamp_type: TimestampType
    #: The key, or ``None``.
    key: bytes | None
    #: The value, or ``None`` (a tombstone on compacted topics).
    value: bytes | None
    #: The headers in order; keys may repeat.
    headers: tuple[Header, ...]


class CorruptRecordError(DecodeError):
    """A batch or record is malformed, or its checksum does not match its bytes.

    Attributes:
        base_offset: The base offset of the batch it was found in, if known. The client adds
            the topic and partition when it reports the error.
    """

    def __init__(self, message: str, base_offset: int | None = None) -> None:
        if base_offset is not None:
            message = f"{message} (batch at offset {base_offset})"
        super().__init__(message)
        self.base_offset = base_offset
        self._message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_corrupt_record_error, (self._message, self.base_offset))


def _rebuild_corrupt_record_error(message: str, base_offset: int | None) -> CorruptRecordError:
    error = CorruptRecordError(message)
    error.base_offset = base_offset
    return error


# -- the v2 batch header -------------------------------------------------------------------------

#: Size of the v2 batch header, up to and including the record count.
BATCH_OVERHEAD: Final = 61
# baseOffset and batchLength: the prefix every message set entry (v0, v1, v2) starts with.
_LOG_OVERHEAD: Final = 12
# Everything after batchLength, so the minimum batchLength of a v2 batch.
_V2_MIN_LENGTH: Final = BATCH_OVERHEAD - _LOG_OVERHEAD
# Where the CRC-32C'd part (attributes onward) starts.
_V2_CRC_START: Final = 21
_PRODUCER_STATE_START: Final = 43

_V2_HEADER = struct.Struct(">qiibIhiqqqhii")
# Split in two for encoding: the CRC covers the second part, and is written in the first.
_V2_HEAD = struct.Struct(">qiibI")  # baseOffset, batchLength, partitionLeaderEpoch, magic, crc
_V2_TAIL = struct.Struct(">hiqqqhii")  # attributes .. record count
_PRODUCER_STATE = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence
_UINT32 = struct.Struct(">I")
_INT32 = struct.Struct(">i")

_COMPRESSION_MASK: Final = 0x07
_TIMESTAMP_TYPE_FLAG: Final = 0x08
_TRANSACTIONAL_FLAG: Final = 0x10
_CONTROL_FLAG: Final = 0x20

# Lookup by attribute bits instead of calling the enum class (a few hundred ns per batch).
_COMPRESSIONS: Final[tuple[Compression | None, ...]] = (*Compression, None, None, None)
_CREATE_OR_LOG_APPEND: Final = (TimestampType.CREATE_TIME, TimestampType.LOG_APPEND_TIME)
_EMPTY_HEADERS: Final[tuple[Header, ...]] = ()


# -- varints ---------------------------------------------------------------------------------------
#
# Kafka's record fields are zigzag varints: n becomes (n << 1) ^ (n >> 63), so small negative
# numbers are short too, then is written 7 bits at a time, least significant first, with the
# high bit of each byte saying "more follows".


def _encode_varint(value: int) -> bytes:
    """Zigzag varint of any int64 (the slow path; small values come from the tables below)."""
    if not -(1 << 63) <= value < (1 << 63):
        raise EncodeError(f"{value} does not fit in a varint (int64)")
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


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


# Every varint of one or two bytes: the values -8192..8191, for the encoder's fast path.
# Lengths and offset deltas are never negative and index a list, which raises IndexError from
# 8192 on. Timestamp deltas can be negative, and a list would answer a negative index from its
# end instead of failing, so they use a dict, which raises KeyError for anything outside the
# range. Either error sends the encoder to its slow path.
_SMALL_VARINT_LIMIT: Final = 8192
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
# The bytes of every one- and two-byte varint, by zigzag value (0..16383); built directly
# rather than by calling _encode_varint 24,576 times, which would add ~10 ms to the import.
_BY_ZIGZAG: Final = [bytes((z,)) for z in range(0x80)] + [
    bytes(((z & 0x7F) | 0x80, z >> 7)) for z in range(0x80, 1 << 14)
]
_VARINT_BY_LENGTH: Final = _BY_ZIGZAG[0 : 2 * _SMALL_VARINT_LIMIT : 2]  # zigzag(n) = 2n
_VARINT_BY_DELTA: Final = {
    n: _BY_ZIGZAG[(n << 1) ^ (n >> 63)] for n in range(-_SMALL_VARINT_LIMIT, _SMALL_VARINT_LIMIT)
}

# Decoding: the value of every one-byte varint (indexed by the byte) and of every two-byte
# varint (indexed by (second byte << 7) | (first byte & 0x7F)).
_ONE_BYTE_VARINT: Final = [(b >> 1) ^ -(b & 1) for b in range(0x80)]
_TWO_BYTE_VARINT: Final = [(v >> 1) ^ -(v & 1) for v in range(1 << 14)]

_NULL_LENGTH: Final = b"\x01"  # the varint -1: a null key, value or header value


# -- decoding --------------------------------------------------------------------------------------


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
        self.size = length + _LOG_OVERHEAD
        compression = _COMPRESSIONS[attributes & _COMPRESSION_MASK]
        if compression is None:
            raise CorruptRecordError(
                f"unknown compression codec id {attributes & _COMPRESSION_MASK}", self.base_offset
            )
        self.compression = compression
        if self.magic == 0:
            self.timestamp_type = TimestampType.NO_TIMESTAMP
        else:
            self.timestamp_type = _CREATE_OR_LOG_APPEND[(attributes & _TIMESTAMP_TYPE_FLAG) >> 3]
        self.is_transactional = bool(attributes & _TRANSACTIONAL_FLAG)
        self.is_control = bool(attributes & _CONTROL_FLAG)
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

    def records(self) -> list[Record]:
        """Decompress (if needed) and decode the records.

        The result is cached: later calls return the same list, so do not modify it.

        Raises:
            CorruptRecordError: the records are malformed or do not match the header.
            UnsupportedCodecError: the batch is compressed with snappy, lz4 or zstd and
                ``cramjam`` is not installed.
        """
        records = self._records
        if records is not None:
            return records
        count = self.record_count
        if count == 0:
            self._records = records = []
            return records
        start = self._start + BATCH_OVERHEAD
        end = self._start + self.size
        if self.compression is Compression.NONE:
            buf = self._data
        else:
            try:
                buf = decompress(self.compression, memoryview(self._data)[start:end])
            except DecodeError as exc:
                raise CorruptRecordError(str(exc), self.base_offset) from exc
            start = 0
            end = len(buf)
        # Every record takes at least 7 bytes; checking first bounds the work a corrupt count
        # can cause.
        if count > (end - start) // 7:
            raise CorruptRecordError(
                f"the batch claims {count} records but has only {end - start} bytes of records",
                self.base_offset,
            )
        if _c_decode_records is not None:
            log_append = self.timestamp_type is TimestampType.LOG_APPEND_TIME
            try:
                records = _c_decode_records(
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
            self._records = records
            return records
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
        self._records = records
        return records

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
            computed = _crc32c.value(self._data[start + _V2_CRC_START : end])
        else:
            computed = zlib.crc32(memoryview(self._data)[start + _LEGACY_CRC_START : end])
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

    The one- and two-byte varint cases are written out inline (see the module docstring);
    anything longer goes through :func:`_decode_varint`.
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


@dataclass(frozen=True, slots=True)
class DecodedBatches:
    """What :func:`decode_batches` found in a buffer."""

    #: The complete batches, in order.
    batches: list[RecordBatch]
    #: True if the buffer ended inside a batch, which was left out. Normal at the end of a
    #: Fetch response: brokers fill the response up to its byte limit and cut the last batch.
    truncated: bool = False
    #: The full size in bytes of that incomplete batch, if the buffer held its size field
    #: (its first 12 bytes); ``None`` otherwise. A consumer that got no complete batch at all
    #: can raise its fetch size to at least this.
    incomplete_batch_size: int | None = None


def decode_batches(
    data: bytes | bytearray | memoryview, *, verify_crc: bool = True
) -> DecodedBatches:
    """Decode the batch headers in ``data`` (the records field of a Fetch response).

    Each batch's header is decoded now, and its checksum verified if ``verify_crc``; the
    records are decoded when :meth:`RecordBatch.records` is called. A batch cut short at the
    end of ``data`` is reported in the result (see :class:`DecodedBatches`), never raised.

    ``data`` should be ``bytes``: the batches keep a reference to it (until they are gone) and
    slice records out of it. Anything else is copied into ``bytes`` first.

    Legacy messages (magic 0 and 1) are the exception to "records on demand": a compressed
    legacy message is decompressed here, because the offsets of its records are inside the
    compressed data.

    Raises:
        CorruptRecordError: a batch is malformed, or its checksum does not match.
        UnsupportedCodecError: a compressed legacy message needs ``cramjam``, which is not
            installed. (v2 batches raise it from :meth:`RecordBatch.records`.)
    """
    if type(data) is not bytes:
        data = bytes(data)
    batches: list[RecordBatch] = []
    append = batches.append
    unpack_length = _INT32.unpack_from
    unpack_v2 = _V2_HEADER.unpack_from
    crc32c = _crc32c.value
    pos = 0
    total = len(data)
    while pos < total:
        left = total - pos
        if left < _LOG_OVERHEAD:
            return DecodedBatches(batches, truncated=True)
        (length,) = unpack_length(data, pos + 8)
        size = length + _LOG_OVERHEAD
        if length < _LEGACY_MIN_LENGTH[0]:
            raise CorruptRecordError(
                f"the batch at byte {pos} has an impossible length {length}",
                _base_offset_at(data, pos),
            )
        if size > left:
            return DecodedBatches(batches, truncated=True, incomplete_batch_size=size)
        magic = data[pos + 16]
        if magic == 2:
            if length < _V2_MIN_LENGTH:
                raise CorruptRecordError(
                    f"the batch length {length} is smaller than a v2 batch header",
                    _base_offset_at(data, pos),
                )
            header = unpack_v2(data, pos)
            if verify_crc and crc32c(data[pos + _V2_CRC_START : pos + size]) != header[4]:
                raise CorruptRecordError(
                    f"checksum mismatch: the batch says {header[4]:#010x}, its bytes give "
                    f"{crc32c(data[pos + _V2_CRC_START : pos + size]):#010x}",
                    header[0],
                )
            batch = RecordBatch(data, pos, header)
            if batch.record_count < 0:
                raise CorruptRecordError(
                    f"the batch has a negative record count {batch.record_count}",
                    batch.base_offset,
                )
            append(batch)
        elif magic < 2:
            append(_decode_legacy(data, pos, size, magic, verify_crc))
        else:
            raise CorruptRecordError(
                f"the batch at byte {pos} has an unknown magic {magic}", _base_offset_at(data, pos)
            )
        pos += size
    return DecodedBatches(batches)


def _base_offset_at(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 8], "big", signed=True)


# -- legacy message sets (magic 0 and 1), decode only --------------------------------------------
#
# offset int64, message size int32, then the message: crc uint32 (CRC-32 of the rest), magic
# int8, attributes int8, [timestamp int64 if magic 1], key bytes (int32 length, -1 null),
# value bytes. A compressed message ("wrapper") holds a whole message set, compressed, as its
# value; its offset is that of the last inner message. Inner offsets are absolute in magic 0
# and relative (0, 1, ...) in magic 1.

_LEGACY_HEAD = struct.Struct(">qiIbb")  # offset, size, crc, magic, attributes
_LEGACY_CRC_START: Final = 16
# Smallest message size (crc, magic, attributes, [timestamp], key length, value length).
_LEGACY_MIN_LENGTH: Final = (14, 22)
_INT64 = struct.Struct(">q")


class _LegacyMessage(NamedTuple):
    offset: int
    crc: int
    magic: int
    attributes: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    size: int


def _read_legacy_message(data: bytes, pos: int, end: int, verify_crc: bool) -> _LegacyMessage:
    """Parse the legacy message at ``data[pos:end]`` (the whole entry, offset included)."""
    offset, length, crc, magic, attributes = _LEGACY_HEAD.unpack_from(data, pos)
    if magic not in (0, 1):
        raise CorruptRecordError(f"a legacy message has the magic {magic}", offset)
    if length < _LEGACY_MIN_LENGTH[magic] or pos + _LOG_OVERHEAD + length != end:
        raise CorruptRecordError(f"a legacy message has an invalid size {length}", offset)
    if verify_crc:
        computed = zlib.crc32(memoryview(data)[pos + _LEGACY_CRC_START : end])
        if computed != crc:
            raise CorruptRecordError(
                f"checksum mismatch: the message says {crc:#010x}, its bytes give {computed:#010x}",
                offset,
            )
    p = pos + 18
    if magic == 1:
        (timestamp,) = _INT64.unpack_from(data, p)
        p += 8
    else:
        timestamp = -1
    key, p = _read_legacy_bytes(data, p, end, offset)
    value, p = _read_legacy_bytes(data, p, end, offset)
    if p != end:
        raise CorruptRecordError(f"a legacy message has {end - p} bytes left over", offset)
    return _LegacyMessage(offset, crc, magic, attributes, timestamp, key, value, length + 12)


def _read_legacy_bytes(data: bytes, pos: int, end: int, offset: int) -> tuple[bytes | None, int]:
    if pos + 4 > end:
        raise CorruptRecordError("a legacy message ends early", offset)
    (length,) = _INT32.unpack_from(data, pos)
    pos += 4
    if length < 0:
        return None, pos
    if pos + length > end:
        raise CorruptRecordError("a legacy message ends early", offset)
    return data[pos : pos + length], pos + length


def _decode_legacy(data: bytes, pos: int, size: int, magic: int, verify_crc: bool) -> RecordBatch:
    message = _read_legacy_message(data, pos, pos + size, verify_crc)
    offset = message.offset
    codec = message.attributes & _COMPRESSION_MASK
    if magic == 0:
        timestamp_type = TimestampType.NO_TIMESTAMP
    else:
        timestamp_type = _CREATE_OR_LOG_APPEND[(message.attributes & _TIMESTAMP_TYPE_FLAG) >> 3]
    if codec == 0:
        records = [
            Record(offset, message.timestamp, timestamp_type, message.key, message.value, ())
        ]
    else:
        records = _decode_legacy_wrapper(message, codec, timestamp_type)
    base_offset = records[0].offset
    header = (
        base_offset,
        size - _LOG_OVERHEAD,
        -1,  # partition leader epoch
        magic,
        message.crc,
        message.attributes,
        offset - base_offset,  # last offset delta: the wrapper's offset is the last one
        records[0].timestamp,
        message.timestamp,
        -1,  # producer id
        -1,  # producer epoch
        -1,  # base sequence
        len(records),
    )
    return RecordBatch(data, pos, header, records)


def _decode_legacy_wrapper(
    wrapper: _LegacyMessage, codec: int, timestamp_type: TimestampType
) -> list[Record]:
    """The inner messages of a compressed legacy message, as records with absolute offsets."""
    if codec > 3:
        raise CorruptRecordError(
            f"a legacy message uses the compression codec id {codec}: legacy messages know "
            f"only 1 (gzip), 2 (snappy) and 3 (lz4)",
            wrapper.offset,
        )
    if wrapper.value is None:
        raise CorruptRecordError("a compressed legacy message has no value", wrapper.offset)
    try:
        inner = decompress(codec, wrapper.value, lz4_broken_header=wrapper.magic == 0)
    except DecodeError as exc:
        raise CorruptRecordError(str(exc), wrapper.offset) from exc
    messages = []
    pos = 0
    total = len(inner)
    try:
        while pos < total:
            (length,) = _INT32.unpack_from(inner, pos + 8)
            end = pos + _LOG_OVERHEAD + length
            if length < 0 or end > total:
                raise CorruptRecordError(
                    "an inner message of a compressed legacy message ends early", wrapper.offset
                )
            message = _read_legacy_message(inner, pos, end, verify_crc=True)
            if message.attributes & _COMPRESSION_MASK:
                raise CorruptRecordError(
                    "a compressed legacy message holds another compressed message", wrapper.offset
                )
            messages.append(message)
            pos = end
    except struct.error:
        raise CorruptRecordError(
            "an inner message of a compressed legacy message ends early", wrapper.offset
        ) from None
    if not messages:
        raise CorruptRecordError("a compressed legacy message holds no message", wrapper.offset)
    # Magic 0: inner offsets are absolute. Magic 1: they are relative, and the wrapper's offset
    # is the last inner message's.
    delta = 0 if wrapper.magic == 0 else wrapper.offset - messages[-1].offset
    if timestamp_type is TimestampType.LOG_APPEND_TIME:
        return [
            Record(m.offset + delta, wrapper.timestamp, timestamp_type, m.key, m.value, ())
            for m in messages
        ]
    return [
        Record(m.offset + delta, m.timestamp, timestamp_type, m.key, m.value, ()) for m in messages
    ]


# -- encoding --------------------------------------------------------------------------------------

_BYTES_TYPES: Final = (bytes, bytearray, memoryview)


def _as_bytes(data: object, what: str) -> bytes | None:
    """``data`` as ``bytes`` (or ``None``), or a TypeError naming ``what``."""
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, bytes):  # a subclass
        return bytes(data)
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)  # a memoryview of another format than bytes would have the wrong len
    raise TypeError(
        f"{what} must be bytes, bytearray, memoryview or None, not {type(data).__name__}"
    )


def _encode_headers(headers: object, what: str) -> bytes:
    """The header count and headers of a record, encoded, with full validation."""
    if not isinstance(headers, Sequence) or isinstance(headers, (str, bytes, bytearray)):
        raise TypeError(
            f"{what} headers must be a sequence of (str, bytes | None) pairs, "
            f"not {type(headers).__name__}"
        )
    parts = [_encode_varint(len(headers))]
    for number, header in enumerate(headers):
        if not isinstance(header, tuple) or len(header) != 2:
            raise TypeError(f"{what} header {number} must be a (str, bytes | None) pair")
        key, value = header
        if not isinstance(key, str):
            raise TypeError(f"{what} header {number} key must be a str, not {type(key).__name__}")
        key_bytes = key.encode()
        parts.append(_encode_varint(len(key_bytes)))
        parts.append(key_bytes)
        value_bytes = _as_bytes(value, f"{what} header {key!r} value")
        if value_bytes is None:
            parts.append(_NULL_LENGTH)
        else:
            parts.append(_encode_varint(len(value_bytes)))
            parts.append(value_bytes)
    return b"".join(parts)


def _encode_record_slow(index: int, record: object, base_timestamp: int) -> tuple[bytes, int]:
    """Encode one record (everything after its length) with full validation.

    The path for records the fast loop does not handle: None values, bytearray or memoryview
    data, headers, large fields -- and anything invalid, which gets its TypeError here.
    Returns the encoded record body and its timestamp.
    """
    what = f"record {index}"
    if not isinstance(record, Sequence) or isinstance(record, (str, bytes)) or len(record) != 4:
        raise TypeError(
            f"{what} must be a (timestamp_ms, key, value, headers) tuple, not {record!r:.100}"
        )
    timestamp, key, value, headers = record
    if not isinstance(timestamp, int):
        raise TypeError(f"{what} timestamp must be an int (ms), not {type(timestamp).__name__}")
    key = _as_bytes(key, f"{what} key")
    value = _as_bytes(value, f"{what} value")
    parts = [
        b"\x00",  # attributes
        _encode_varint(timestamp - base_timestamp),
        _encode_varint(index),
    ]
    for data in (key, value):
        if data is None:
            parts.append(_NULL_LENGTH)
        else:
            parts.append(_encode_varint(len(data)))
            parts.append(data)
    parts.append(_encode_headers(headers, what) if headers else b"\x00")
    return b"".join(parts), timestamp


def _encode_records(records: Sequence[Any]) -> tuple[bytes, int, int]:
    """Encode the records of a batch; return them, the first timestamp and the largest one.

    The hot loop of every producer, in C when the extension is there (which calls
    :func:`_encode_record_slow` for the records its fast path does not take, as below).

    Records whose timestamp is an ``int``, whose key is ``bytes`` or ``None``, whose value is
    ``bytes``, whose headers (if any) are a list or tuple of ``(str, bytes | None)`` tuples and
    whose fields are small take the fast path: one join of table-looked-up varints and the
    data. (A join of a tuple measured faster than one ``bytes % tuple`` format.) Anything
    else, including anything invalid, raises IndexError, KeyError, TypeError or ValueError
    inside the ``try`` and is redone by :func:`_encode_record_slow`, which handles the general
    case and names bad input.
    """
    first = records[0]
    if (
        not isinstance(first, Sequence)
        or isinstance(first, (str, bytes))
        or len(first) != 4
        or not isinstance(first[0], int)
    ):
        _encode_record_slow(0, first, 0)  # raises the right TypeError
    base_timestamp: int = first[0]
    if _c_encode_records is not None and _INT64_MIN <= base_timestamp <= _INT64_MAX:
        # The C loop works in int64; outside that range the batch fails anyway, and the Python
        # loop finds out which error comes first.
        payload, max_timestamp = _c_encode_records(records, base_timestamp, _encode_record_slow)
        return payload, base_timestamp, max_timestamp
    max_timestamp = base_timestamp
    by_delta = _VARINT_BY_DELTA
    by_length = _VARINT_BY_LENGTH
    parts: list[bytes] = []
    append = parts.append
    join = b"".join
    for index, record in enumerate(records):
        try:
            timestamp, key, value, headers = record
            if type(value) is not bytes or type(timestamp) is not int:
                raise TypeError  # not the fast path's case: let the slow path decide
            if type(key) is bytes:
                body = join(
                    (
                        b"\x00",  # attributes
                        by_delta[timestamp - base_timestamp],
                        by_length[index],
                        by_length[len(key)],
                        key,
                        by_length[len(value)],
                        value,
                        _encode_headers_fast(headers) if headers else b"\x00",
                    )
                )
            elif key is None:
                body = join(
                    (
                        b"\x00",
                        by_delta[timestamp - base_timestamp],
                        by_length[index],
                        b"\x01",  # null key
                        by_length[len(value)],
                        value,
                        _encode_headers_fast(headers) if headers else b"\x00",
                    )
                )
            else:
                raise TypeError
            append(by_length[len(body)])
        except (IndexError, KeyError, TypeError, ValueError):
            body, timestamp = _encode_record_slow(index, record, base_timestamp)
            append(_encode_varint(len(body)))
        append(body)
        if timestamp > max_timestamp:
            max_timestamp = timestamp
    return b"".join(parts), base_timestamp, max_timestamp


def _encode_headers_fast(headers: Sequence[Header]) -> bytes:
    """The header count and headers, for the fast path: raises TypeError (or IndexError, for
    long fields) on anything unusual, which the slow path then handles or reports."""
    if type(headers) is not list and type(headers) is not tuple:
        raise TypeError
    by_length = _VARINT_BY_LENGTH
    parts = [by_length[len(headers)]]
    append = parts.append
    for header in headers:
        if type(header) is not tuple:
            raise TypeError
        key, value = header
        if type(key) is not str:
            raise TypeError
        key_bytes = key.encode()
        append(by_length[len(key_bytes)])
        append(key_bytes)
        if type(value) is bytes:
            append(by_length[len(value)])
            append(value)
        elif value is None:
            append(_NULL_LENGTH)
        else:
            raise TypeError
    return b"".join(parts)


def _check_int(name: str, value: object, bits: int) -> None:
    if type(value) is not int or not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise EncodeError(f"{name} must be an int{bits}, not {value!r}")


def _assemble_batch(
    payload: bytes,
    *,
    count: int,
    attributes: int,
    base_timestamp: int,
    max_timestamp: int,
    base_offset: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    partition_leader_epoch: int,
) -> bytes:
    """Prefix the (possibly compressed) records with a v2 header and its CRC."""
    try:
        tail = _V2_TAIL.pack(
            attributes,
            count - 1,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        )
        head = _V2_HEAD.pack(
            base_offset,
            _V2_MIN_LENGTH + len(payload),
            partition_leader_epoch,
            2,
            _crc32c.extend(_crc32c.value(tail), payload),
        )
    except struct.error:
        # Find the culprit for a clear message.
        _check_int("base_offset", base_offset, 64)
        _check_int("partition_leader_epoch", partition_leader_epoch, 32)
        _check_int("producer_id", producer_id, 64)
        _check_int("producer_epoch", producer_epoch, 16)
        _check_int("base_sequence", base_sequence, 32)
        _check_int("a timestamp", base_timestamp, 64)
        _check_int("a timestamp", max_timestamp, 64)
        raise EncodeError(
            f"a batch of {count} records and {len(payload)} bytes cannot be encoded"
        ) from None
    return b"".join((head, tail, payload))


def encode_batch(
    records: Sequence[tuple[int, bytes | None, bytes | None, Sequence[Header]]],
    *,
    compression: Compression = Compression.NONE,
    compression_level: int | None = None,
    base_offset: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    is_transactional: bool = False,
    partition_leader_epoch: int = -1,
) -> bytes:
    """Encode records as one v2 record batch.

    Args:
        records: ``(timestamp_ms, key, value, headers)`` tuples, at least one. The
            timestamp is the record's CreateTime in ms since the epoch. Keys and values are
            ``bytes``, ``bytearray``, ``memoryview`` or ``None``; headers a sequence of
            ``(str, bytes | None)`` pairs. Records get the offset deltas 0, 1, ...
        compression: The codec; the records are compressed as a whole.
        compression_level: The codec's level, or ``None`` for a fast default. gzip 0-9
            (default 1), lz4 0-12 (0-2: the fast compressor, the default; 3-12: HC), zstd
            -7..22 (default 3). snappy has none.
        base_offset: Brokers assign offsets; producers leave this 0.
        producer_id: The idempotent or transactional producer's id, -1 for none.
        producer_epoch: Its epoch, -1 for none.
        base_sequence: The sequence number of the first record, -1 for none. See
            :func:`with_producer_state` to change these three later.
        is_transactional: The batch is part of a transaction.
        partition_leader_epoch: Brokers set this; producers leave it -1.

    Returns:
        The batch, ready for a Produce request.

    Raises:
        TypeError: a record, key, value or header has the wrong type (the message names it).
        EncodeError: no records, a bad compression level, or a number out of range.
        UnsupportedCodecError: snappy, lz4 or zstd without ``cramjam`` installed.
    """
    count = len(records)
    if count == 0:
        raise EncodeError("a batch needs at least one record")
    codec = _codec_id(compression)
    if codec:
        check_level(codec, compression_level)
    elif compression_level is not None:
        raise EncodeError("compression_level needs a compression codec")
    payload, base_timestamp, max_timestamp = _encode_records(records)
    if codec:
        payload = compress(codec, payload, compression_level)
    return _assemble_batch(
        payload,
        count=count,
        attributes=codec | (_TRANSACTIONAL_FLAG if is_transactional else 0),
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        partition_leader_epoch=partition_leader_epoch,
    )


def _codec_id(compression: Compression | int) -> int:
    if type(compression) is Compression:
        return compression.value
    try:
        return Compression(compression).value  # a plain int 0..4 is fine too
    except ValueError:
        raise EncodeError(f"unknown compression {compression!r}") from None


def encode_control_batch(
    control_type: ControlRecordType,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    timestamp_ms: int,
    base_offset: int = 0,
) -> bytes:
    """Encode a transaction marker, as a transaction coordinator has brokers write them.

    For tests and tools: clients never send these. The batch is transactional and a control
    batch, with one record whose key is (version 0, ``control_type``) and whose value is
    (version 0, ``coordinator_epoch``).
    """
    if control_type not in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        raise EncodeError(f"control_type must be ABORT or COMMIT, not {control_type!r}")
    _check_int("coordinator_epoch", coordinator_epoch, 32)
    key = struct.pack(">hh", 0, control_type)
    value = struct.pack(">hi", 0, coordinator_epoch)
    payload, _, _ = _encode_records([(timestamp_ms, key, value, ())])
    return _assemble_batch(
        payload,
        count=1,
        attributes=_TRANSACTIONAL_FLAG | _CONTROL_FLAG,
        base_timestamp=timestamp_ms,
        max_timestamp=timestamp_ms,
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=-1,
        partition_leader_epoch=-1,
    )


def with_producer_state(
    batch: bytes, *, producer_id: int, producer_epoch: int, base_sequence: int
) -> bytes:
    """Return ``batch`` (one encoded v2 batch) with new producer fields and a fixed CRC.

    The records, compressed or not, are copied as they are: this is how an idempotent
    producer re-sequences batches it already encoded (after its epoch is bumped, say).

    Raises:
        EncodeError: ``batch`` is not one complete v2 batch, or a number is out of range.
    """
    batch = bytes(batch)
    if (
        len(batch) < BATCH_OVERHEAD
        or batch[16] != 2
        or _INT32.unpack_from(batch, 8)[0] + _LOG_OVERHEAD != len(batch)
    ):
        raise EncodeError("with_producer_state() needs exactly one complete v2 record batch")
    try:
        state = _PRODUCER_STATE.pack(producer_id, producer_epoch, base_sequence)
    except struct.error:
        _check_int("producer_id", producer_id, 64)
        _check_int("producer_epoch", producer_epoch, 16)
        _check_int("base_sequence", base_sequence, 32)
        raise
    records_part = batch[BATCH_OVERHEAD - 4 :]  # record count and records
    covered_head = batch[_V2_CRC_START:_PRODUCER_STATE_START] + state
    crc = _crc32c.extend(_crc32c.value(covered_head), records_part)
    return b"".join((batch[:17], _UINT32.pack(crc), covered_head, records_part))


# Bound on the fixed part of a record: length (5), attributes (1), timestampDelta (10),
# offsetDelta (5), key length (5), value length (5), header count (5).
_RECORD_OVERHEAD_BOUND: Final = 36
# Per header: key length (5) and value length (5).
_HEADER_OVERHEAD_BOUND: Final = 10


def estimate_record_size(key: bytes | None, value: bytes | None, headers: Sequence[Header]) -> int:
    """An upper bound of the encoded (uncompressed) size of a record with these fields.

    Cheap enough to call for every message; it checks the same types as
    :func:`encode_batch`, so a producer that calls it when a message is submitted rejects
    bad input there, before it can spoil a batch.

    Raises:
        TypeError: a field has the wrong type (the message names it).
    """
    size = _RECORD_OVERHEAD_BOUND
    size += len(key) if type(key) is bytes else _byte_size(key, "key")
    size += len(value) if type(value) is bytes else _byte_size(value, "value")
    if headers:
        checked: object = headers
        if not isinstance(checked, Sequence) or isinstance(checked, (str, bytes, bytearray)):
            _encode_headers(checked, "a record's")  # raises the TypeError
        for number, header in enumerate(headers):
            if not isinstance(header, tuple) or len(header) != 2:
                raise TypeError(f"header {number} must be a (str, bytes | None) pair")
            header_key, header_value = header
            if type(header_key) is not str:
                raise TypeError(
                    f"header {number} key must be a str, not {type(header_key).__name__}"
                )
            size += _HEADER_OVERHEAD_BOUND + (
                len(header_key) if header_key.isascii() else len(header_key.encode())
            )
            if type(header_value) is bytes:
                size += len(header_value)
            else:
                size += _byte_size(header_value, f"header {header_key!r} value")
    return size


def _byte_size(data: object, what: str) -> int:
    """The size in bytes of ``data`` (0 for None), or a TypeError naming ``what``."""
    if data is None:
        return 0
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, memoryview):
        return data.nbytes
    raise TypeError(
        f"{what} must be bytes, bytearray, memoryview or None, not {type(data).__name__}"
    )
