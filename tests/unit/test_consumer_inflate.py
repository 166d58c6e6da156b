"""Decompressing fetched batches in a worker thread before delivery (consumer/_inflate.py).

The pure half: a batch decompressed ahead of time (``RecordBatch.inflate``) decodes to
exactly the records it decodes to without, for every codec and either record loop. The
worker half, against the scripted FakeLog: large compressed batches go through the thread
and still arrive identical and in order, in both fetch modes; a subscriber that leaves
while the thread works leaves no thread work behind; a corrupt compressed batch raises the
same error as without the thread, where it did before.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.log import Batch, FakeLog
from tests.records_helpers import batch_of, pure_python_codec
from trio_brod import Client
from trio_brod.consumer import _inflate
from trio_brod.consumer._fetch import Run
from trio_brod.consumer._window import Window
from trio_brod.protocol.records import (
    Compression,
    CorruptRecordError,
    Record,
    RecordBatch,
    decode_batches,
    encode_batch,
)

TOPIC = FakeLog.topic
CODECS = [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]


def random_values(seed: int, count: int, size: int) -> list[bytes]:
    """Values that compress little, so that a batch of them is large on the wire too."""
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(count)]


def decoded(data: bytes) -> list[RecordBatch]:
    return decode_batches(data).batches


# ------------------------------------------------------------------ the pure half


@st.composite
def logs(draw: st.DrawFn) -> bytes:
    """Batches of mixed codecs and sizes, with keys, headers and timestamps."""
    out = []
    offset = draw(st.integers(0, 1000))
    for _ in range(draw(st.integers(1, 5))):
        count = draw(st.integers(1, 40))
        codec = draw(st.sampled_from([Compression.NONE, *CODECS]))
        values = draw(st.lists(st.binary(max_size=300) | st.none(), min_size=count, max_size=count))
        records = [
            (
                draw(st.integers(0, 2**40)),
                draw(st.binary(max_size=20) | st.none()),
                value,
                tuple(
                    draw(
                        st.lists(
                            st.tuples(st.text(max_size=5), st.binary(max_size=5) | st.none()),
                            max_size=2,
                        )
                    )
                ),
            )
            for value in values
        ]
        out.append(encode_batch(records, base_offset=offset, compression=codec))
        offset += count
    return b"".join(out)


def records_both_ways(data: bytes) -> tuple[list[list[Record]], list[list[Record]]]:
    """Every batch's records decoded as before, and after inflating every batch that
    ``to_inflate`` picks with no size threshold."""
    plain = [batch.records() for batch in decoded(data)]
    batches = decoded(data)
    picked = _inflate.to_inflate([Run(b, b.base_offset, b.last_offset) for b in batches], 0)
    assert picked == [b for b in batches if b.compression is not Compression.NONE]
    for batch in picked:
        batch.inflate()
        assert batch.inflated
    assert not _inflate.to_inflate([Run(b, b.base_offset, b.last_offset) for b in batches], 0)
    return plain, [batch.records() for batch in batches]


@settings(max_examples=60, deadline=None)
@given(logs())
def test_inflated_batches_decode_to_the_same_records(data: bytes) -> None:
    plain, inflated = records_both_ways(data)
    assert inflated == plain


@settings(max_examples=20, deadline=None)
@given(logs())
def test_inflated_batches_decode_to_the_same_records_in_python(data: bytes) -> None:
    with pure_python_codec():
        plain, inflated = records_both_ways(data)
    assert inflated == plain
    assert all(type(r.value) is bytes or r.value is None for batch in inflated for r in batch)


def test_the_threshold_keeps_small_and_uncompressed_batches_inline() -> None:
    values = random_values(1, 100, 300)
    records = [(0, None, value, ()) for value in values]
    large = encode_batch(records, compression=Compression.ZSTD)
    small = encode_batch(records[:3], base_offset=100, compression=Compression.ZSTD)
    plain = encode_batch(records, base_offset=103)
    batches = decoded(large + small + plain)
    assert batches[0].size >= _inflate.INFLATE_THRESHOLD > batches[1].size
    assert batches[2].size >= _inflate.INFLATE_THRESHOLD
    runs = [Run(b, b.base_offset, b.last_offset) for b in batches]
    # A batch split across two runs is picked once.
    first, rest = runs[0].split(10)
    assert _inflate.to_inflate([first, rest, *runs[1:]]) == [batches[0]]


@pytest.mark.parametrize("codec", CODECS)
def test_a_corrupt_batch_fails_the_same_either_way(codec: Compression) -> None:
    data = batch_of(b"\x00garbage" * 3000, 5, attributes=int(codec))
    with pytest.raises(CorruptRecordError) as inline:
        decoded(data)[0].records()
    (batch,) = decoded(data)
    with pytest.raises(CorruptRecordError) as ahead:
        batch.inflate()
    assert str(ahead.value) == str(inline.value)
    assert not batch.inflated
    with pytest.raises(CorruptRecordError) as after:
        batch.records()
    assert str(after.value) == str(inline.value)


async def test_inflate_pending_decompresses_in_another_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []
    real = RecordBatch.inflate

    def spy(batch: RecordBatch) -> None:
        threads.append(threading.get_ident())
        real(batch)

    monkeypatch.setattr(RecordBatch, "inflate", spy)
    data = b"".join(
        encode_batch(
            [(0, None, v, ()) for v in random_values(i, 100, 300)],
            base_offset=100 * i,
            compression=Compression.ZSTD,
        )
        for i in range(3)
    )
    batches = decoded(data)
    await _inflate.inflate_pending([Run(b, b.base_offset, b.last_offset) for b in batches])
    assert len(threads) == 3
    assert threading.get_ident() not in threads
    assert all(batch.inflated for batch in batches)
    assert [b.records() for b in batches] == [b.records() for b in decoded(data)]


# ------------------------------------------------------------------ through a subscription


def fill_compressed(log: FakeLog, batches: int, per_batch: int = 100) -> list[bytes]:
    """Append large zstd batches; return every value, in offset order."""
    values: list[bytes] = []
    for i in range(batches):
        batch = random_values(i, per_batch, 300)
        log.append(batch, compression=Compression.ZSTD)
        values += batch
    return values


@pytest.fixture
def thread_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the batches handed to the worker thread."""
    handed: list[int] = []
    real = _inflate._inflate_all

    def spy(batches: list[RecordBatch]) -> list[RecordBatch]:
        handed.extend(batch.base_offset for batch in batches)
        return real(batches)

    monkeypatch.setattr(_inflate, "_inflate_all", spy)
    return handed


