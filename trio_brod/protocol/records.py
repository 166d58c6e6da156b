"""Kafka record batches: encoding (magic v2) and decoding (magic v2, and legacy v0/v1).

Every produced and consumed message passes through this codec, so its two loops --
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
``trio_brod.protocol._speedups`` (``_speedups.c``), which is several times faster. The codec
uses it when it was built and can be imported, unless the environment variable
``TRIO_BROD_PURE_PYTHON`` is set (to anything but ``0``); :data:`IMPLEMENTATION` says which is in
use. The Python code stays the reference: the C code keeps its behaviour, messages
included, and the tests run against both and compare them.

Where the code is
-----------------
This module is the public face of the codec; the code is in private modules, by job:

* ``_records_format``: the shared types (:class:`Record`, :class:`Compression`, ...) and the
  layout of the v2 batch header.
* ``_records_speedups``: whether the C loops or the Python ones run (decided at import).
* ``_records_batch``: :class:`RecordBatch` and the v2 record decoding loop.
* ``_records_legacy``: legacy message sets (magic 0 and 1), decoded into batches.
* ``_records_decode``: :func:`decode_batches`, which walks a message set.
* ``_records_encode``: :func:`encode_batch` and the other encoders.

Each hot loop reads the C function it may use from a global of its own module, bound at
import, so the split costs nothing per call.
"""

from __future__ import annotations

from typing import Final, Literal

from trio_brod.protocol import _crc32c, _records_format, _records_speedups
from trio_brod.protocol._compression import UnsupportedCodecError
from trio_brod.protocol._records_batch import RecordBatch
from trio_brod.protocol._records_decode import DecodedBatches, decode_batches
from trio_brod.protocol._records_encode import (
    encode_batch,
    encode_control_batch,
    estimate_record_size,
    with_producer_state,
)
from trio_brod.protocol._records_format import (
    Compression,
    ControlRecordType,
    CorruptRecordError,
    Record,
    TimestampType,
)

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

#: ``"c"`` if records are encoded and decoded by the C extension
#: ``trio_brod.protocol._speedups``, ``"python"`` if by this package's pure-Python code (the
#: extension was not built, or ``TRIO_BROD_PURE_PYTHON`` is set). Both give the same results;
#: the C code is several times faster.
IMPLEMENTATION: Literal["c", "python"] = _records_speedups.IMPLEMENTATION

#: Size of the v2 batch header, up to and including the record count.
BATCH_OVERHEAD: Final = _records_format.BATCH_OVERHEAD

#: A record header: a key (text) and a value (bytes, or ``None``).
Header = _records_format.Header
