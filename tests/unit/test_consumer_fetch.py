"""The consumer's fetch core (trio_brod.consumer._fetch) through the wire encoding, without
a client: Fetch requests and responses encoded and decoded with the generated protocol
classes, transactions read both ways, and garbage in the records."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.batches import batch_bytes, marker, offsets_of, partition_data, transactional
from trio_brod import ConsumerConfig, MessageSet
from trio_brod._config import IsolationLevel
from trio_brod.consumer._fetch import (
    FETCH_MIN_VERSION,
    FETCH_TOPIC_ID_VERSION,
    MAX_FETCH_BYTES,
    FetchSize,
    fetch_request,
    fetched_partition,
    isolation_code,
    select_runs,
    visible_end,
)
from trio_brod.protocol import FetchRequest, FetchResponse
from trio_brod.protocol._crc32c import crc32c_python
from trio_brod.protocol.errors import (
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
    ProtocolError,
    UnknownTopicIdError,
)
from trio_brod.protocol.records import (
    Compression,
    ControlRecordType,
    CorruptRecordError,
    decode_batches,
)

VERSIONS = range(FETCH_MIN_VERSION, FetchRequest.MAX_VERSION + 1)
TOPIC_ID = uuid.UUID("0123456789abcdef0123456789abcdef")

# ------------------------------------------------------------------ requests


@settings(max_examples=60, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(0, 2**63 - 1),
    max_bytes=st.integers(1, MAX_FETCH_BYTES),
    max_wait=st.none() | st.floats(0, 30),
    min_bytes=st.integers(1, 2**20),
    isolation_level=st.sampled_from(["read_committed", "read_uncommitted"]),
)
def test_a_fetch_request_survives_the_wire_at_every_version(
    version: int,
    partition: int,
    offset: int,
    max_bytes: int,
    max_wait: float | None,
    min_bytes: int,
    isolation_level: IsolationLevel,
) -> None:
    config = ConsumerConfig(min_bytes=min_bytes, max_wait_time=2.5)
    isolation = isolation_code(isolation_level)
    request = fetch_request(
        "orders", TOPIC_ID, partition, offset, max_bytes, config, isolation, max_wait=max_wait
    )
    wire = FetchRequest.decode(request.encode(version), version)
    expected_wait = 2.5 if max_wait is None else max_wait
    # The nearest millisecond; a positive wait is never 0 (that would be a busy poll).
    assert wire.max_wait_ms == (max(1, round(expected_wait * 1000)) if expected_wait > 0 else 0)
    assert (wire.min_bytes, wire.max_bytes, wire.isolation_level) == (
        min_bytes,
        max_bytes,
        isolation,
    )
    (topic,) = wire.topics
    # Each version names the topic the one way it can: by name before v13, by id after.
    if version >= FETCH_TOPIC_ID_VERSION:
        assert topic.topic_id == TOPIC_ID
    else:
        assert topic.topic == "orders"
    (wanted,) = topic.partitions
    assert (wanted.partition, wanted.fetch_offset, wanted.partition_max_bytes) == (
        partition,
        offset,
        max_bytes,
    )


# ------------------------------------------------------------------ responses


def response(data: Any, *, partition: int = 0, error_code: int = 0) -> FetchResponse:
    data.partition_index = partition
    return FetchResponse(
        error_code=error_code,
        responses=[
            FetchResponse.FetchableTopicResponse(
                topic="orders", topic_id=TOPIC_ID, partitions=[data]
            )
        ],
    )


def over_the_wire(message: FetchResponse, version: int) -> FetchResponse:
    return FetchResponse.decode(message.encode(version), version)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_fetch_response_survives_the_wire_at_every_version(version: int) -> None:
    log = (
        transactional(0, 3, 1)
        + transactional(3, 2, 2)
        + marker(5, 1, ControlRecordType.ABORT)
        + batch_bytes(6, 4, compression=Compression.LZ4)
        + marker(10, 2, ControlRecordType.COMMIT)
    )
    data = partition_data(log, aborted=[(1, 0)], high_watermark=11, last_stable_offset=11)
    answer = over_the_wire(response(data, partition=3), version)
    got = fetched_partition(answer, "orders", 3, 0)
    assert visible_end(got, 1) == visible_end(got, 0) == 11
    committed = select_runs("orders", 3, 0, got, "read_committed")
    assert offsets_of(committed.runs) == [3, 4, 6, 7, 8, 9]
    assert committed.next_offset == 11
    uncommitted = select_runs("orders", 3, 0, got, "read_uncommitted")
    assert offsets_of(uncommitted.runs) == [0, 1, 2, 3, 4, 6, 7, 8, 9]


@pytest.mark.parametrize("version", VERSIONS)
def test_errors_in_a_fetch_response_are_their_classes(version: int) -> None:
    data = partition_data(b"", high_watermark=0)
    data.error_code = OffsetOutOfRangeError.code
    with pytest.raises(OffsetOutOfRangeError):
        fetched_partition(over_the_wire(response(data), version), "orders", 0, 5)
    moved = response(partition_data(b""))
    moved.responses[0].partitions[0].error_code = NotLeaderOrFollowerError.code
    with pytest.raises(NotLeaderOrFollowerError):
        fetched_partition(over_the_wire(moved, version), "orders", 0, 5)
    with pytest.raises(ProtocolError, match=r"no data for orders\[7\]"):
        fetched_partition(over_the_wire(response(partition_data(b"")), version), "orders", 7, 0)
    if version >= 7:  # the request-level error code came with fetch sessions
        whole = response(partition_data(b""), error_code=UnknownTopicIdError.code)
        with pytest.raises(UnknownTopicIdError):
            fetched_partition(over_the_wire(whole, version), "orders", 0, 0)


def test_visible_end_is_the_last_stable_offset_only_for_read_committed() -> None:
    data = partition_data(b"", high_watermark=20, last_stable_offset=12)
    assert visible_end(data, isolation_code("read_committed")) == 12
    assert visible_end(data, isolation_code("read_uncommitted")) == 20
    old = partition_data(b"", high_watermark=20, last_stable_offset=-1)  # before v4's LSO
    assert visible_end(old, isolation_code("read_committed")) == 20


# ------------------------------------------------------------------ transactions, as a model


@st.composite
def transactional_logs(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int, int]], int, dict]:
    """Interleaved transactions of up to three producers, each ended by a COMMIT or ABORT
    marker (the last may stay open), and plain batches among them.

    Returns the log, the aborted transactions as (producer id, first offset, marker offset),
    the last stable offset (-1 when nothing is open) and, per offset, what it holds.
    """
    chunks: list[bytes] = []
    holds: dict[int, str] = {}  # offset -> "plain", "committed", "aborted", "open", "marker"
    open_at: dict[int, int] = {}  # producer id -> first offset of its open transaction
    owned: dict[int, list[int]] = {}  # producer id -> offsets of its open transaction
    aborted: list[tuple[int, int, int]] = []
    offset = 0
    for _ in range(draw(st.integers(1, 12))):
        step = draw(st.sampled_from(["plain", "write", "end"]))
        producer = draw(st.integers(1, 3))
        if step == "plain":
            count = draw(st.integers(1, 3))
            chunks.append(batch_bytes(offset, count))
            holds.update((o, "plain") for o in range(offset, offset + count))
            offset += count
        elif step == "write":
            count = draw(st.integers(1, 3))
            chunks.append(transactional(offset, count, producer))
            open_at.setdefault(producer, offset)
            owned.setdefault(producer, []).extend(range(offset, offset + count))
            offset += count
        elif producer in open_at:
            commit = draw(st.booleans())
            kind = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
            chunks.append(marker(offset, producer, kind))
            holds.update((o, "committed" if commit else "aborted") for o in owned.pop(producer))
            first = open_at.pop(producer)
            if not commit:
                aborted.append((producer, first, offset))
            holds[offset] = "marker"
            offset += 1
    for offsets in owned.values():
        holds.update((o, "open") for o in offsets)
    stable = min(open_at.values(), default=-1)
    return b"".join(chunks), aborted, stable, holds


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=transactional_logs(), data=st.data())
def test_read_committed_delivers_exactly_the_committed_records(
    log: tuple[bytes, list[tuple[int, int, int]], int, dict[int, str]], data: st.DataObject
) -> None:
    records, aborted, stable, holds = log
    if not records:
        return
    start = data.draw(st.integers(0, max(holds)), label="fetch offset")
    # The broker lists the aborted transactions that overlap the fetched range.
    listed = [(pid, first) for pid, first, end in aborted if end >= start]
    fetched = partition_data(records, aborted=listed, last_stable_offset=stable)
    end = stable if stable >= 0 else max(holds) + 1
    committed = select_runs("t", 0, start, fetched, "read_committed")
    assert offsets_of(committed.runs) == [
        o
        for o, what in sorted(holds.items())
        if start <= o < end and what in ("plain", "committed")
    ]
    uncommitted = select_runs("t", 0, start, fetched, "read_uncommitted")
    assert offsets_of(uncommitted.runs) == [
        o for o, what in sorted(holds.items()) if o >= start and what != "marker"
    ]
    # Control batches are skipped, never delivered: the next fetch starts after them.
    assert uncommitted.next_offset == max(max(holds) + 1, start)


# ------------------------------------------------------------------ garbage


def _check_clear_error(data: bytes) -> None:
    """Garbage either reads as some records, or raises CorruptRecordError: never another
    exception from deep inside the decoder. Found while reading the fetch answer, the
    error names the partition; found later, decoding records, it names the batch."""
    error: CorruptRecordError | None = None
    try:
        selected = select_runs("orders", 9, 0, partition_data(data), "read_committed")
    except CorruptRecordError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith("orders[9] near offset")
        return
    message_set = MessageSet("orders", 9, 0, selected.runs)
    try:
        len(message_set)
        offsets = [message.offset for message in message_set]
    except CorruptRecordError as exc:
        error = exc
    if error is not None:
        assert "batch at offset" in str(error)
    else:
        assert all(isinstance(offset, int) for offset in offsets)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_a_clear_error(data: bytes) -> None:
    _check_clear_error(data)


@settings(max_examples=300, deadline=None)
@given(
    compression=st.sampled_from(list(Compression)),
    count=st.integers(1, 6),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    fix_crc=st.booleans(),
)
def test_damaged_batches_raise_a_clear_error(
    compression: Compression, count: int, flips: list[tuple[int, int]], fix_crc: bool
) -> None:
    damaged = bytearray(batch_bytes(0, count, compression=compression))
    for position, bits in flips:
        damaged[position % len(damaged)] ^= bits
    if fix_crc:
        # Past the CRC check, so that the record decoder itself meets the damage.
        damaged[17:21] = crc32c_python(bytes(damaged[21:])).to_bytes(4, "big")
    _check_clear_error(bytes(damaged))


def test_a_damaged_record_raises_when_iterated() -> None:
    good = batch_bytes(0, 3)
    damaged = bytearray(good)
    damaged[61] = 0x7E  # the first record's length (a varint): 63, past the batch's end
    damaged[17:21] = crc32c_python(bytes(damaged[21:])).to_bytes(4, "big")
    selected = select_runs("orders", 9, 0, partition_data(bytes(damaged)), "read_committed")
    assert decode_batches(good).batches[0].record_count == 3
    message_set = MessageSet("orders", 9, 0, selected.runs)
    assert len(message_set) == 3  # counting reads only the batch header
    with pytest.raises(CorruptRecordError, match="batch at offset 0"):
        list(message_set)


# ------------------------------------------------------------------ fetch size


def test_fetch_size_grows_for_a_large_batch_and_follows_batches_back_down() -> None:
    size = FetchSize(1000, 2)
    size.grow(800)  # the request's bytes ran out: fetch the same again
    assert size.current == 1000
    size.grow(5000)
    assert size.current == 5000
    size.grow(5001)
    assert size.current == 10000  # at least doubled
    batches = decode_batches(batch_bytes(0, 1, size=3000) + batch_bytes(1, 1, size=10)).batches
    size.follow(batches)
    assert 3000 < size.current < 3200  # the largest of the last two batches
    small = decode_batches(batch_bytes(2, 1) + batch_bytes(3, 1)).batches
    size.follow(small)
    assert size.current == 1000  # never below the config's
    huge = FetchSize(MAX_FETCH_BYTES - 1, 0)
    huge.grow(MAX_FETCH_BYTES)
    assert huge.current == MAX_FETCH_BYTES
    huge.follow(small)
    assert huge.current == MAX_FETCH_BYTES - 1  # size_stat_window=0: straight back


@pytest.mark.parametrize(
    ("seconds", "ms"), [(0, 0), (0.0004, 1), (1.001, 1001), (0.5, 500), (2.007, 2007)]
)
def test_max_wait_time_goes_on_the_wire_to_the_nearest_ms(seconds: float, ms: int) -> None:
    config = ConsumerConfig(max_wait_time=seconds)
    request = fetch_request("t", None, 0, 0, 1024, config, 0)
    assert request.max_wait_ms == ms