@pytest.mark.parametrize("mode", ["broker", "partition"])
async def test_records_arrive_identical_and_in_order(
    client: Client, log: FakeLog, thread_batches: list[int], mode: Any
) -> None:
    values = fill_compressed(log, 12)
    got: list[tuple[int, bytes | None]] = []
    async with client.subscribe(
        TOPIC, 0, begin_offset=0, prefetch_count=3, fetch_connection=mode
    ) as sub:
        with trio.fail_after(10):
            async for message_set in sub:
                got += [(record.offset, record.value) for record in message_set]
                sub.ack(message_set.high_offset)
                if len(got) >= len(values):
                    break
    assert got == list(enumerate(values))
    assert sorted(thread_batches) == [100 * i for i in range(12)]


async def test_a_stopped_consumer_leaves_no_thread_work(
    client: Client, log: FakeLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_compressed(log, 3)
    started = threading.Event()
    running = threading.Event()
    calls: list[int] = []

    def slow_inflate(batch: RecordBatch) -> None:
        calls.append(batch.base_offset)
        started.set()
        running.set()
        try:
            while True:  # until the worker is cancelled; then return as if done
                try:
                    trio.from_thread.check_cancelled()
                except trio.Cancelled:
                    return
                threading.Event().wait(0.005)
        finally:
            running.clear()

    monkeypatch.setattr(RecordBatch, "inflate", slow_inflate)
    await client.start_consumer(TOPIC)
    async with client.subscribe(TOPIC, 0, begin_offset=0) as sub:
        assert await trio.to_thread.run_sync(started.wait, 10)
        with trio.fail_after(10):
            await client.stop_consumer(TOPIC)  # cancels the worker, waits for it to end
        # The worker ended only once the thread was done: it is not running, and it stopped
        # after the batch it was on (the thread checks for cancellation between batches).
        assert not running.is_set()
        assert calls == [0]
        with pytest.raises(StopAsyncIteration):
            await sub.receive()  # nothing was delivered


async def test_a_corrupt_batch_raises_the_same_error_through_a_subscription(
    client: Client, log: FakeLog, thread_batches: list[int]
) -> None:
    data = batch_of(b"\x00garbage" * 3000, 5, attributes=int(Compression.ZSTD))
    with pytest.raises(CorruptRecordError) as inline:
        decoded(data)[0].records()
    log.batches.append(Batch(0, 4, data, [0] * 5))
    log.changed()
    async with client.subscribe(TOPIC, 0, begin_offset=0) as sub:
        with trio.fail_after(10):
            message_set = await sub.receive()
        with pytest.raises(CorruptRecordError) as raised:
            list(message_set)
    assert str(raised.value) == str(inline.value)
    assert thread_batches == [0]


def test_the_window_delivers_only_the_ready_runs() -> None:
    data = b"".join(encode_batch([(0, None, b"v", ())] * 5, base_offset=5 * i) for i in range(3))
    window = Window(100, 10**6, 0)
    window.add([Run(b, b.base_offset, b.last_offset) for b in decoded(data)], 15)
    assert [run.first for run in window.take(1)] == [0]
    assert window.take(0) == []
    assert [run.first for run in window.take()] == [5, 10]
