"""Fetch answers built in memory: record batches, transaction markers, partition data.

For the tests of the consumer's sans-IO core (tests/unit/test_consumer*.py), which feed
:mod:`trio_brod.consumer._fetch` and :mod:`trio_brod.consumer._window` without a broker.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fakes.log import compacted_batch
from trio_brod.consumer._fetch import Run
from trio_brod.protocol import FetchResponse
from trio_brod.protocol.records import (
    Compression,
    ControlRecordType,
    encode_batch,
    encode_control_batch,
)


def batch_bytes(
    base: int, count: int, *, size: int = 10, compression: Compression = Compression.NONE, **kw: Any
) -> bytes:
    records = [(1000 + base + i, None, b"%0*d" % (size, base + i), ()) for i in range(count)]
    return encode_batch(records, base_offset=base, compression=compression, **kw)


def marker(base: int, producer_id: int, control_type: ControlRecordType) -> bytes:
    return encode_control_batch(
        control_type,
        producer_id=producer_id,
        producer_epoch=0,
        coordinator_epoch=0,
        timestamp_ms=5,
        base_offset=base,
    )


def partition_data(
    records: bytes,
    *,
    aborted: list[tuple[int, int]] = (),  # type: ignore[assignment]
    high_watermark: int = 10**6,
    last_stable_offset: int = -1,
) -> Any:
    return FetchResponse.PartitionData(
        partition_index=0,
        high_watermark=high_watermark,
        last_stable_offset=last_stable_offset,
        aborted_transactions=[
            FetchResponse.AbortedTransaction(producer_id=pid, first_offset=first)
            for pid, first in aborted
        ],
        records=records,
    )


def offsets_of(runs: list[Run]) -> list[int]:
    return [record.offset for run in runs for record in run.records()]


def values_of(runs: list[Run]) -> list[bytes | None]:
    return [record.value for run in runs for record in run.records()]


def transactional(base: int, count: int, producer_id: int) -> bytes:
    return batch_bytes(
        base,
        count,
        producer_id=producer_id,
        producer_epoch=0,
        base_sequence=base,
        is_transactional=True,
    )


#: One batch of a generated log: ("plain" | "zstd" | "compacted", records, size or span).
Chunk = tuple[str, int, int, tuple[int, ...]]


@st.composite
def log_shapes(draw: st.DrawFn) -> list[Chunk]:
    """The shape of a log of plain, compressed and compacted batches (see build_log)."""
    chunks: list[Chunk] = []
    for _ in range(draw(st.integers(1, 6))):
        count = draw(st.integers(1, 30))
        kind = draw(st.sampled_from(["plain", "zstd", "compacted"]))
        if kind == "compacted":
            span = count + draw(st.integers(0, 5))
            deltas = sorted(draw(st.sets(st.integers(0, span - 1), min_size=1, max_size=count)))
            chunks.append((kind, count, span, tuple(deltas)))
        else:
            chunks.append((kind, count, draw(st.integers(1, 60)), ()))
    return chunks


def build_log(shape: list[Chunk], base: int = 0) -> tuple[bytes, int]:
    """The log's bytes, its first batch at offset ``base``; and the offset after it."""
    out = []
    offset = base
    for kind, count, size_or_span, deltas in shape:
        if kind == "compacted":
            out.append(compacted_batch(offset, list(deltas), size_or_span - 1))
            offset += size_or_span
        else:
            codec = Compression.ZSTD if kind == "zstd" else Compression.NONE
            out.append(batch_bytes(offset, count, size=size_or_span, compression=codec))
            offset += count
    return b"".join(out), offset


@st.composite
def logs(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A log of plain, compressed and compacted batches; a start offset; its end."""
    records, end = build_log(draw(log_shapes()))
    return records, draw(st.integers(0, end - 1)), end
