"""Encoding v2 record batches: :func:`encode_batch` and its relatives.

Part of :mod:`trio_brod.protocol.records` (the public module; its docstring explains why the
record loop looks as it does). :func:`encode_records` is the hot loop of every producer, run
in C when ``_records_speedups`` found the extension, with :func:`encode_record_slow` as the
path for everything the fast loops do not take (and the place bad input is named). The rest
wraps the records in a v2 header: codec, producer state, CRC-32C.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

from trio_brod.protocol import _crc32c
from trio_brod.protocol._compression import check_level, compress
from trio_brod.protocol._records_format import (
    BATCH_OVERHEAD,
    CONTROL_FLAG,
    INT32,
    LOG_OVERHEAD,
    TRANSACTIONAL_FLAG,
    V2_CRC_START,
    V2_MIN_LENGTH,
    Compression,
    ControlRecordType,
    Header,
)
from trio_brod.protocol._records_speedups import c_encode_records
from trio_brod.protocol.errors import EncodeError

# The v2 header, split in two for encoding: the CRC covers the second part, and is written in
# the first.
_V2_HEAD = struct.Struct(">qiibI")  # baseOffset, batchLength, partitionLeaderEpoch, magic, crc
_V2_TAIL = struct.Struct(">hiqqqhii")  # attributes .. record count
_PRODUCER_STATE_START: Final = 43
_PRODUCER_STATE = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence
_UINT32 = struct.Struct(">I")


# -- varints ---------------------------------------------------------------------------------------
#
# Zigzag varints (see ``_records_batch`` for the format), written from tables for the common
# short ones.


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


_NULL_LENGTH: Final = b"\x01"  # the varint -1: a null key, value or header value


# -- encoding --------------------------------------------------------------------------------------


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


def encode_record_slow(index: int, record: object, base_timestamp: int) -> tuple[bytes, int]:
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


def encode_records(records: Sequence[Any]) -> tuple[bytes, int, int]:
    """Encode the records of a batch; return them, the first timestamp and the largest one.

    The hot loop of every producer, in C when the extension is there (which calls
    :func:`encode_record_slow` for the records its fast path does not take, as below).

    Records whose timestamp is an ``int``, whose key is ``bytes`` or ``None``, whose value is
    ``bytes``, whose headers (if any) are a list or tuple of ``(str, bytes | None)`` tuples and
    whose fields are small take the fast path: one join of table-looked-up varints and the
    data. (A join of a tuple measured faster than one ``bytes % tuple`` format.) Anything
    else, including anything invalid, raises IndexError, KeyError, TypeError or ValueError
    inside the ``try`` and is redone by :func:`encode_record_slow`, which handles the general
    case and names bad input.
    """
    first = records[0]
    if (
        not isinstance(first, Sequence)
        or isinstance(first, (str, bytes))
        or len(first) != 4
        or not isinstance(first[0], int)
    ):
        encode_record_slow(0, first, 0)  # raises the right TypeError
    base_timestamp: int = first[0]
    if c_encode_records is not None and _INT64_MIN <= base_timestamp <= _INT64_MAX:
        # The C loop works in int64; outside that range the batch fails anyway, and the Python
        # loop finds out which error comes first.
        payload, max_timestamp = c_encode_records(records, base_timestamp, encode_record_slow)
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
            body, timestamp = encode_record_slow(index, record, base_timestamp)
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
            V2_MIN_LENGTH + len(payload),
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
    payload, base_timestamp, max_timestamp = encode_records(records)
    if codec:
        payload = compress(codec, payload, compression_level)
    return _assemble_batch(
        payload,
        count=count,
        attributes=codec | (TRANSACTIONAL_FLAG if is_transactional else 0),
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
    payload, _, _ = encode_records([(timestamp_ms, key, value, ())])
    return _assemble_batch(
        payload,
        count=1,
        attributes=TRANSACTIONAL_FLAG | CONTROL_FLAG,
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
        or INT32.unpack_from(batch, 8)[0] + LOG_OVERHEAD != len(batch)
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
    covered_head = batch[V2_CRC_START:_PRODUCER_STATE_START] + state
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
