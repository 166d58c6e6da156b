"""Record-codec helpers shared by the unit tests: switching to the pure-Python loops, and
batches written by hand."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator

import google_crc32c
import pytest

from trio_brod.protocol import _records_batch, _records_encode, records


@contextlib.contextmanager
def pure_python_codec() -> Iterator[None]:
    """Make the record codec use its pure-Python record loops, as without the C extension.

    The hot loops read the C functions from globals of their own modules (see
    ``trio_brod.protocol._records_speedups``), so those are what is patched.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_records_batch, "c_decode_records", None)
        patch.setattr(_records_encode, "c_encode_records", None)
        patch.setattr(records, "IMPLEMENTATION", "python")
        yield


def batch_of(
    records_section: bytes,
    count: int,
    *,
    base_offset: int = 0,
    base_timestamp: int = 0,
    max_timestamp: int = 0,
    attributes: int = 0,
) -> bytes:
    """A v2 batch around a records section written by hand (with a correct CRC)."""
    tail = struct.pack(
        ">hiqqqhii", attributes, count - 1, base_timestamp, max_timestamp, -1, -1, -1, count
    )
    tail += records_section
    head = struct.pack(">qiib", base_offset, len(tail) + 9, -1, 2)
    return head + struct.pack(">I", google_crc32c.value(tail)) + tail
