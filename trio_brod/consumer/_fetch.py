"""The consumer's sans-IO core, part one: Fetch requests in, records to deliver out.

Nothing here does I/O or knows about Trio: the partition worker
(:mod:`trio_brod.consumer.worker`) sends what :func:`fetch_request` builds and hands what
comes back to :func:`fetched_partition`, :func:`visible_end` and :func:`select_runs`; the
one-off :meth:`Client.fetch <trio_brod.Client.fetch>` does the same. Keeping these pure lets
tests feed them any response, including garbage, without a broker or a client.

The answer to a fetch becomes :class:`Run` objects: runs of consecutive offsets of one record
batch. Counting a run's records or splitting it at the prefetch window's edge is arithmetic
on the batch header for ordinary batches, so the consume path decodes records only when the
subscriber iterates them, in the subscriber's task.

Rules the parsing follows (Kafka's, as the Java consumer applies them):

* a fetch may answer with a compressed batch that starts before the fetch offset: records
  before it are skipped;
* control batches (transaction markers) are never messages, whatever the isolation level;
* with ``read_committed``, batches of aborted transactions are skipped (see
  :class:`_AbortedTransactions`), and nothing at or after the last stable offset is taken;
* a response may end with a cut batch (the request's ``max_bytes`` ran out): it is fetched
  again whole; if *only* a cut batch came, the next fetch must allow its whole size
  (:class:`FetchSize`).
"""

from __future__ import annotations

import bisect
import operator
from collections import deque
from typing import Any, NamedTuple

from trio_brod._config import ConsumerConfig, IsolationLevel
from trio_brod.protocol import FetchRequest
from trio_brod.protocol.errors import ProtocolError, for_code
from trio_brod.protocol.records import (
    ControlRecordType,
    CorruptRecordError,
    Record,
    RecordBatch,
    decode_batches,
)

__all__ = [
    "FETCH_MIN_VERSION",
    "FETCH_TOPIC_ID_VERSION",
    "FetchSize",
    "Run",
    "Selected",
    "fetch_request",
    "fetched_partition",
    "isolation_code",
    "select_runs",
    "visible_end",
]

#: Fetch v4 is the oldest Kafka 4 brokers accept, and the first with isolation levels.
FETCH_MIN_VERSION = 4
#: Fetch v13 names topics by id instead of by name.
FETCH_TOPIC_ID_VERSION = 13
#: The largest ``max_bytes`` a Fetch request can carry (an int32).
MAX_FETCH_BYTES = 2**31 - 1


def isolation_code(isolation_level: IsolationLevel) -> int:
    """The isolation level as Fetch and ListOffsets carry it: 0 read_uncommitted,
    1 read_committed."""
    return 1 if isolation_level == "read_committed" else 0


_record_offset = operator.itemgetter(0)  # Record.offset, as a bisect key


