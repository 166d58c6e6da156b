"""Property tests of record batches: round trips, truncation, and garbage in.

Each runs with the C record codec and with the pure-Python one (the ``codec`` fixture of
test_records.py); test_speedups.py compares the two directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from trio_brod.protocol.errors import DecodeError
from trio_brod.protocol.records import (
    BATCH_OVERHEAD,
    Compression,
    ControlRecordType,
    Header,
    Record,
    TimestampType,
    decode_batches,
    encode_batch,
    encode_control_batch,
    estimate_record_size,
    with_producer_state,
)

InputRecord = tuple[int, bytes | None, bytes | None, Sequence[Header]]

pytestmark = pytest.mark.usefixtures("codec")

keys = st.none() | st.binary(max_size=40)
# Values over 8 KiB take the encoder's slow path; built from a size so they cost hypothesis
# little entropy.
large_values = st.integers(8000, 9000).map(lambda size: bytes(range(256)) * (size // 256))
values = st.none() | st.binary(max_size=200) | large_values
headers = st.lists(
    st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=30)), max_size=3
).map(tuple)
MAX_TIMESTAMP = 2**62


@st.composite
def record_lists(draw: st.DrawFn, max_size: int = 20) -> list[InputRecord]:
    """Records with timestamps near each other (the usual case) or anywhere."""
    count = draw(st.integers(1, max_size))
    base = draw(st.integers(0, MAX_TIMESTAMP))
    near = st.integers(-20000, 20000).map(lambda delta: max(0, base + delta))
    timestamps = st.one_of(near, st.integers(0, MAX_TIMESTAMP))
    return [(draw(timestamps), draw(keys), draw(values), draw(headers)) for _ in range(count)]


producer_states = st.none() | st.tuples(
    st.integers(0, 2**63 - 1), st.integers(0, 2**15 - 1), st.integers(0, 2**31 - 1)
)


def expected(records: list[InputRecord], base_offset: int = 0) -> list[Record]:
    return [
        Record(base_offset + i, ts, TimestampType.CREATE_TIME, key, value, tuple(hdrs))
        for i, (ts, key, value, hdrs) in enumerate(records)
    ]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    record_lists(),
    st.sampled_from(Compression),
    producer_states,
    st.booleans(),
    st.integers(0, 2**62),
)
def test_round_trip(
    records: list[InputRecord],
    compression: Compression,
    producer_state: tuple[int, int, int] | None,
    transactional: bool,
    base_offset: int,
) -> None:
    producer_id, producer_epoch, base_sequence = producer_state or (-1, -1, -1)
    data = encode_batch(
        records,
        compression=compression,
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        is_transactional=transactional,
    )
    decoded = decode_batches(data)
    assert not decoded.truncated
    (batch,) = decoded.batches
    assert batch.records() == expected(records, base_offset)
    assert batch.size == len(data)
    assert batch.compression is compression
    assert batch.is_transactional == transactional
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
        producer_id,
        producer_epoch,
        base_sequence,
    )
    assert batch.base_timestamp == records[0][0]
    assert batch.max_timestamp == max(ts for ts, _, _, _ in records)
    assert batch.next_offset == base_offset + len(records)
    batch.validate_crc()
    if compression is Compression.NONE:
        bound = BATCH_OVERHEAD + sum(estimate_record_size(k, v, h) for _, k, v, h in records)
        assert len(data) <= bound


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(record_lists(max_size=5), st.sampled_from(Compression), producer_states)
def test_with_producer_state_round_trip(
    records: list[InputRecord],
    compression: Compression,
    new_state: tuple[int, int, int] | None,
) -> None:
    producer_id, producer_epoch, base_sequence = new_state or (-1, -1, -1)
    original = encode_batch(records, compression=compression, producer_id=5, producer_epoch=1)
    rewritten = with_producer_state(
        original,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )
    (batch,) = decode_batches(rewritten).batches  # verifies the new CRC
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
        producer_id,
        producer_epoch,
        base_sequence,
    )
    assert batch.records() == expected(records)
    # Rewriting back gives the original bytes.
    assert (
        with_producer_state(rewritten, producer_id=5, producer_epoch=1, base_sequence=-1)
        == original
    )


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(record_lists(max_size=5), st.sampled_from(Compression)), max_size=8))
def test_many_batches_decode_in_order(
    batches: list[tuple[list[InputRecord], Compression]],
) -> None:
    data = b""
    offset = 0
    everything: list[Record] = []
    for records, compression in batches:
        data += encode_batch(records, compression=compression, base_offset=offset)
        everything += expected(records, offset)
        offset += len(records)
    decoded = decode_batches(data)
    assert not decoded.truncated
    assert [r for batch in decoded.batches for r in batch] == everything
    assert [batch.next_offset for batch in decoded.batches] == [
        sum(len(records) for records, _ in batches[: i + 1]) for i in range(len(batches))
    ]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(record_lists(max_size=3), st.sampled_from(Compression)), min_size=1),
    st.data(),
)
def test_truncated_final_batch_is_reported(
    batches: list[tuple[list[InputRecord], Compression]], data: st.DataObject
) -> None:
    encoded = [encode_batch(records, compression=c) for records, c in batches]
    whole = b"".join(encoded)
    cut = data.draw(st.integers(0, len(whole) - 1))
    decoded = decode_batches(whole[:cut])
    # Complete batches only: never half a batch, never an exception.
    sizes = [len(batch) for batch in encoded]
    complete = 0
    consumed = 0
    while complete < len(sizes) and consumed + sizes[complete] <= cut:
        consumed += sizes[complete]
        complete += 1
    assert len(decoded.batches) == complete
    for batch, (records, _) in zip(decoded.batches, batches, strict=False):
        assert batch.records() == expected(records)
    assert decoded.truncated == (cut > consumed)
    if cut - consumed >= 12:
        assert decoded.incomplete_batch_size == sizes[complete]
    else:
        assert decoded.incomplete_batch_size is None


def _decode_everything(data: bytes, verify_crc: bool) -> None:
    for batch in decode_batches(data, verify_crc=verify_crc).batches:
        batch.records()
        list(batch)
        if batch.is_control:
            batch.control_type()
        if not verify_crc:
            with contextlib.suppress(DecodeError):
                batch.validate_crc()


@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_raise_only_decode_errors(data: bytes, verify_crc: bool) -> None:
    with contextlib.suppress(DecodeError):
        _decode_everything(data, verify_crc)


def _seed_batches() -> list[bytes]:
    records: list[InputRecord] = [
        (1_700_000_000_000, b"key", b"value" * 20, [("h", b"x"), ("n", None)]),
        (1_700_000_000_005, None, None, ()),
        (1_699_999_999_000, b"", b"v" * 300, ()),
    ]
    seeds = [encode_batch(records, compression=c, producer_id=3) for c in Compression]
    seeds.append(
        encode_control_batch(
            ControlRecordType.COMMIT,
            producer_id=1,
            producer_epoch=2,
            coordinator_epoch=3,
            timestamp_ms=4,
        )
    )
    return seeds


SEEDS = _seed_batches()


@settings(max_examples=500)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 10_000),
    st.booleans(),
)
def test_mutated_batches_raise_only_decode_errors(
    seed: bytes, flips: list[tuple[int, int]], cut: int, verify_crc: bool
) -> None:
    data = bytearray(seed)
    for position, value in flips:
        data[position % len(data)] = value
    data = data[: max(cut, len(data) // 2)]
    assume(bytes(data) != seed)
    with contextlib.suppress(DecodeError):
        _decode_everything(bytes(data), verify_crc)
