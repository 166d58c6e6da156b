"""The record batch format: the types every part of the codec shares, and the header layout.

Part of :mod:`trio_brod.protocol.records` (the public module, which re-exports the public
names defined here); see its docstring for the whole codec. This module defines what a batch
*is* -- codecs, timestamp types, control types, :class:`Record`, the decoding error -- and the
offsets, structs and attribute bits of the v2 batch header that both decoding
(``_records_batch``, ``_records_decode``, ``_records_legacy``) and encoding
(``_records_encode``) use. It does no work of its own, so it imports nothing from them.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, NamedTuple

from trio_brod.protocol.errors import DecodeError


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


# -- the v2 batch header ---------------------------------------------------------------------------

#: Size of the v2 batch header, up to and including the record count.
BATCH_OVERHEAD: Final = 61
# baseOffset and batchLength: the prefix every message set entry (v0, v1, v2) starts with.
LOG_OVERHEAD: Final = 12
# Everything after batchLength, so the minimum batchLength of a v2 batch.
V2_MIN_LENGTH: Final = BATCH_OVERHEAD - LOG_OVERHEAD
# Where the CRC-32C'd part (attributes onward) starts.
V2_CRC_START: Final = 21
# Where the CRC-32'd part of a legacy (magic 0 and 1) message starts: after offset, size, crc.
LEGACY_CRC_START: Final = 16

INT32 = struct.Struct(">i")

COMPRESSION_MASK: Final = 0x07
TIMESTAMP_TYPE_FLAG: Final = 0x08
TRANSACTIONAL_FLAG: Final = 0x10
CONTROL_FLAG: Final = 0x20

# Lookup by attribute bits instead of calling the enum class (a few hundred ns per batch).
CREATE_OR_LOG_APPEND: Final = (TimestampType.CREATE_TIME, TimestampType.LOG_APPEND_TIME)
