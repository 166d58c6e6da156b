"""Legacy message sets (magic 0 and 1), decode only, presented as record batches.

Part of :mod:`trio_brod.protocol.records`. Brokers still return these for data written before
Kafka 0.11 (and never convert them on fetch when the client accepts them), so a consumer must
read them; nothing writes them any more. :func:`decode_legacy` turns one top-level message into
a :class:`~trio_brod.protocol.records.RecordBatch`: a batch of one record for a plain message,
of its inner messages for a compressed wrapper (decompressed now, because the inner offsets are
inside the compressed data).
"""

from __future__ import annotations

import struct
import zlib
from typing import Final, NamedTuple

from trio_brod.protocol._compression import decompress
from trio_brod.protocol._records_batch import RecordBatch
from trio_brod.protocol._records_format import (
    COMPRESSION_MASK,
    CREATE_OR_LOG_APPEND,
    INT32,
    LEGACY_CRC_START,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_FLAG,
    CorruptRecordError,
    Record,
    TimestampType,
)
from trio_brod.protocol.errors import DecodeError

# The layout: offset int64, message size int32, then the message: crc uint32 (CRC-32 of the
# rest), magic int8, attributes int8, [timestamp int64 if magic 1], key bytes (int32 length,
# -1 null), value bytes. A compressed message ("wrapper") holds a whole message set,
# compressed, as its value; its offset is that of the last inner message. Inner offsets are
# absolute in magic 0 and relative (0, 1, ...) in magic 1.

_LEGACY_HEAD = struct.Struct(">qiIbb")  # offset, size, crc, magic, attributes
# Smallest message size (crc, magic, attributes, [timestamp], key length, value length).
LEGACY_MIN_LENGTH: Final = (14, 22)
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
    if length < LEGACY_MIN_LENGTH[magic] or pos + LOG_OVERHEAD + length != end:
        raise CorruptRecordError(f"a legacy message has an invalid size {length}", offset)
    if verify_crc:
        computed = zlib.crc32(memoryview(data)[pos + LEGACY_CRC_START : end])
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
    (length,) = INT32.unpack_from(data, pos)
    pos += 4
    if length < 0:
        return None, pos
    if pos + length > end:
        raise CorruptRecordError("a legacy message ends early", offset)
    return data[pos : pos + length], pos + length


def decode_legacy(data: bytes, pos: int, size: int, magic: int, verify_crc: bool) -> RecordBatch:
    message = _read_legacy_message(data, pos, pos + size, verify_crc)
    offset = message.offset
    codec = message.attributes & COMPRESSION_MASK
    if magic == 0:
        timestamp_type = TimestampType.NO_TIMESTAMP
    else:
        timestamp_type = CREATE_OR_LOG_APPEND[(message.attributes & TIMESTAMP_TYPE_FLAG) >> 3]
    if codec == 0:
        records = [
            Record(offset, message.timestamp, timestamp_type, message.key, message.value, ())
        ]
    else:
        records = _decode_legacy_wrapper(message, codec, timestamp_type)
    base_offset = records[0].offset
    header = (
        base_offset,
        size - LOG_OVERHEAD,
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
            (length,) = INT32.unpack_from(inner, pos + 8)
            end = pos + LOG_OVERHEAD + length
            if length < 0 or end > total:
                raise CorruptRecordError(
                    "an inner message of a compressed legacy message ends early", wrapper.offset
                )
            message = _read_legacy_message(inner, pos, end, verify_crc=True)
            if message.attributes & COMPRESSION_MASK:
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
