"""The consumer's fetch parsing without a broker: which records a fetch answer yields, and
how little a counting consumer decodes. (The prefetch window: test_consumer_window.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.batches import (
    batch_bytes,
    marker,
    offsets_of,
    partition_data,
    transactional,
)
from tests.fakes.log import compacted_batch
from trio_brod import ConfigError, ConsumerConfig, MessageSet, Timestamp
from trio_brod._config import IsolationLevel
from trio_brod.consumer._fetch import Run, select_runs
from trio_brod.protocol.records import (
    Compression,
    ControlRecordType,
    CorruptRecordError,
    RecordBatch,
    decode_batches,
)

# ------------------------------------------------------------------ config


def test_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="begin_offset"):
        ConsumerConfig(begin_offset="first")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="begin_offset"):
        ConsumerConfig(begin_offset=-1)
    with pytest.raises(ConfigError, match="offset_reset_policy"):
        ConsumerConfig(offset_reset_policy="reset")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="isolation_level"):
        ConsumerConfig(isolation_level="committed")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="prefetch_count"):
        ConsumerConfig(prefetch_count=0)
    with pytest.raises(ConfigError, match="max_bytes"):
        ConsumerConfig(max_bytes=2**31)


def test_config_replace_names_unknown_options() -> None:
    with pytest.raises(ConfigError, match="'prefetch_cont'"):
        ConsumerConfig().replace(prefetch_cont=5)
    assert ConsumerConfig().replace(begin_offset=Timestamp(5)).begin_offset == Timestamp(5)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MS = dt.timedelta(milliseconds=1)
PLUS_ONE_HOUR = dt.timezone(dt.timedelta(hours=1))


@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(
        min_value=dt.datetime(1969, 12, 30),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.integers(-1439, 1439).map(lambda m: dt.timezone(dt.timedelta(minutes=m))),
    )
)
def test_from_datetime_rounds_up_to_the_next_millisecond(moment: dt.datetime) -> None:
    # "The first message at or after the time": a message stamped ms is at or after
    # ``moment`` exactly when ms >= from_datetime(moment).ms.
    ms = Timestamp.from_datetime(moment).ms
    assert type(ms) is int
    if moment <= EPOCH:
        assert ms == 0  # nothing is stamped before 1970
    else:
        assert EPOCH + (ms - 1) * MS < moment <= EPOCH + ms * MS


@pytest.mark.parametrize(
    ("moment", "ms"),
    [
        (EPOCH + dt.timedelta(milliseconds=1_700_000_000_123, microseconds=600), 1_700_000_000_124),
        (EPOCH + dt.timedelta(milliseconds=1_700_000_000_123, microseconds=1), 1_700_000_000_124),
        (EPOCH + dt.timedelta(milliseconds=1_700_000_000_123), 1_700_000_000_123),
        (dt.datetime(2023, 11, 14, 23, 13, 20, 1000, tzinfo=PLUS_ONE_HOUR), 1_700_000_000_001),
        (dt.datetime(2023, 11, 14, 23, 13, 20, 1001, tzinfo=PLUS_ONE_HOUR), 1_700_000_000_002),
        (EPOCH - dt.timedelta(microseconds=999), 0),
        (EPOCH - dt.timedelta(milliseconds=1), 0),
        (EPOCH - dt.timedelta(milliseconds=2), 0),
    ],
)
def test_from_datetime_examples(moment: dt.datetime, ms: int) -> None:
    assert Timestamp.from_datetime(moment) == Timestamp(ms)


def test_from_datetime_wants_a_time_zone() -> None:
    with pytest.raises(ConfigError, match="no time zone"):
        Timestamp.from_datetime(dt.datetime(2024, 1, 1))


# ------------------------------------------------------------------ select_runs


def test_records_before_the_fetch_offset_are_skipped() -> None:
    data = partition_data(batch_bytes(0, 5, compression=Compression.GZIP) + batch_bytes(5, 5))
    selected = select_runs("t", 0, 3, data, "read_uncommitted")
    assert offsets_of(selected.runs) == list(range(3, 10))
    assert selected.next_offset == 10
    assert selected.needed_bytes is None


def test_control_batches_are_never_messages() -> None:
    log = (
        batch_bytes(0, 2, producer_id=7, producer_epoch=0, base_sequence=0, is_transactional=True)
        + marker(2, 7, ControlRecordType.COMMIT)
        + batch_bytes(3, 1)
    )
    isolations: list[IsolationLevel] = ["read_committed", "read_uncommitted"]
    for isolation in isolations:
        selected = select_runs("t", 0, 0, partition_data(log), isolation)
        assert offsets_of(selected.runs) == [0, 1, 3]
        assert selected.next_offset == 4


def test_read_committed_hides_aborted_transactions_read_uncommitted_shows_them() -> None:
    # Producer 1 aborts 0-2, producer 2 commits 3-4 in between, producer 1 commits 6-7.
    log = (
        transactional(0, 3, 1)
        + transactional(3, 2, 2)
        + marker(5, 1, ControlRecordType.ABORT)
        + transactional(6, 2, 1)
        + marker(8, 2, ControlRecordType.COMMIT)
        + marker(9, 1, ControlRecordType.COMMIT)
    )
    committed = select_runs("t", 0, 0, partition_data(log, aborted=[(1, 0)]), "read_committed")
    assert offsets_of(committed.runs) == [3, 4, 6, 7]
    assert committed.next_offset == 10
    uncommitted = select_runs("t", 0, 0, partition_data(log), "read_uncommitted")
    assert offsets_of(uncommitted.runs) == [0, 1, 2, 3, 4, 6, 7]


def test_a_fetch_starting_at_an_abort_marker_closes_that_transaction() -> None:
    # The previous fetch ended just before the marker; the broker still lists the aborted
    # transaction (it overlaps the fetched range). The producer's next, committed,
    # transaction must not be hidden: the marker ends the aborted one (as Java's consumer).
    log = (
        marker(3, 1, ControlRecordType.ABORT)
        + transactional(4, 2, 1)
        + marker(6, 1, ControlRecordType.COMMIT)
    )
    selected = select_runs("t", 0, 3, partition_data(log, aborted=[(1, 0)]), "read_committed")
    assert offsets_of(selected.runs) == [4, 5]


def test_read_committed_never_goes_past_the_last_stable_offset() -> None:
    # As if a broker returned data past the LSO: an open transaction from offset 2 on.
    log = batch_bytes(0, 2) + transactional(2, 3, 9) + batch_bytes(5, 1)
    data = partition_data(log, last_stable_offset=2)
    committed = select_runs("t", 0, 0, data, "read_committed")
    assert offsets_of(committed.runs) == [0, 1]
    assert committed.next_offset == 2
    uncommitted = select_runs("t", 0, 0, data, "read_uncommitted")
    assert offsets_of(uncommitted.runs) == list(range(6))


def test_a_cut_last_batch_is_left_for_the_next_fetch() -> None:
    log = batch_bytes(0, 3) + batch_bytes(3, 3)
    cut = log[: len(log) - 7]
    selected = select_runs("t", 0, 0, partition_data(cut), "read_uncommitted")
    assert offsets_of(selected.runs) == [0, 1, 2]
    assert selected.next_offset == 3
    assert selected.needed_bytes is None


def test_only_part_of_one_batch_asks_for_a_larger_fetch() -> None:
    whole = batch_bytes(0, 50, size=100)
    selected = select_runs("t", 0, 0, partition_data(whole[:500]), "read_uncommitted")
    assert selected.runs == []
    assert selected.next_offset == 0
    assert selected.needed_bytes == len(whole)


def test_corrupt_data_names_the_partition() -> None:
    log = bytearray(batch_bytes(0, 3))
    log[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match=r"topic\[4\] near offset 0"):
        select_runs("topic", 4, 0, partition_data(bytes(log)), "read_uncommitted")


def test_compacted_batches_keep_their_offsets() -> None:
    log = compacted_batch(0, [0, 3, 4], 6) + batch_bytes(7, 2)
    selected = select_runs("t", 0, 2, partition_data(log), "read_uncommitted")
    assert offsets_of(selected.runs) == [3, 4, 7, 8]
    message_set = MessageSet("t", 0, 9, selected.runs)
    assert len(message_set) == 4
    assert message_set.high_offset == 8
    assert [m.value for m in message_set] == [b"v3", b"v4", b"0000000007", b"0000000008"]


# ------------------------------------------------------------------ lazy decoding


def decoded(batches: list[RecordBatch]) -> list[bool]:
    # RecordBatch caches its decoded records; None means they were never decoded.
    return [batch._records is not None for batch in batches]


def test_counting_decodes_no_records() -> None:
    log = b"".join(
        batch_bytes(base, 100, compression=codec)
        for base, codec in zip(range(0, 500, 100), Compression, strict=True)
    )
    # Start inside the first batch, as a subscription at an offset does.
    selected = select_runs("t", 0, 42, partition_data(log), "read_uncommitted")
    message_set = MessageSet("t", 0, 500, selected.runs)
    assert len(message_set) == 458
    assert message_set.high_offset == 499
    assert not any(decoded(selected.batches))
    # Splitting at a window's edge is arithmetic too.
    head, tail = selected.runs[1].split(30)
    assert (head.length(), tail.length()) == (30, 70)
    assert not any(decoded(selected.batches))
    # Iterating decodes, and gives the right records. It keeps only those of the batch the
    # set has a part of (the rest of it would be in another set): the first.
    assert [m.offset for m in message_set] == list(range(42, 500))
    assert decoded(selected.batches) == [True, False, False, False, False]


def test_iterating_a_message_set_keeps_no_records() -> None:
    log = b"".join(batch_bytes(base, 50, compression=Compression.ZSTD) for base in (0, 50))
    selected = select_runs("t", 0, 0, partition_data(log), "read_uncommitted")
    message_set = MessageSet("t", 0, 100, selected.runs)
    first = list(message_set)
    assert [m.offset for m in first] == list(range(100))
    assert not any(decoded(selected.batches))
    # Iterating again decodes again: equal records, not the same objects.
    again = list(message_set)
    assert again == first
    assert all(a is not b for a, b in zip(again, first, strict=True))
    # messages decodes once and keeps them; iteration then goes through that list.
    messages = message_set.messages
    assert messages == first
    assert all(a is b for a, b in zip(message_set, messages, strict=True))
    assert message_set.messages is messages


def test_records_a_batch_kept_are_what_iteration_gives() -> None:
    (batch,) = decode_batches(batch_bytes(0, 5)).batches
    once = batch.records(keep=False)
    assert [r.offset for r in once] == list(range(5))
    assert batch.records(keep=False) is not once  # decoded anew: nothing kept
    kept = batch.records()
    assert kept == once
    assert batch.records() is kept
    assert batch.records(keep=False) is kept  # once kept, every call gives that list
    assert list(MessageSet("t", 0, 5, [Run(batch, 0, 4)])) == kept
    assert all(a is b for a, b in zip(MessageSet("t", 0, 5, [Run(batch, 0, 4)]), kept, strict=True))


def test_a_part_of_a_batch_makes_it_keep_its_records() -> None:
    (batch,) = decode_batches(batch_bytes(0, 10, compression=Compression.ZSTD)).batches
    head, tail = Run(batch, 0, 9).split(4)
    first = MessageSet("t", 0, 10, [head])
    second = MessageSet("t", 0, 10, [tail])
    assert [m.offset for m in first] == [0, 1, 2, 3]
    # The rest of the batch is decoded once, for both sets (no second decompression).
    kept = batch.records()
    assert [m.offset for m in second] == list(range(4, 10))
    assert all(a is b for a, b in zip(second, kept[4:], strict=True))
    # A whole run asked not to keep gets the kept list all the same.
    assert Run(batch, 0, 9).records(keep=False) is kept


def test_splitting_a_compacted_batch_uses_its_records() -> None:
    (batch,) = decode_batches(compacted_batch(10, [0, 2, 3, 7], 9)).batches
    head, tail = Run(batch, 11, batch.last_offset).split(2)
    assert [r.offset for r in head.records()] == [12, 13]
    assert [r.offset for r in tail.records()] == [17]
    assert head.last == 13
    assert tail.first == 14
