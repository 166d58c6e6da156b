"""Consumers: a fetcher task per partition, subscriptions with a prefetch window and acks.

This is ``brod_consumer`` in Trio form. Starting a topic's consumers
(:meth:`Client.start_consumer <trio_brod.Client.start_consumer>`) starts a per-topic nursery
inside the client's consumers nursery, with one worker per partition. A worker is idle until
someone subscribes to its partition; then it fetches from the partition's leader and delivers
:class:`MessageSet` objects to the subscriber::

    async with client.subscribe("orders", 0, begin_offset="earliest") as subscription:
        async for message_set in subscription:
            for message in message_set:
                handle(message)
            subscription.ack(message_set.high_offset)

The subscriber acknowledges what it has processed; the worker keeps at most ``prefetch_count``
messages (or ``prefetch_bytes`` bytes) delivered and not yet acknowledged, and stops fetching
until acks make room. That window is the back-pressure: a slow subscriber slows the fetching,
it never makes the worker buffer without bound.

By default each partition worker has its own connection to the leader (brod's
``share_leader_conn = false``): a broker answers the requests of one connection one at a time,
so a long-polling fetch would otherwise hold up every other request to that broker.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import math
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import trio

from trio_brod._config import check_number, check_type
from trio_brod._connection import Connection
from trio_brod._exceptions import BrokerConnectionError, ConfigError, NoLeader
from trio_brod.protocol import FetchRequest, ListOffsetsRequest
from trio_brod.protocol.errors import (
    BrodError,
    KafkaError,
    OffsetOutOfRangeError,
    for_code,
)
from trio_brod.protocol.records import (
    ControlRecordType,
    CorruptRecordError,
    Record,
    RecordBatch,
    decode_batches,
)

if TYPE_CHECKING:
    from trio_brod.client import Client

__all__ = [
    "ConsumerConfig",
    "MessageSet",
    "PartitionConsumer",
    "Subscription",
    "Timestamp",
    "TopicConsumer",
]

OffsetResetPolicy = Literal["reset_by_subscriber", "reset_to_earliest", "reset_to_latest"]
IsolationLevel = Literal["read_committed", "read_uncommitted"]

#: ListOffsets' special timestamps.
_LATEST = -1
_EARLIEST = -2
#: Fetch v4 is the oldest Kafka 4 brokers accept, and the first with isolation levels.
_FETCH_MIN_VERSION = 4
#: Fetch v13 names topics by id instead of by name.
_FETCH_TOPIC_ID_VERSION = 13
_NO_TOPIC_ID_VERSION = 12
_RETRY_BACKOFF_START = 0.1
_RETRY_BACKOFF_MAX = 5.0


class Timestamp(NamedTuple):
    """A point in time to start consuming from: the first offset at or after it.

    ``ConsumerConfig(begin_offset=Timestamp(ms))``; a timezone-aware :class:`datetime.datetime`
    is accepted as well.
    """

    #: Milliseconds since the epoch.
    ms: int

    @classmethod
    def from_datetime(cls, moment: datetime.datetime) -> Timestamp:
        """The timestamp of an aware datetime."""
        if moment.tzinfo is None:
            raise ConfigError(f"{moment!r} has no time zone; use an aware datetime")
        return cls(int(moment.timestamp() * 1000))


BeginOffset = Literal["earliest", "latest"] | int | Timestamp | datetime.datetime


def _begin_offset_ok(value: object) -> bool:
    if value in ("earliest", "latest"):
        return True
    if isinstance(value, Timestamp):
        return isinstance(value.ms, int) and value.ms >= 0
    if isinstance(value, datetime.datetime):
        return value.tzinfo is not None
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """How a topic's partition consumers fetch and deliver (brod's consumer options).

    Args:
        begin_offset: Where a new subscription starts: ``"earliest"``, ``"latest"`` (the
            default: only new messages), an offset, or a :class:`Timestamp` / aware
            ``datetime`` (the first message at or after it).
        offset_reset_policy: What to do when the offset is out of range (the data was deleted,
            or the offset is past the end): ``"reset_by_subscriber"`` (the default) raises
            :class:`~trio_brod.protocol.errors.OffsetOutOfRangeError` in the subscriber,
            ``"reset_to_earliest"`` and ``"reset_to_latest"`` move on by themselves.
        min_bytes: The broker answers a fetch once it has this many bytes (or ``max_wait_time``
            passed).
        max_bytes: Bytes to fetch per request. When a single batch is larger, it is raised
            to fit that batch, and shrinks back later (see ``size_stat_window``).
        max_wait_time: Seconds the broker may hold a fetch waiting for ``min_bytes``.
        sleep_timeout: Seconds to wait before fetching again after an empty answer.
        prefetch_count: How many messages may be delivered to the subscriber and not yet
            acknowledged; delivery stops at this count until acks come.
        prefetch_bytes: The same limit in bytes (of the fetched batches).
        isolation_level: ``"read_committed"`` (the default, as brod's) hides messages of
            aborted transactions and stops at the last stable offset; ``"read_uncommitted"``
            shows aborted messages too. Transaction markers (control batches) are never
            delivered as messages.
        size_stat_window: How many recent messages the average message size is taken over,
            to shrink a grown ``max_bytes`` back.
        share_leader_conn: Fetch over the client's shared connection to the leader instead
            of a connection of the worker's own.
    """

    begin_offset: BeginOffset = "latest"
    offset_reset_policy: OffsetResetPolicy = "reset_by_subscriber"
    min_bytes: int = 1
    max_bytes: int = 1024 * 1024
    max_wait_time: float = 10.0
    sleep_timeout: float = 1.0
    prefetch_count: int = 1000
    prefetch_bytes: int = 1024 * 1024
    isolation_level: IsolationLevel = "read_committed"
    size_stat_window: int = 5
    share_leader_conn: bool = False

    def __post_init__(self) -> None:
        if not _begin_offset_ok(self.begin_offset):
            raise ConfigError(
                f"ConsumerConfig.begin_offset={self.begin_offset!r}: expected 'earliest', "
                "'latest', an offset >= 0, a Timestamp or an aware datetime"
            )
        if self.offset_reset_policy not in (
            "reset_by_subscriber",
            "reset_to_earliest",
            "reset_to_latest",
        ):
            raise ConfigError(
                f"ConsumerConfig.offset_reset_policy={self.offset_reset_policy!r}: expected "
                "'reset_by_subscriber', 'reset_to_earliest' or 'reset_to_latest'"
            )
        if self.isolation_level not in ("read_committed", "read_uncommitted"):
            raise ConfigError(
                f"ConsumerConfig.isolation_level={self.isolation_level!r}: expected "
                "'read_committed' or 'read_uncommitted'"
            )
        check_number(self, "min_bytes", minimum=0, integer=True, maximum=2**31 - 1)
        check_number(self, "max_bytes", minimum=1, integer=True, maximum=2**31 - 1)
        check_number(self, "max_wait_time", minimum=0, maximum=(2**31 - 1) / 1000)
        check_number(self, "sleep_timeout", minimum=0)
        check_number(self, "prefetch_count", minimum=1, integer=True)
        check_number(self, "prefetch_bytes", minimum=1, integer=True)
        check_number(self, "size_stat_window", minimum=0, integer=True)
        check_type(self, "share_leader_conn", bool, "a bool")

    def replace(self, **changes: Any) -> ConsumerConfig:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)


class _Part(NamedTuple):
    """A run of records of one batch: those with first <= offset <= last."""

    batch: RecordBatch
    first: int
    last: int

    def whole(self) -> bool:
        return self.first <= self.batch.base_offset and self.last >= self.batch.last_offset

    def records(self) -> list[Record]:
        records = self.batch.records()
        if self.whole():
            return records
        first, last = self.first, self.last
        offsets = [record.offset for record in records]
        return records[bisect.bisect_left(offsets, first) : bisect.bisect_right(offsets, last)]

    def length(self) -> int:
        return self.batch.record_count if self.whole() else len(self.records())

    def size(self) -> int:
        """Bytes charged to the prefetch window: the batch's size, pro rata when split."""
        if self.whole():
            return self.batch.size
        total = self.batch.record_count or 1
        return max(1, self.batch.size * self.length() // total)


class MessageSet:
    """Messages of one partition delivered together (brod's ``#kafka_message_set{}``).

    Iterate it for :class:`~trio_brod.protocol.records.Record` objects (offset, key, value,
    headers, timestamp, timestamp_type); ``len()`` counts them without decoding whole
    batches. Records are decoded the first time they are needed.

    Attributes:
        topic: The topic.
        partition: The partition.
        high_watermark: The partition's high watermark when fetched: the offset the next
            produced message will get (read_committed: the last stable offset).
    """

    __slots__ = (
        "_count",
        "_messages",
        "_next_offset",
        "_parts",
        "high_watermark",
        "partition",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        high_watermark: int,
        parts: list[_Part],
        next_offset: int | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.high_watermark = high_watermark
        self._parts = parts
        # For an empty set (a one-off fetch that found nothing): where it would have begun.
        self._next_offset = next_offset
        self._messages: list[Record] | None = None
        self._count: int | None = None

    def __repr__(self) -> str:
        return (
            f"<MessageSet {self.topic}[{self.partition}] {len(self)} messages "
            f"{self.first_offset}..{self.high_offset} hw={self.high_watermark}>"
        )

    @property
    def messages(self) -> list[Record]:
        """All messages, decoded (once) and in offset order."""
        if self._messages is None:
            if len(self._parts) == 1:
                self._messages = self._parts[0].records()
            else:
                messages: list[Record] = []
                for part in self._parts:
                    messages.extend(part.records())
                self._messages = messages
        return self._messages

    def __iter__(self) -> Iterator[Record]:
        if self._messages is not None:
            return iter(self._messages)
        return self._iterate()

    def _iterate(self) -> Iterator[Record]:
        for part in self._parts:
            yield from part.records()

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(part.length() for part in self._parts)
        return self._count

    @property
    def first_offset(self) -> int:
        """The offset at which this set starts (its first message is at or after it)."""
        if not self._parts:
            assert self._next_offset is not None
            return self._next_offset
        return self._parts[0].first

    @property
    def high_offset(self) -> int:
        """The offset to acknowledge once the set is handled: that of its last message
        (or of the last offset it covers, if compaction removed messages). For an empty set,
        the offset before :attr:`first_offset`."""
        if not self._parts:
            return self.first_offset - 1
        part = self._parts[-1]
        return min(part.last, part.batch.last_offset)

    @property
    def next_offset(self) -> int:
        """The offset to fetch next: after everything this set covers."""
        if self._next_offset is not None:
            return self._next_offset
        return self.high_offset + 1

    @property
    def size(self) -> int:
        """Bytes of fetched batches this set accounts for in the prefetch window."""
        return sum(part.size() for part in self._parts)


class _Failure:
    """An error delivered through the subscription channel, raised by the subscriber."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Subscription:
    """A subscriber's end of one partition consumer.

    Made by :meth:`Client.subscribe <trio_brod.Client.subscribe>`; ``async for`` gives
    :class:`MessageSet` objects, :meth:`ack` makes room in the prefetch window.
    """

    def __init__(
        self,
        consumer: PartitionConsumer,
        config: ConsumerConfig,
        receive: trio.MemoryReceiveChannel[MessageSet | _Failure],
    ) -> None:
        self.consumer = consumer
        self.config = config
        self.topic = consumer.topic
        self.partition = consumer.partition
        self._receive = receive
        self._closed = False
        # Where the worker starts for this subscriber (None: resolve config.begin_offset),
        # and the highest offset it acknowledged.
        self._start_offset: int | None = None
        self._acked: int | None = None

    def __repr__(self) -> str:
        return f"<Subscription {self.topic}[{self.partition}]>"

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MessageSet:
        return await self.receive()

    async def receive(self) -> MessageSet:
        """Wait for the next message set.

        Raises:
            OffsetOutOfRangeError: With ``offset_reset_policy="reset_by_subscriber"``, the
                offset is out of range; subscribe again with another ``begin_offset``.
            KafkaError: A broker error the worker cannot recover from (e.g. authorization).
        """
        try:
            item = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, _Failure):
            raise item.error
        return item

    def ack(self, offset: int) -> None:
        """Acknowledge every delivered message up to ``offset`` (brod's ``consume_ack``)."""
        self.consumer._ack(self, offset)


@dataclasses.dataclass(slots=True)
class _Delivered:
    last_offset: int
    count: int
    size: int


class PartitionConsumer:
    """The consumer of one partition: fetches from the leader, delivers to one subscriber."""

    def __init__(self, client: Client, topic: str, partition: int, config: ConsumerConfig) -> None:
        self.client = client
        self.topic = topic
        self.partition = partition
        self.config = config
        self._subscription: Subscription | None = None
        self._send: trio.MemorySendChannel[MessageSet | _Failure] | None = None
        self._wakeup = trio.Event()
        self._subscribed = trio.Event()
        self._scope: trio.CancelScope | None = None
        # Where fetching continues: the offset after the last message delivered. It belongs
        # to the worker's current session; subscribers never write it.
        self._offset: int | None = None
        # Where a subscriber without begin_offset resumes: after the last one's last ack.
        self._resume_offset: int | None = None
        self._delivered: deque[_Delivered] = deque()
        self._unacked_count = 0
        self._unacked_bytes = 0
        self._max_bytes = config.max_bytes
        self._sizes: deque[int] = deque(maxlen=max(config.size_stat_window, 1))
        self._connection: Connection | None = None
        self._private_connection = False
        self._finished = trio.Event()

    def __repr__(self) -> str:
        state = "subscribed" if self._subscription is not None else "idle"
        return f"<PartitionConsumer {self.topic}[{self.partition}] {state} offset={self._offset}>"

    # ------------------------------------------------------------ subscriptions

    @asynccontextmanager
    async def subscribe(self, **options: Any) -> AsyncIterator[Subscription]:
        """Subscribe to this partition (brod's ``subscribe``); one subscriber at a time.

        Args:
            **options: :class:`ConsumerConfig` fields that apply to this subscription only
                (``begin_offset=...``, ``prefetch_count=...``).

        Raises:
            trio.BusyResourceError: Someone else is subscribed.
        """
        if self._subscription is not None:
            raise trio.BusyResourceError(f"{self.topic}[{self.partition}] already has a subscriber")
        config = self.config.replace(**options) if options else self.config
        send, receive = trio.open_memory_channel[MessageSet | _Failure](math.inf)
        subscription = Subscription(self, config, receive)
        if "begin_offset" not in options:
            subscription._start_offset = self._resume_offset
        self._subscription, self._send = subscription, send
        self._subscribed.set()
        self._wake()
        try:
            yield subscription
        finally:
            self._subscription = self._send = None
            self._subscribed = trio.Event()
            send.close()
            if self._scope is not None:
                self._scope.cancel()  # stop a fetch in flight for the old subscriber
            if subscription._acked is not None:
                # A later subscriber without begin_offset continues after the last ack.
                self._resume_offset = subscription._acked + 1
            self._wake()

    def _reset_window(self) -> None:
        self._delivered.clear()
        self._unacked_count = self._unacked_bytes = 0

    def _ack(self, subscription: Subscription, offset: int) -> None:
        if subscription is not self._subscription:
            return  # an old subscription: nothing of it is pending any more
        if subscription._acked is None or offset > subscription._acked:
            subscription._acked = offset
        delivered = self._delivered
        while delivered and delivered[0].last_offset <= offset:
            done = delivered.popleft()
            self._unacked_count -= done.count
            self._unacked_bytes -= done.size
        self._wake()

    def _wake(self) -> None:
        self._wakeup.set()

    def _window_room(self, config: ConsumerConfig) -> tuple[int, int]:
        return (
            config.prefetch_count - self._unacked_count,
            config.prefetch_bytes - self._unacked_bytes,
        )

    def _window_open(self, config: ConsumerConfig) -> bool:
        count, size = self._window_room(config)
        return (count > 0 and size > 0) or not self._delivered

    async def _wait(self, deadline: float = math.inf) -> None:
        self._wakeup = trio.Event()
        with trio.move_on_at(deadline):
            await self._wakeup.wait()

    # ------------------------------------------------------------ the worker

    async def run(self, nursery: trio.Nursery) -> None:
        """The worker: idle until subscribed, then fetch and deliver until unsubscribed."""
        try:
            while True:
                await self._subscribed.wait()
                subscription = self._subscription
                if subscription is None:
                    continue
                with trio.CancelScope() as scope:
                    self._scope = scope
                    try:
                        await self._consume(subscription, nursery)
                    except BrodError as exc:
                        # Not recoverable here: the subscriber sees it, the worker idles.
                        self._fail(subscription, exc)
                self._scope = None
                if scope.cancelled_caught:
                    # A fetch may still be in flight on it, and the broker answers a
                    # connection's requests in order: the next subscriber gets a fresh one.
                    self._close_connection()
                if self._subscription is subscription:
                    await self._subscriber_gone(subscription)
        finally:
            self._close_connection()
            self._finished.set()

    async def _subscriber_gone(self, subscription: Subscription) -> None:
        # A failure was delivered; wait for that subscriber to leave before serving another.
        while self._subscription is subscription:
            await self._wait()

    def _fail(self, subscription: Subscription, error: BaseException) -> None:
        if self._send is not None and self._subscription is subscription:
            self._send.send_nowait(_Failure(error))
            self._send.close()

    async def _consume(self, subscription: Subscription, nursery: trio.Nursery) -> None:
        config = subscription.config
        backoff = _RETRY_BACKOFF_START
        refresh = False
        # A fresh session: whatever an earlier one left behind is not this subscriber's.
        self._offset = subscription._start_offset
        self._reset_window()
        self._max_bytes = config.max_bytes
        while True:
            try:
                if self._offset is None:
                    self._offset = await self._resolve_begin(config)
                connection = await self._leader_connection(nursery, refresh, config)
                refresh = False
                await self._fetch_loop(subscription, connection, config)
            except OffsetOutOfRangeError as exc:
                policy = config.offset_reset_policy
                if policy == "reset_by_subscriber":
                    raise
                timestamp = _EARLIEST if policy == "reset_to_earliest" else _LATEST
                self._offset = await self.client.resolve_offset(
                    self.topic, self.partition, timestamp, isolation_level=config.isolation_level
                )
                del exc
            except (BrokerConnectionError, NoLeader) as exc:
                if not exc.retriable:
                    raise
                self._close_connection()
                refresh = True
                await trio.sleep(backoff)
                backoff = min(backoff * 2, _RETRY_BACKOFF_MAX)
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                if exc.invalid_metadata:
                    self._close_connection()
                    refresh = True
                await trio.sleep(backoff)
                backoff = min(backoff * 2, _RETRY_BACKOFF_MAX)

    async def _resolve_begin(self, config: ConsumerConfig) -> int:
        begin = config.begin_offset
        if isinstance(begin, int):
            return begin
        if begin == "earliest":
            timestamp = _EARLIEST
        elif begin == "latest":
            timestamp = _LATEST
        elif isinstance(begin, Timestamp):
            timestamp = begin.ms
        else:
            assert isinstance(begin, datetime.datetime)
            timestamp = Timestamp.from_datetime(begin).ms
        return await self.client.resolve_offset(
            self.topic, self.partition, timestamp, isolation_level=config.isolation_level
        )

    async def _leader_connection(
        self, nursery: trio.Nursery, refresh: bool, config: ConsumerConfig
    ) -> Connection:
        connection = self._connection
        if connection is not None and not connection.closed and not refresh:
            return connection
        self._close_connection()
        if config.share_leader_conn:
            connection = await self.client.get_leader_connection(
                self.topic, self.partition, refresh=refresh
            )
            self._private_connection = False
        else:
            leader = await self.client._leader_for(self.topic, self.partition, refresh=refresh)
            connection = await self.client._open_private_connection(
                leader.host, leader.port, nursery
            )
            self._private_connection = True
        self._connection = connection
        return connection

    def _close_connection(self) -> None:
        if self._connection is not None and self._private_connection:
            self._connection.close()
        self._connection = None

    async def _fetch_loop(
        self, subscription: Subscription, connection: Connection, config: ConsumerConfig
    ) -> None:
        version = connection.best_version(FetchRequest, min_version=_FETCH_MIN_VERSION)
        topic_id = None
        if version >= _FETCH_TOPIC_ID_VERSION:
            topic_id = await self.client._topic_id(self.topic)
            if topic_id is None:
                version = _NO_TOPIC_ID_VERSION
        isolation = 1 if config.isolation_level == "read_committed" else 0
        undelivered: deque[_Part] = deque()
        high_watermark = -1
        while True:
            while undelivered:
                await self._deliver(subscription, config, undelivered, high_watermark)
            while not self._window_open(config):
                await self._wait()
            assert self._offset is not None
            response = await connection.request(
                fetch_request(
                    self.topic,
                    topic_id,
                    self.partition,
                    self._offset,
                    self._max_bytes,
                    config,
                    isolation,
                ),
                version,
                timeout=config.max_wait_time + self.client.config.request_timeout,
            )
            partition = response.responses[0].partitions[0]
            if response.error_code:
                raise for_code(response.error_code)(topic=self.topic, partition=self.partition)
            if partition.error_code:
                raise for_code(partition.error_code)(topic=self.topic, partition=self.partition)
            high_watermark = (
                partition.last_stable_offset
                if isolation and partition.last_stable_offset >= 0
                else partition.high_watermark
            )
            fetched_from = self._offset
            parts = self._select(partition, config)
            if parts is None:  # nothing complete: the next batch is larger than max_bytes
                continue
            if not parts:
                if self._offset == fetched_from and config.sleep_timeout > 0:
                    await trio.sleep(config.sleep_timeout)  # brod: sleep after an empty answer
                continue
            undelivered.extend(parts)

    def _select(self, partition: Any, config: ConsumerConfig) -> list[_Part] | None:
        """The parts of the fetched batches the subscriber should see; advances the offset.

        Returns None when the response held only the start of a batch too large for
        ``max_bytes``: ``max_bytes`` has been raised, fetch again.
        """
        assert self._offset is not None
        selected = select_parts(
            self.topic, self.partition, self._offset, partition, config.isolation_level
        )
        if selected.needed_bytes is not None:
            self._max_bytes = min(max(selected.needed_bytes, self._max_bytes * 2), 2**31 - 1)
            return None
        self._shrink_max_bytes(selected.batches)
        self._offset = selected.next_offset
        return selected.parts

    def _shrink_max_bytes(self, batches: list[RecordBatch]) -> None:
        """After growing for a large batch, return towards the configured size."""
        window = self.config.size_stat_window
        if self._max_bytes <= self.config.max_bytes or window <= 0:
            return
        for batch in batches:
            if batch.record_count:
                self._sizes.append(batch.size // batch.record_count)
        if len(self._sizes) >= window:
            average = sum(self._sizes) // len(self._sizes)
            self._max_bytes = max(self.config.max_bytes, min(self._max_bytes, average * 2))

    async def _deliver(
        self,
        subscription: Subscription,
        config: ConsumerConfig,
        undelivered: deque[_Part],
        high_watermark: int,
    ) -> None:
        """Deliver as much as the window allows (at least one message when it is empty)."""
        while not self._window_open(config):
            await self._wait()
        room_count, room_bytes = self._window_room(config)
        if not self._delivered:
            room_count, room_bytes = max(room_count, 1), max(room_bytes, 1)
        chosen: list[_Part] = []
        count = size = 0
        while undelivered:
            part = undelivered[0]
            part_count, part_size = part.length(), part.size()
            if part_count == 0:  # emptied by compaction: nothing to deliver, move past it
                undelivered.popleft()
                continue
            if count + part_count <= room_count and (size + part_size <= room_bytes or not chosen):
                chosen.append(undelivered.popleft())
                count += part_count
                size += part_size
                if size >= room_bytes:
                    break
                continue
            if not chosen and count + part_count > room_count:
                # Split the batch at the window's edge.
                records = part.records()
                take = max(room_count - count, 1)
                cut = records[take - 1].offset
                head, tail = (
                    _Part(part.batch, part.first, cut),
                    _Part(part.batch, cut + 1, part.last),
                )
                undelivered[0] = tail
                chosen.append(head)
                count += head.length()
                size += head.size()
            break
        if not chosen:
            return
        message_set = MessageSet(self.topic, self.partition, high_watermark, chosen)
        self._delivered.append(_Delivered(message_set.high_offset, count, size))
        self._unacked_count += count
        self._unacked_bytes += size
        assert self._send is not None
        self._send.send_nowait(message_set)


class Selected(NamedTuple):
    """What :func:`select_parts` made of one partition's fetched data."""

    parts: list[_Part]
    batches: list[RecordBatch]
    next_offset: int
    #: Set when no batch was complete: the size the next fetch must allow.
    needed_bytes: int | None


def select_parts(
    topic: str, partition: int, offset: int, data: Any, isolation_level: IsolationLevel
) -> Selected:
    """Turn a Fetch response's partition data into the parts a consumer delivers.

    Skips what comes before ``offset`` (a compressed batch may start earlier), transaction
    markers, and, with read_committed, batches of aborted transactions.
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
    aborted = _AbortedTransactions(data.aborted_transactions if read_committed else None)
    parts: list[_Part] = []
    for batch in batches:
        last = batch.last_offset
        if last < offset:
            continue
        if batch.is_control:
            if read_committed and batch.control_type() is ControlRecordType.ABORT:
                aborted.end(batch.producer_id)
        elif not (
            read_committed
            and batch.is_transactional
            and aborted.is_aborted(batch.producer_id, batch.base_offset)
        ):
            parts.append(_Part(batch, offset, last))
        offset = last + 1
    return Selected(parts, batches, offset, None)


class _AbortedTransactions:
    """Which producers' transactional batches to skip (read_committed), as Java does it.

    The broker lists each aborted transaction as (producer id, first offset). Walking the
    batches in order, a producer becomes "aborted" once a batch reaches its first offset,
    and stops being so at its ABORT marker.
    """

    def __init__(self, aborted: list[Any] | None) -> None:
        self._pending = sorted((a.first_offset, a.producer_id) for a in aborted or ())
        self._active: set[int] = set()

    def is_aborted(self, producer_id: int, base_offset: int) -> bool:
        pending = self._pending
        while pending and pending[0][0] <= base_offset:
            self._active.add(pending.pop(0)[1])
        return producer_id in self._active

    def end(self, producer_id: int) -> None:
        self._active.discard(producer_id)


def fetch_request(
    topic: str,
    topic_id: Any,
    partition: int,
    offset: int,
    max_bytes: int,
    config: ConsumerConfig,
    isolation: int,
) -> FetchRequest:
    fetch_partition = FetchRequest.FetchPartition(
        partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes
    )
    if topic_id is not None:
        fetch_topic = FetchRequest.FetchTopic(topic_id=topic_id, partitions=[fetch_partition])
    else:
        fetch_topic = FetchRequest.FetchTopic(topic=topic, partitions=[fetch_partition])
    return FetchRequest(
        max_wait_ms=int(config.max_wait_time * 1000),
        min_bytes=config.min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation,
        topics=[fetch_topic],
    )


class TopicConsumer:
    """The consumers of one topic, in their own nursery; one worker per partition."""

    def __init__(self, client: Client, topic: str, config: ConsumerConfig) -> None:
        self.client = client
        self.topic = topic
        self.config = config
        self.partitions: dict[int, PartitionConsumer] = {}
        self._nursery: trio.Nursery | None = None
        self._done = trio.Event()
        #: Set once every worker of the topic has ended.
        self.finished = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[TopicConsumer]) -> None:
        """The topic's nursery: a worker per partition, until closed."""
        try:
            count = await self.client.get_partitions_count(self.topic)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for partition in range(count):
                    self._start_partition(partition)
                task_status.started(self)
                await self._done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.finished.set()

    def _start_partition(self, partition: int) -> PartitionConsumer:
        assert self._nursery is not None
        consumer = PartitionConsumer(self.client, self.topic, partition, self.config)
        self.partitions[partition] = consumer
        self._nursery.start_soon(
            consumer.run, self._nursery, name=f"trio_brod consumer {self.topic}[{partition}]"
        )
        return consumer

    async def consumer_for(self, partition: int) -> PartitionConsumer:
        """The worker of a partition; partitions added since start get one."""
        consumer = self.partitions.get(partition)
        if consumer is not None:
            return consumer
        count = await self.client.get_partitions_count(self.topic)
        if not 0 <= partition < count:
            raise ValueError(f"{self.topic} has {count} partitions, no partition {partition}")
        consumer = self.partitions.get(partition)
        return consumer if consumer is not None else self._start_partition(partition)

    def close(self) -> None:
        """Stop every worker; subscriptions end."""
        self._done.set()


def offsets_by_partition(offsets: Mapping[int, int] | None) -> dict[int, int]:
    """Validate a ``{partition: offset}`` mapping."""
    result: dict[int, int] = {}
    for partition, offset in (offsets or {}).items():
        if not isinstance(partition, int) or not isinstance(offset, int):
            raise TypeError(f"expected {{partition: offset}} ints, got {partition!r}: {offset!r}")
        result[partition] = offset
    return result


def list_offsets_request(
    topic: str, partition: int, timestamp: int, isolation: int
) -> ListOffsetsRequest:
    """A ListOffsets request for one partition."""
    return ListOffsetsRequest(
        replica_id=-1,
        isolation_level=isolation,
        topics=[
            ListOffsetsRequest.ListOffsetsTopic(
                name=topic,
                partitions=[
                    ListOffsetsRequest.ListOffsetsPartition(
                        partition_index=partition, timestamp=timestamp
                    )
                ],
            )
        ],
    )
