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

The prefetch window
    The subscriber acknowledges what it has processed. At any time, the messages delivered
    and not yet acknowledged number at most ``prefetch_count`` and take at most
    ``prefetch_bytes`` bytes (of fetched batches, pro rata for a batch split at the window's
    edge); one message larger than the whole window is delivered alone. Besides that window
    the worker holds at most one fetch response it has not delivered yet: it fetches the next
    response while the subscriber works on the last one, then waits for acks. A slow
    subscriber slows the fetching; it never makes the worker buffer without bound.

Offsets
    A subscription starts at ``begin_offset``; a later subscription to the same partition
    without a ``begin_offset`` continues after the last acknowledged offset, or where the
    previous one started if it acknowledged nothing: its ``begin_offset`` as resolved, or
    resolved anew if it left before it was (see :meth:`PartitionConsumer.subscribe`). A
    leader move or a lost connection never loses the position: the worker fetches again
    from the exact next offset.

Connections
    A broker answers the requests of one connection one at a time, in order, so a fetch that
    waits for data (a *long poll*, up to ``max_wait_time``) holds up every request behind it
    on its connection. brod therefore gives each partition worker a connection of its own
    (``share_leader_conn = false``): nothing waits behind anything, but a topic with 1,000
    partitions makes 1,000 connections, and 1,000 small Fetch requests where the Java
    consumer sends one per broker.

    That is trio-brod's default too (``fetch_connection="partition"``): a message is
    delivered as soon as it is written, whatever the other partitions do.

    For topics with many partitions, ``fetch_connection="topic"`` keeps brod's workers and
    shares connections among the workers of a topic instead: two per broker, which the connection
    turns into few requests, as one-partition Fetch requests waiting together on a
    connection go out as one (:mod:`trio_brod._net.merge`). The two are *lanes*:

    * the **data** lane carries fetches from an offset below the high watermark the
      partition's last answer reported: the broker answers them at once;
    * the **poll** lane carries the others, which may wait for new data.

    So a fetch that long-polls never holds up a fetch that has data waiting: a busy partition
    is never slowed by idle ones. The poll lane has two costs, both bounded by
    ``max_wait_time``, which is why that is short there, 0.5 s (the Java consumer's
    ``fetch.max.wait.ms``):

    * a partition that has just caught up may wait behind the long poll of others already
      waiting there, so its next message may be late by up to that much (a connection
      keeps one fetch in flight, as the Java consumer does: the fetches sent meanwhile wait
      in it, and go out together once it is answered);
    * once any partition of a long poll gets data, the broker answers the whole request.
      The others, answered early with nothing, count it as their long poll and poll again
      when it would have ended: otherwise each message to one partition would send every
      idle partition's fetch round again. Here too a message may be late by up to
      ``max_wait_time``; in exchange, idle partitions cost one merged request per broker
      per ``max_wait_time``, however busy the others are.

    So ``"topic"`` trades latency (up to ``max_wait_time``) for connections and requests.
    ``"shared"`` (brod's ``share_leader_conn = true``) fetches on the client's own
    connection to the leader, where producing and metadata requests wait behind a long poll.

    With either shared kind, a subscriber that leaves while its fetch long-polls cannot take
    that fetch back from the broker, but it is the only one: fetches wait in the connection
    while one is in flight, and those whose subscriber left are never written. However many
    subscriptions come and go, what follows waits behind at most one long poll.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import operator
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import trio

from trio_brod._cluster.pool import ConnectionSlot
from trio_brod._cluster.requests import EARLIEST, LATEST, list_offset, offset_time_ms
from trio_brod._config import (
    BeginOffset,
    ConsumerConfig,
    FetchConnection,
    IsolationLevel,
)
from trio_brod._exceptions import BrokerConnectionError, NoLeader, NotFound
from trio_brod._net import Connection
from trio_brod.protocol import FetchRequest
from trio_brod.protocol.errors import (
    KafkaError,
    OffsetOutOfRangeError,
    ProtocolError,
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
    from trio_brod._cluster import ConnectionPool, MetadataCache

__all__ = ["MessageSet", "PartitionConsumer", "Subscription", "TopicConsumer"]

#: Fetch v4 is the oldest Kafka 4 brokers accept, and the first with isolation levels.
FETCH_MIN_VERSION = 4
#: Fetch v13 names topics by id instead of by name.
FETCH_TOPIC_ID_VERSION = 13
#: The two lanes of a topic's fetch connections to a broker (see the module docstring).
_DATA_LANE = 0
_POLL_LANE = 1
_MAX_INT32 = 2**31 - 1
_RETRY_BACKOFF_START = 0.1
_RETRY_BACKOFF_MAX = 5.0


_record_offset = operator.itemgetter(0)  # Record.offset, as a bisect key


class _Part(NamedTuple):
    """A run of records of one batch: those with ``first <= offset <= last``.

    Most batches hold one record per offset (nothing was compacted away): ``record_count``
    is ``last_offset_delta + 1``. For those "dense" batches, how many records a part holds
    and where to split it are plain arithmetic, so counting and splitting never decode
    records; only compacted batches need their records to answer.
    """

    batch: RecordBatch
    first: int
    last: int

    def whole(self) -> bool:
        return self.first <= self.batch.base_offset and self.last >= self.batch.last_offset

    def dense(self) -> bool:
        batch = self.batch
        return batch.record_count == batch.last_offset_delta + 1

    def start(self) -> int:
        """The first offset of the part that the batch can hold."""
        return max(self.first, self.batch.base_offset)

    def records(self) -> list[Record]:
        batch = self.batch
        records = batch.records()
        if self.whole():
            return records
        if self.dense():
            base = batch.base_offset
            return records[self.start() - base : self.last - base + 1]
        low = bisect.bisect_left(records, self.first, key=_record_offset)
        high = bisect.bisect_right(records, self.last, key=_record_offset)
        return records[low:high]

    def length(self) -> int:
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
        """How many of the part's first records fit in ``room_bytes``, pro rata."""
        batch = self.batch
        if batch.size <= 0:
            return self.length()
        return room_bytes * (batch.record_count or 1) // batch.size

    def split(self, count: int) -> tuple[_Part, _Part]:
        """The first ``count`` records (``0 < count < length()``), and the rest."""
        cut = self.start() + count - 1 if self.dense() else self.records()[count - 1].offset
        return _Part(self.batch, self.first, cut), _Part(self.batch, cut + 1, self.last)


class MessageSet:
    """Messages of one partition delivered together (brod's ``#kafka_message_set{}``).

    Iterate it for :class:`~trio_brod.protocol.records.Record` objects (offset, key, value,
    headers, timestamp, timestamp_type); ``len()`` counts them without decoding records.
    Records are decoded the first time they are needed, in the task that asks for them.

    Attributes:
        topic: The topic.
        partition: The partition.
        high_watermark: The partition's high watermark when fetched: the offset the next
            produced message will get (with read_committed: the last stable offset).
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
        # For a one-off fetch: where the next fetch should start (after trailing markers).
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
        return self._parts[-1].last

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


@dataclasses.dataclass(slots=True)
class _Delivered:
    """One delivered message set, until acknowledged."""

    last_offset: int
    count: int
    size: int


class _Session:
    """The worker's state for one subscription: position, window, fetched data.

    Everything the worker changes while serving a subscriber lives here, not on the
    :class:`PartitionConsumer`. When the subscriber leaves, the session ends; a worker that
    has not yet noticed (its fetch answer arrived just before the cancellation) can only
    touch a session nobody looks at any more.
    """

    def __init__(
        self, config: ConsumerConfig, send: trio.MemorySendChannel[Any], begin: BeginOffset
    ) -> None:
        self.config = config
        self.send = send
        #: False once the subscriber left (or the consumer stopped).
        self.active = True
        #: Where the subscription starts: its ``begin_offset``, or the position a previous
        #: subscriber left (see :meth:`PartitionConsumer.subscribe`).
        self.begin = begin
        #: The next offset to fetch; None until ``begin`` is resolved.
        self.offset: int | None = begin if isinstance(begin, int) else None
        #: Where a later subscriber without ``begin_offset`` continues: after the last ack,
        #: or else where this one started. None while that is not resolved yet: the later
        #: subscriber then starts at ``begin`` (resolved anew).
        self.resume = self.offset
        self.acked: int | None = None
        self.last_delivered = -1
        self.delivered: deque[_Delivered] = deque()
        self.unacked_count = 0
        self.unacked_bytes = 0
        #: Fetched and not delivered yet (at most one fetch response's worth).
        self.undelivered: deque[_Part] = deque()
        self.high_watermark = -1
        self.max_bytes = config.max_bytes
        self.batch_sizes: deque[int] = deque(maxlen=max(config.size_stat_window, 1))
        self.failures = 0
        self.scope: trio.CancelScope | None = None
        self._wakeup = trio.Event()

    def ack(self, offset: int) -> None:
        if not self.active:
            return  # nothing of an ended subscription is pending any more
        if offset > self.last_delivered:
            raise ValueError(
                f"cannot acknowledge offset {offset}: only offsets up to "
                f"{self.last_delivered} were delivered"
            )
        if self.acked is None or offset > self.acked:
            self.acked = offset
            if self.resume is None or offset + 1 > self.resume:
                self.resume = offset + 1
        delivered = self.delivered
        while delivered and delivered[0].last_offset <= offset:
            done = delivered.popleft()
            self.unacked_count -= done.count
            self.unacked_bytes -= done.size
        self._wakeup.set()

    async def wait(self) -> None:
        """Wait until an ack (or the end of the session) may have changed something."""
        self._wakeup = trio.Event()
        await self._wakeup.wait()

    def deliver(self, message_set: MessageSet, count: int, size: int) -> None:
        if not self.active:
            return
        self.delivered.append(_Delivered(message_set.high_offset, count, size))
        self.unacked_count += count
        self.unacked_bytes += size
        self.last_delivered = message_set.high_offset
        self.send.send_nowait(message_set)

    def fail(self, error: BaseException) -> None:
        """Hand an error the worker cannot recover from to the subscriber."""
        if self.active:
            self.send.send_nowait(_Failure(error))
            self.send.close()

    def end(self) -> None:
        """The subscriber left, or the consumer stopped: the subscriber's iteration ends."""
        if self.active:
            self.active = False
            self.send.close()
            if self.scope is not None:
                self.scope.cancel()
            self._wakeup.set()


class Subscription:
    """A subscriber's end of one partition consumer.

    Made by :meth:`Client.subscribe <trio_brod.Client.subscribe>`; ``async for`` gives
    :class:`MessageSet` objects, :meth:`ack` makes room in the prefetch window. Iteration
    ends when the consumer is stopped (``stop_consumer``); an error the consumer cannot
    recover from is raised by it.

    Attributes:
        consumer: The :class:`PartitionConsumer`.
        config: The options of this subscription.
        topic: The topic.
        partition: The partition.
    """

    def __init__(
        self,
        consumer: PartitionConsumer,
        session: _Session,
        receive: trio.MemoryReceiveChannel[MessageSet | _Failure],
    ) -> None:
        self.consumer = consumer
        self.config = session.config
        self.topic = consumer.topic
        self.partition = consumer.partition
        self._session = session
        self._receive = receive

    def __repr__(self) -> str:
        return f"<Subscription {self.topic}[{self.partition}]>"

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MessageSet:
        return await self.receive()

    async def receive(self) -> MessageSet:
        """Wait for the next message set.

        Raises:
            StopAsyncIteration: The consumer was stopped (or this subscription ended).
            OffsetOutOfRangeError: With ``offset_reset_policy="reset_by_subscriber"``, the
                offset is out of range; subscribe again with another ``begin_offset``.
            BrodError: An error the worker cannot recover from (e.g. authorization, or
                corrupt data); the subscription delivers nothing more.
        """
        try:
            item = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, _Failure):
            raise item.error
        return item

    def ack(self, offset: int) -> None:
        """Acknowledge every delivered message up to ``offset`` (brod's ``consume_ack``).

        A message set makes room in the prefetch window once acknowledged up to its
        :attr:`~MessageSet.high_offset`. Acknowledging after the subscription ended does
        nothing.

        Raises:
            ValueError: ``offset`` was not delivered yet.
        """
        self._session.ack(offset)

    @property
    def unacked_count(self) -> int:
        """Messages delivered and not acknowledged yet (whole message sets)."""
        return self._session.unacked_count

    @property
    def unacked_bytes(self) -> int:
        """Bytes delivered and not acknowledged yet, as charged to the prefetch window."""
        return self._session.unacked_bytes


class PartitionConsumer:
    """The consumer of one partition: fetches from the leader, delivers to one subscriber.

    Made by :meth:`Client.start_consumer <trio_brod.Client.start_consumer>`; get it with
    :meth:`Client.get_consumer <trio_brod.Client.get_consumer>`.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        metadata: MetadataCache,
        topic: str,
        partition: int,
        config: ConsumerConfig,
        topic_consumer: TopicConsumer | None = None,
    ) -> None:
        self._pool = pool
        self._metadata = metadata
        self.topic = topic
        self.partition = partition
        self.config = config
        self._topic_consumer = topic_consumer
        self._session: _Session | None = None
        self._changed = trio.Event()
        # Where a subscriber without begin_offset starts: after the last ack, or where the
        # previous subscriber started (an offset, or its begin_offset if it left before
        # that was resolved). None: the config's begin_offset.
        self._resume_from: BeginOffset | None = None
        # The connection fetched over, its mode, and with fetch_connection="topic" the
        # topic's lanes to the leader (the connection is then the one last used).
        self._connection: Connection | None = None
        self._mode: FetchConnection | None = None
        self._lanes: _FetchLanes | None = None
        self._finished = trio.Event()

    def __repr__(self) -> str:
        session = self._session
        state = "idle" if session is None else f"subscribed offset={session.offset}"
        return f"<PartitionConsumer {self.topic}[{self.partition}] {state}>"

    # ------------------------------------------------------------ subscriptions

    @asynccontextmanager
    async def subscribe(self, **options: Any) -> AsyncIterator[Subscription]:
        """Subscribe to this partition (brod's ``subscribe``); one subscriber at a time.

        Args:
            **options: :class:`ConsumerConfig` fields that apply to this subscription only
                (``begin_offset=...``, ``prefetch_count=...``). Without ``begin_offset``,
                the subscription continues where the previous subscriber left off: after
                its last ack, or, if it acknowledged nothing, where it started.

        Where the previous subscriber started is its own ``begin_offset`` as it was
        resolved, or, if it left before that was resolved, the same ``begin_offset``
        resolved now: a subscriber that leaves at once (or is cancelled while its start is
        being looked up) hands on what it asked for, never the config's default, so
        nothing is skipped without anyone asking for it. A subscription that names a
        ``begin_offset`` replaces the position: after a ``"latest"`` subscriber that acked
        nothing, the next one starts at the end of the log as that subscriber saw it (or
        as it is now, if it never looked), not after older acks.

        Raises:
            trio.BusyResourceError: Someone else is subscribed to this partition.
            NotFound: The consumer was stopped.
            ConfigError: An unknown option or a bad value.
        """
        await trio.lowlevel.checkpoint()
        if self._finished.is_set():
            raise NotFound(f"the consumer of {self.topic}[{self.partition}] was stopped")
        busy = self._session is not None
        if busy:
            raise trio.BusyResourceError(
                f"{self.topic}[{self.partition}] already has a subscriber; a partition "
                "consumer serves one subscriber at a time"
            )
        config = self.config.replace(**options) if options else self.config
        begin = config.begin_offset
        if "begin_offset" not in options and self._resume_from is not None:
            begin = self._resume_from
        send, receive = trio.open_memory_channel[MessageSet | _Failure](math.inf)
        session = _Session(config, send, begin)
        subscription = Subscription(self, session, receive)
        self._set_session(session)
        try:
            yield subscription
        finally:
            session.end()  # also cancels a fetch in flight for this subscriber
            # Unresolved, the start is handed on as it was asked for, to be resolved anew.
            self._resume_from = session.begin if session.resume is None else session.resume
            if self._session is session:
                self._set_session(None)

    def _set_session(self, session: _Session | None) -> None:
        self._session = session
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------ the worker

    async def run(self, nursery: trio.Nursery) -> None:
        """The worker: idle until subscribed, then fetch and deliver until unsubscribed.

        Private leader connections run in ``nursery`` (the topic's).
        """
        try:
            while True:
                session = self._session
                if session is None or not session.active:
                    await self._changed.wait()
                    continue
                await self._serve(session, nursery)
                # The session failed: wait for that subscriber to leave before serving another.
                while self._session is session:
                    await self._changed.wait()
        finally:
            self._close_connection()
            self._finished.set()
            if self._session is not None:
                self._session.end()  # the subscriber's iteration ends

    async def _serve(self, session: _Session, nursery: trio.Nursery) -> None:
        with trio.CancelScope() as scope:
            session.scope = scope
            try:
                await self._consume(session, nursery)
            except Exception as exc:
                # Whatever the worker cannot recover from goes to the subscriber: it must
                # neither hang there nor take the client down with it.
                session.fail(exc)
        session.scope = None
        if scope.cancelled_caught:
            # A fetch may still be in flight on the connection, and the broker answers a
            # connection's requests in order: the next subscriber gets a fresh one.
            self._close_connection()

    async def _consume(self, session: _Session, nursery: trio.Nursery) -> None:
        config = session.config
        refresh = False
        while True:
            try:
                if session.offset is None:
                    session.offset = session.resume = await self._resolve_begin(session)
                connection = await self._leader_connection(nursery, refresh, config)
                refresh = False
                await self._fetch_loop(session, connection, self._lanes)
            except OffsetOutOfRangeError:
                policy = config.offset_reset_policy
                if policy == "reset_by_subscriber":
                    raise
                if session.failures:  # reset again at once: the log is changing under us
                    await trio.sleep(_backoff(session.failures))
                session.failures += 1
                timestamp = EARLIEST if policy == "reset_to_earliest" else LATEST
                session.offset = await self._list_offset(timestamp, config)
                if session.acked is None:
                    session.resume = session.offset
            except (BrokerConnectionError, NoLeader, KafkaError) as exc:
                if not exc.retriable:
                    raise
                # Leader moved, broker gone, topic metadata stale: ask again where the leader
                # is, then go on from the exact same offset. Other retriable errors (a broker
                # time-out) are just tried again.
                if not isinstance(exc, KafkaError) or exc.invalid_metadata:
                    self._close_connection()
                    refresh = True
                await trio.sleep(_backoff(session.failures))
                session.failures += 1

    async def _resolve_begin(self, session: _Session) -> int:
        """The offset where the session starts (ListOffsets for anything but an offset)."""
        begin = session.begin
        if isinstance(begin, int):
            return begin
        return await self._list_offset(offset_time_ms(begin), session.config)

    async def _list_offset(self, timestamp: int, config: ConsumerConfig) -> int:
        isolation = 1 if config.isolation_level == "read_committed" else 0
        return await list_offset(self._metadata, self.topic, self.partition, timestamp, isolation)

    async def _leader_connection(
        self, nursery: trio.Nursery, refresh: bool, config: ConsumerConfig
    ) -> Connection:
        """A connection to the partition's leader, in the subscription's mode; with
        ``fetch_connection="topic"`` also sets ``self._lanes``."""
        mode = config.connection_mode
        connection = self._connection
        if connection is not None and not connection.closed and not refresh and self._mode == mode:
            return connection
        self._close_connection()
        if mode == "shared":
            connection = await self._metadata.leader_connection(
                self.topic, self.partition, refresh=refresh
            )
        else:
            leader = await self._metadata.leader(self.topic, self.partition, refresh=refresh)
            if mode == "partition" or self._topic_consumer is None:
                connection = await self._pool.open_private(leader.host, leader.port, nursery)
                mode = "partition"
            else:
                self._lanes = self._topic_consumer.lanes_to(leader.host, leader.port)
                connection = await self._lanes.connection(_POLL_LANE)
        self._connection = connection
        self._mode = mode
        return connection

    def _close_connection(self) -> None:
        """Forget the connection; close it if it is the worker's own."""
        if self._connection is not None and self._mode == "partition":
            self._connection.close()
        self._connection = None
        self._lanes = None

    async def _fetch_loop(
        self, session: _Session, connection: Connection, lanes: _FetchLanes | None
    ) -> None:
        """Fetch and deliver, for as long as the connection (or lanes) serve."""
        config = session.config
        version = connection.best_version(FetchRequest, min_version=FETCH_MIN_VERSION)
        topic_id = None
        if version >= FETCH_TOPIC_ID_VERSION:
            topic_id = await self._metadata.topic_id(self.topic)
            if topic_id is None:
                version = FETCH_TOPIC_ID_VERSION - 1
        isolation = 1 if config.isolation_level == "read_committed" else 0
        wait_time = config.effective_max_wait_time
        timeout = wait_time + self._metadata.config.request_timeout
        sleep_timeout = config.effective_sleep_timeout
        # Asked to accumulate min_bytes, every fetch should wait, so all go to the poll lane.
        data_lane = lanes is not None and config.min_bytes <= 1
        while True:
            # Deliver what the window allows, and wait for acks while fetched data is left.
            # Once all of it is delivered, fetch the next response at once, even with a full
            # window: the subscriber has work, and the fetch overlaps with it.
            self._deliver(session)
            while session.undelivered:
                await session.wait()
                self._deliver(session)
            offset = session.offset
            assert offset is not None
            max_wait = None
            if lanes is not None:
                # Data known to be waiting (or, first, not known whether): a fetch that does
                # not wait, so that it need not queue behind the long polls of caught-up
                # partitions, nor hold up anything itself.
                lane = _POLL_LANE
                if data_lane and (offset < session.high_watermark or session.high_watermark < 0):
                    lane, max_wait = _DATA_LANE, 0.0
                connection = await lanes.connection(lane)
                self._connection = connection
            request = fetch_request(
                self.topic,
                topic_id,
                self.partition,
                offset,
                session.max_bytes,
                config,
                isolation,
                max_wait=max_wait,
            )
            polled_at = trio.current_time()
            # The response is not given a name here: this loop sleeps (for acks, for the next
            # long poll), and an idle worker must not keep its last answer alive meanwhile.
            nothing_new = self._take_answer(
                session,
                offset,
                isolation,
                await connection.request(request, version, timeout=timeout),
            )
            if nothing_new and max_wait is None:
                # Nothing new, after a fetch that could wait. Merged with others, it may
                # have been answered early because another partition got data: it counts
                # as a long poll all the same, so poll again no sooner than a lone long
                # poll would have ended. Otherwise every message to one partition would
                # send every idle partition of the request round again (and on a busy
                # topic, keep them all busy).
                await trio.sleep_until(polled_at + wait_time)
                if sleep_timeout:
                    await trio.sleep(sleep_timeout)  # brod: sleep after an empty answer

    def _take_answer(self, session: _Session, offset: int, isolation: int, response: Any) -> bool:
        """Add a Fetch response's records (from ``offset``) to what waits for delivery.

        Returns True when the answer brought nothing new.

        Raises:
            KafkaError: The broker answered with an error for the partition.
        """
        config = session.config
        data = fetched_partition(response, self.topic, self.partition, offset)
        session.failures = 0
        session.high_watermark = visible_end(data, isolation)
        selected = select_parts(self.topic, self.partition, offset, data, config.isolation_level)
        if selected.needed_bytes is not None:
            # Only the start of a batch came. Larger than max_bytes (a broker without Kafka's
            # KIP-74): ask for enough to get it whole. Not larger: the request's max_bytes ran
            # out, shared with other partitions: just fetch it again.
            if selected.needed_bytes > session.max_bytes:
                session.max_bytes = min(
                    max(selected.needed_bytes, session.max_bytes * 2), _MAX_INT32
                )
            return False
        self._follow_batch_sizes(session, selected.batches)
        session.offset = selected.next_offset
        session.undelivered.extend(selected.parts)
        return not selected.parts and selected.next_offset == offset

    @staticmethod
    def _follow_batch_sizes(session: _Session, batches: list[RecordBatch]) -> None:
        """After ``max_bytes`` grew for a large batch, bring it back as batches get smaller."""
        configured = session.config.max_bytes
        if session.max_bytes <= configured or not batches:
            return
        if session.config.size_stat_window == 0:
            session.max_bytes = configured
            return
        sizes = session.batch_sizes
        sizes.extend(batch.size for batch in batches)
        session.max_bytes = max(configured, max(sizes))

    def _deliver(self, session: _Session) -> None:
        """Deliver as much fetched data as the window has room for, as one message set.

        A part that does not fit whole is split at the window's edge. When nothing is
        unacknowledged, at least one message goes, so that a message larger than the whole
        window still gets through (alone).
        """
        config = session.config
        room_count = config.prefetch_count - session.unacked_count
        room_bytes = config.prefetch_bytes - session.unacked_bytes
        undelivered = session.undelivered
        chosen: list[_Part] = []
        count = size = 0
        while undelivered and count < room_count and size < room_bytes:
            part = undelivered[0]
            part_count = part.length()
            if part_count == 0:  # emptied by compaction: nothing to deliver
                undelivered.popleft()
                continue
            part_size = part.size()
            if count + part_count <= room_count and size + part_size <= room_bytes:
                chosen.append(undelivered.popleft())
                count += part_count
                size += part_size
                continue
            take = min(room_count - count, part.fitting(room_bytes - size), part_count)
            if take <= 0:
                if chosen or session.delivered:
                    break
                take = 1  # one message larger than the whole window: alone
            if take < part_count:
                head, undelivered[0] = part.split(take)
            else:
                head = undelivered.popleft()
            chosen.append(head)
            count += head.length()
            size += head.size()
            break
        if chosen:
            message_set = MessageSet(self.topic, self.partition, session.high_watermark, chosen)
            session.deliver(message_set, count, size)


def _backoff(failures: int) -> float:
    """Seconds to wait before trying again after ``failures`` failures in a row."""
    return float(min(_RETRY_BACKOFF_START * 2 ** min(failures, 16), _RETRY_BACKOFF_MAX))


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
    """What :func:`select_parts` made of one partition's fetched data."""

    #: The runs of records to deliver.
    parts: list[_Part]
    #: Every complete batch of the response (for batch size statistics).
    batches: list[RecordBatch]
    #: Where the next fetch starts: after every batch looked at.
    next_offset: int
    #: Set when no batch was complete: the size the next fetch must allow.
    needed_bytes: int | None


def select_parts(
    topic: str, partition: int, offset: int, data: Any, isolation_level: IsolationLevel
) -> Selected:
    """Turn a Fetch response's partition data into the parts a consumer delivers.

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
    parts: list[_Part] = []
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
            parts.append(_Part(batch, offset, last))
        offset = last + 1
    return Selected(parts, batches, offset, None)


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
        max_wait_ms=int((config.effective_max_wait_time if max_wait is None else max_wait) * 1000),
        min_bytes=config.min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation,
        topics=[fetch_topic],
    )


class _FetchLanes:
    """A topic's fetch connections to one broker, one per lane, opened on first use.

    They live in the topic's nursery and are shared by its partition workers. They follow
    the rules of the client's own connections (:meth:`Client.get_connection
    <trio_brod.Client.get_connection>`): a connection that closed is opened again by the
    next worker that needs it, and after a failure none is tried within the client's
    ``reconnect_cool_down``: the workers waiting for it get its error (and back off),
    rather than each trying in turn.
    """

    def __init__(self, pool: ConnectionPool, host: str, port: int, nursery: trio.Nursery) -> None:
        self._pool = pool
        self.host = host
        self.port = port
        self._nursery = nursery
        self._slots = (ConnectionSlot(), ConnectionSlot())

    async def connection(self, lane: int) -> Connection:
        """The lane's open connection, opening it if needed (without a checkpoint when it
        is open: the fetch is the next request).

        Raises:
            BrokerConnectionError: The broker cannot be reached.
        """
        slot = self._slots[lane]
        return await self._pool.connect_slot(slot, self.host, self.port, self._nursery)

    @property
    def connections(self) -> list[Connection | None]:
        """The data lane's and the poll lane's connections (None until first used)."""
        return [slot.connection for slot in self._slots]


class TopicConsumer:
    """The consumers of one topic, in their own nursery; one worker per partition."""

    def __init__(
        self, pool: ConnectionPool, metadata: MetadataCache, topic: str, config: ConsumerConfig
    ) -> None:
        self._pool = pool
        self._metadata = metadata
        self._auto_create = metadata.config.allow_topic_auto_creation
        self.topic = topic
        self.config = config
        self.partitions: dict[int, PartitionConsumer] = {}
        self._lanes: dict[tuple[str, int], _FetchLanes] = {}
        self._nursery: trio.Nursery | None = None
        self._done = trio.Event()
        #: Set once every worker of the topic has ended.
        self.finished = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[TopicConsumer]) -> None:
        """The topic's nursery: a worker per partition, until closed."""
        try:
            count = await self._metadata.partitions_count(self.topic, auto_create=self._auto_create)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for partition in range(count):
                    self._start_partition(partition)
                task_status.started(self)
                await self._done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.finished.set()

    def lanes_to(self, host: str, port: int) -> _FetchLanes:
        """The topic's fetch connections to a broker (``fetch_connection="topic"``)."""
        lanes = self._lanes.get((host, port))
        if lanes is None:
            assert self._nursery is not None
            lanes = self._lanes[host, port] = _FetchLanes(self._pool, host, port, self._nursery)
        return lanes

    def _start_partition(self, partition: int) -> PartitionConsumer:
        assert self._nursery is not None
        consumer = PartitionConsumer(
            self._pool, self._metadata, self.topic, partition, self.config, self
        )
        self.partitions[partition] = consumer
        self._nursery.start_soon(
            consumer.run, self._nursery, name=f"trio_brod consumer {self.topic}[{partition}]"
        )
        return consumer

    async def consumer_for(self, partition: int) -> PartitionConsumer:
        """The worker of a partition; partitions added since start get one.

        Raises:
            ValueError: The topic has no such partition.
            NotFound: The consumers were stopped.
        """
        consumer = self.partitions.get(partition)
        if consumer is not None:
            await trio.lowlevel.checkpoint()
            return consumer
        count = await self._metadata.partitions_count(self.topic, auto_create=self._auto_create)
        if not 0 <= partition < count:
            raise ValueError(f"{self.topic} has {count} partitions, no partition {partition}")
        if self._done.is_set():
            raise NotFound(f"the consumers of {self.topic} were stopped")
        consumer = self.partitions.get(partition)
        return consumer if consumer is not None else self._start_partition(partition)

    def close(self) -> None:
        """Stop every worker; subscriptions end."""
        self._done.set()