class Run(NamedTuple):
    """A run of records of one batch: those with ``first <= offset <= last``.

    Most batches hold one record per offset (nothing was compacted away): ``record_count``
    is ``last_offset_delta + 1``. For those "dense" batches, how many records a run holds
    and where to split it are plain arithmetic, so counting and splitting never decode
    records; only compacted batches need their records to answer.
    """

    batch: RecordBatch
    first: int
    last: int

    def whole(self) -> bool:
        """Whether the run is its whole batch (the usual case: nothing to slice)."""
        return self.first <= self.batch.base_offset and self.last >= self.batch.last_offset

    def dense(self) -> bool:
        """Whether the batch holds a record at every offset it spans (not compacted)."""
        batch = self.batch
        return batch.record_count == batch.last_offset_delta + 1

    def start(self) -> int:
        """The first offset of the run that the batch can hold."""
        return max(self.first, self.batch.base_offset)

    def records(self, *, keep: bool = True) -> list[Record]:
        """The run's records, decoded (the batch decodes once, on first use).

        With ``keep=False`` a run that is its whole batch does not make the batch keep
        them (see :meth:`RecordBatch.records`): a later call decodes them again. A part of a
        batch always does, as the rest of it is in another message set.
        """
        batch = self.batch
        if self.whole():
            return batch.records(keep=keep)
        records = batch.records()
        if self.dense():
            base = batch.base_offset
            return records[self.start() - base : self.last - base + 1]
        low = bisect.bisect_left(records, self.first, key=_record_offset)
        high = bisect.bisect_right(records, self.last, key=_record_offset)
        return records[low:high]

    def length(self) -> int:
        """How many records the run holds (arithmetic, unless the batch was compacted)."""
        if self.whole():
            return self.batch.record_count
        if self.dense():
            return max(0, self.last - self.start() + 1)
        return len(self.records())

    def size(self) -> int:
        """Bytes charged to the prefetch window: the batch's size, pro rata when split."""
        batch = self.batch
        if self.whole():
            return batch.size
        return max(1, batch.size * self.length() // (batch.record_count or 1))

    def fitting(self, room_bytes: int) -> int:
        """How many of the run's first records fit in ``room_bytes``, pro rata."""
        batch = self.batch
        if batch.size <= 0:
            return self.length()
        return room_bytes * (batch.record_count or 1) // batch.size

    def split(self, count: int) -> tuple[Run, Run]:
        """The first ``count`` records (``0 < count < length()``), and the rest."""
        cut = self.start() + count - 1 if self.dense() else self.records()[count - 1].offset
        return Run(self.batch, self.first, cut), Run(self.batch, cut + 1, self.last)


def fetched_partition(response: Any, topic: str, partition: int, offset: int) -> Any:
    """The one partition's data in a Fetch response for one partition, or its error.

    Raises:
        KafkaError: The broker answered with an error for the request or the partition.
        ProtocolError: The response does not hold the partition.
    """
    if response.error_code:
        raise for_code(response.error_code)(topic=topic, partition=partition, offset=offset)
    for topic_data in response.responses:
        for data in topic_data.partitions:
            if data.partition_index == partition:
                if data.error_code:
                    raise for_code(data.error_code)(topic=topic, partition=partition, offset=offset)
                return data
    raise ProtocolError(f"the Fetch response holds no data for {topic}[{partition}]")


def visible_end(data: Any, isolation: int) -> int:
    """The offset a consumer of that isolation level can read up to: the high watermark,
    or with read_committed the last stable offset (where the first open transaction
    starts)."""
    if isolation and data.last_stable_offset >= 0:
        end: int = data.last_stable_offset
    else:
        end = data.high_watermark
    return end


class Selected(NamedTuple):
    """What :func:`select_runs` made of one partition's fetched data."""

    #: The runs of records to deliver.
    runs: list[Run]
    #: Every complete batch of the response (for batch size statistics).
    batches: list[RecordBatch]
    #: Where the next fetch starts: after every batch looked at.
    next_offset: int
    #: Set when no batch was complete: the size the next fetch must allow.
    needed_bytes: int | None


def select_runs(
    topic: str, partition: int, offset: int, data: Any, isolation_level: IsolationLevel
) -> Selected:
    """Turn a Fetch response's partition data into the runs of records a consumer delivers.

    Skips what comes before ``offset`` (a compressed batch may start earlier) and
    transaction markers (control batches). With read_committed, also skips batches of
    aborted transactions, and stops at the last stable offset (brokers stop there
    themselves; this makes sure).

    Raises:
        CorruptRecordError: A batch is malformed (the message names the partition).
    """
    records = data.records
    if not records:
        return Selected([], [], offset, None)
    try:
        decoded = decode_batches(records)
    except CorruptRecordError as exc:
        raise CorruptRecordError(
            f"{topic}[{partition}] near offset {exc.base_offset}: {exc}", exc.base_offset
        ) from exc
    batches = decoded.batches
    if not batches:
        if decoded.truncated:
            return Selected([], [], offset, decoded.incomplete_batch_size or len(records) * 2)
        return Selected([], [], offset, None)
    read_committed = isolation_level == "read_committed"
    aborted = _AbortedTransactions(data.aborted_transactions) if read_committed else None
    stable = data.last_stable_offset if read_committed else -1
    runs: list[Run] = []
    for batch in batches:
        last = batch.last_offset
        if last < offset:
            continue
        if stable >= 0 and batch.base_offset >= stable:
            break  # not decided yet: fetched again once its transaction ends
        if aborted is not None and batch.producer_id >= 0:
            aborted.begun_by(last)
            if batch.is_control:
                if batch.control_type() is ControlRecordType.ABORT:
                    aborted.end(batch.producer_id)
            elif batch.is_transactional and aborted.is_aborted(batch.producer_id):
                offset = last + 1
                continue
        if not batch.is_control:
            runs.append(Run(batch, offset, last))
        offset = last + 1
    return Selected(runs, batches, offset, None)


class _AbortedTransactions:
    """Which producers' transactional batches to skip (read_committed), as Java does it.

    The broker lists the aborted transactions that overlap the fetched range, each as
    (producer id, first offset). Walking the batches in order, a producer's batches are
    "aborted" from the batch that reaches the first offset of one of its aborted
    transactions until that producer's ABORT marker. The list is consumed up to every batch
    with a producer id, markers included: a fetch may start right at a marker whose
    transaction began earlier, and that marker must close it.
    """

    def __init__(self, aborted: list[Any] | None) -> None:
        self._pending = deque(sorted((a.first_offset, a.producer_id) for a in aborted or ()))
        self._active: set[int] = set()

    def begun_by(self, offset: int) -> None:
        """Note the aborted transactions that began at or before ``offset``."""
        pending = self._pending
        while pending and pending[0][0] <= offset:
            self._active.add(pending.popleft()[1])

    def is_aborted(self, producer_id: int) -> bool:
        """Whether the producer's transactional batches are being skipped now."""
        return producer_id in self._active

    def end(self, producer_id: int) -> None:
        """The producer's ABORT marker: its later batches are read again."""
        self._active.discard(producer_id)


def fetch_request(
    topic: str,
    topic_id: Any,
    partition: int,
    offset: int,
    max_bytes: int,
    config: ConsumerConfig,
    isolation: int,
    *,
    max_wait: float | None = None,
) -> FetchRequest:
    """A Fetch request for one partition, without a fetch session.

    The topic is named both ways; each version encodes the one it has (v13+: the id).
    ``max_wait`` overrides the config's ``max_wait_time``.
    """
    fetch_partition = FetchRequest.FetchPartition(
        partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes
    )
    fetch_topic = FetchRequest.FetchTopic(topic=topic, partitions=[fetch_partition])
    if topic_id is not None:
        fetch_topic.topic_id = topic_id
    return FetchRequest(
        max_wait_ms=wait_ms(config.effective_max_wait_time if max_wait is None else max_wait),
        min_bytes=config.min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation,
        topics=[fetch_topic],
    )


def wait_ms(seconds: float) -> int:
    """``max_wait_time`` in seconds as Fetch's ``max_wait_ms``: the nearest millisecond, and at
    least 1 if positive (truncating made 1.001 s 1000 ms through the float, and 0.0004 s 0 ms:
    an answer at once, a busy poll). 0 stays 0: no waiting asked for."""
    if seconds <= 0:
        return 0
    return max(1, round(seconds * 1000))


class FetchSize:
    """The ``max_bytes`` a partition's fetches ask for: the config's, grown for a large batch.

    A broker always returns at least one whole batch (Kafka's KIP-74), however small
    ``max_bytes`` is, but a broker without it returns only the start of a batch larger than
    ``max_bytes``. Then the next fetch asks for enough (:meth:`grow`), and as batches get
    small again, ``max_bytes`` comes back down to the largest of the last
    ``size_stat_window`` batches, never below the config's (:meth:`follow`).
    """

    __slots__ = ("_sizes", "configured", "current", "stat_window")

    def __init__(self, configured: int, stat_window: int) -> None:
        self.configured = configured
        self.stat_window = stat_window
        #: What the next fetch asks for.
        self.current = configured
        self._sizes: deque[int] = deque(maxlen=max(stat_window, 1))

    def grow(self, needed_bytes: int) -> None:
        """Only the start of a batch of ``needed_bytes`` came: make the next fetch allow it.

        Not larger than ``max_bytes``: the request's bytes ran out, shared with other
        partitions, and the same fetch will do.
        """
        if needed_bytes > self.current:
            self.current = min(max(needed_bytes, self.current * 2), MAX_FETCH_BYTES)

    def follow(self, batches: list[RecordBatch]) -> None:
        """After ``max_bytes`` grew for a large batch, bring it back as batches get smaller."""
        configured = self.configured
        if self.current <= configured or not batches:
            return
        if self.stat_window == 0:
            self.current = configured
            return
        sizes = self._sizes
        sizes.extend(batch.size for batch in batches)
        self.current = max(configured, max(sizes))
