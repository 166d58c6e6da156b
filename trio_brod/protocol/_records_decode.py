"""Decoding a message set: :func:`decode_batches` and what it returns.

Part of :mod:`trio_brod.protocol.records`. A Fetch response's records field is a message set:
batches one after the other, v2 batches (``_records_batch``) and, from old data, legacy
messages (``_records_legacy``), possibly cut short at the end. This module walks it, checks
each entry's framing and checksum, and hands the entries to those two modules.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trio_brod.protocol import _crc32c
from trio_brod.protocol._records_batch import RecordBatch
from trio_brod.protocol._records_format import (
    INT32,
    LOG_OVERHEAD,
    V2_CRC_START,
    V2_MIN_LENGTH,
    CorruptRecordError,
)
from trio_brod.protocol._records_legacy import LEGACY_MIN_LENGTH, decode_legacy

_V2_HEADER = struct.Struct(">qiibIhiqqqhii")


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
    unpack_length = INT32.unpack_from
    unpack_v2 = _V2_HEADER.unpack_from
    crc32c = _crc32c.value
    pos = 0
    total = len(data)
    while pos < total:
        left = total - pos
        if left < LOG_OVERHEAD:
            return DecodedBatches(batches, truncated=True)
        (length,) = unpack_length(data, pos + 8)
        size = length + LOG_OVERHEAD
        if length < LEGACY_MIN_LENGTH[0]:
            raise CorruptRecordError(
                f"the batch at byte {pos} has an impossible length {length}",
                _base_offset_at(data, pos),
            )
        if size > left:
            return DecodedBatches(batches, truncated=True, incomplete_batch_size=size)
        magic = data[pos + 16]
        if magic == 2:
            if length < V2_MIN_LENGTH:
                raise CorruptRecordError(
                    f"the batch length {length} is smaller than a v2 batch header",
                    _base_offset_at(data, pos),
                )
            header = unpack_v2(data, pos)
            if verify_crc and crc32c(data[pos + V2_CRC_START : pos + size]) != header[4]:
                raise CorruptRecordError(
                    f"checksum mismatch: the batch says {header[4]:#010x}, its bytes give "
                    f"{crc32c(data[pos + V2_CRC_START : pos + size]):#010x}",
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
            append(decode_legacy(data, pos, size, magic, verify_crc))
        else:
            raise CorruptRecordError(
                f"the batch at byte {pos} has an unknown magic {magic}", _base_offset_at(data, pos)
            )
        pos += size
    return DecodedBatches(batches)


def _base_offset_at(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 8], "big", signed=True)
