"""The partition worker: fetches from the leader and delivers to one subscriber at a time.

A :class:`PartitionConsumer` is idle until someone subscribes (the first one starts its
task); then it fetches from the partition's leader and delivers
:class:`~trio_brod.MessageSet` objects through the :class:`Subscription`. The decisions
are not made here: what to fetch and how to read the answer is
:mod:`trio_brod.consumer._fetch`, what may be delivered and where a later subscriber
continues is :mod:`trio_brod.consumer._window`. This module only does the I/O around them:
connections, the long poll, waiting for acks, retries.

A leader move or a lost connection never loses the position: the worker asks again where
the leader is and fetches again from the exact next offset.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod._cluster.requests import (
    EARLIEST,
    LATEST,
    leader_request,
    list_offset,
    offset_time_ms,
)
from trio_brod._config import BeginOffset, ConsumerConfig, FetchConnection
from trio_brod._exceptions import BrokerConnectionError, LogTruncated, NoLeader, NotFound
from trio_brod._log import consumer_log
from trio_brod._net import Connection
from trio_brod.consumer._fetch import (
    FETCH_MIN_VERSION,
    FETCH_TOPIC_ID_VERSION,
    fetch_request,
    fetched_partition,
    isolation_code,
    select_runs,
    visible_end,
)
from trio_brod.consumer._serving import Failure, Serving
from trio_brod.consumer._session import PartitionState
from trio_brod.consumer._window import begin_for
from trio_brod.consumer.fetcher import Fetchers, FetchSettings
from trio_brod.consumer.message_set import MessageSet
from trio_brod.observe import _hooks as observe
from trio_brod.protocol import FetchRequest, OffsetForLeaderEpochRequest
from trio_brod.protocol.errors import (
    KafkaError,
    OffsetOutOfRangeError,
    UnknownLeaderEpochError,
    for_code,
)

__all__ = [
    "PartitionConsumer",
    "Subscription",
]

#: Fetch v12 carries ``last_fetched_epoch`` and answers with a diverging epoch (KIP-595).
FETCH_DIVERGING_VERSION = 12


def _delivered(item: MessageSet | Failure) -> MessageSet:
    """What a subscription delivers: the message set, or the worker's error raised."""
    if isinstance(item, Failure):
        raise item.error
    return item


class Subscription:
    """A subscriber's end of one partition consumer.

    Made by :meth:`Client.subscribe <trio_brod.Client.subscribe>`; ``async for`` gives
    :class:`~trio_brod.MessageSet` objects, :meth:`ack` makes room in the prefetch window.
    Iteration ends when the consumer is stopped (``stop_consumer``); an error the consumer
    cannot recover from is raised by it.

    Attributes:
        consumer: The :class:`PartitionConsumer`.
        config: The options of this subscription.
        topic: The topic.
        partition: The partition.
        hooks: The client's event hooks (:class:`~trio_brod.observe.Hooks`).
    """

    def __init__(
        self,
        consumer: PartitionConsumer,
        serving: Serving,
        receive: trio.MemoryReceiveChannel[MessageSet | Failure],
    ) -> None:
        self.consumer = consumer
        self.config = serving.config
        self.topic = consumer.topic
        self.partition = consumer.partition
        self.hooks = serving.hooks
        self._serving = serving
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
        return _delivered(item)

    def receive_nowait(self) -> MessageSet:
        """The next message set if one was delivered already, without waiting.

        For a subscriber that takes everything the prefetch window holds at once (the
        transaction processor puts it all in one transaction).

        Raises:
            trio.WouldBlock: No message set is waiting.
            StopAsyncIteration: The consumer was stopped (or this subscription ended).
            BrodError: As :meth:`receive`.
        """
        try:
            item = self._receive.receive_nowait()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        return _delivered(item)

    def ack(self, offset: int) -> None:
        """Acknowledge every delivered message up to ``offset`` (brod's ``consume_ack``).

        A message set makes room in the prefetch window once acknowledged up to its
        :attr:`~trio_brod.MessageSet.high_offset`. Acknowledging after the subscription
        ended does nothing.

        Raises:
            ValueError: ``offset`` was not delivered yet.
        """
        self._serving.ack(offset)

    @property
    def unacked_count(self) -> int:
        """Messages delivered and not acknowledged yet (whole message sets)."""
        return self._serving.window.unacked_count

    @property
    def unacked_bytes(self) -> int:
        """Bytes delivered and not acknowledged yet, as charged to the prefetch window."""
        return self._serving.window.unacked_bytes

    @property
    def lag(self) -> int | None:
        """Messages from the first not acknowledged to the high watermark, as of the last
        fetch (None before the first answer): how far behind the subscriber is."""
        return self._serving.window.lag(self._serving.high_watermark)


class PartitionConsumer:
    """The consumer of one partition: fetches from the leader, delivers to one subscriber.

    Made by :meth:`Client.start_consumer <trio_brod.Client.start_consumer>`; get it with
    :meth:`Client.get_consumer <trio_brod.Client.get_consumer>`.

    It is built on the client's connection pool and metadata cache, with the topic's nursery
    for its task (started by the first :meth:`subscribe`) and its private connections, and,
    for ``fetch_connection="broker"``, the brokers' fetchers (``fetchers``); without them
    such a worker uses a private connection instead.
    """

    # A consumer is made for every partition of the topic, subscribed or not: slots save
    # each idle one its attribute dictionary.
    __slots__ = (
        "_changed",
        "_closed",
        "_connection",
        "_fetchers",
        "_finished",
        "_handed_on",
        "_metadata",
        "_mode",
        "_nursery",
        "_pool",
        "_serving",
        "_started",
        "_subscription",
        "config",
        "partition",
        "topic",
    )

    def __init__(
        self,
        pool: ConnectionPool,
        metadata: MetadataCache,
        topic: str,
        partition: int,
        config: ConsumerConfig,
        nursery: trio.Nursery,
        fetchers: Fetchers | None = None,
    ) -> None:
        self._pool = pool
        self._metadata = metadata
        self.topic = topic
        self.partition = partition
        self.config = config
        self._nursery = nursery
        self._fetchers = fetchers
        self._serving: Serving | None = None
        self._subscription: Subscription | None = None
        self._changed = trio.Event()
        self._closed = False
        # What the last subscriber handed on (Window.hand_on); None before the first.
        self._handed_on: BeginOffset | None = None
        # The connection fetched over ("partition" and "shared"), and its mode.
        self._connection: Connection | None = None
        self._mode: FetchConnection | None = None
        # Set once run() was started (by the first subscribe): at most one task.
        self._started = False
        # Set once run() has returned (a flag: nobody waits for it).
        self._finished = False

    def __repr__(self) -> str:
        serving = self._serving
        what = "idle" if serving is None else f"subscribed offset={serving.window.offset}"
        return f"<PartitionConsumer {self.topic}[{self.partition}] {what}>"

    # ------------------------------------------------------------ subscriptions

    @asynccontextmanager
    async def subscribe(self, **options: Any) -> AsyncIterator[Subscription]:
        """Subscribe to this partition (brod's ``subscribe``); one subscriber at a time.

        Args:
            **options: :class:`~trio_brod.ConsumerConfig` fields that apply to this
                subscription only (``begin_offset=...``, ``prefetch_count=...``). Without
                ``begin_offset``, the subscription continues where the previous subscriber
                left off: after its last ack, or, if it acknowledged nothing, where it
                started.

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
        if self._finished or self._closed:
            raise NotFound(f"the consumer of {self.topic}[{self.partition}] was stopped")
        busy = self._serving is not None
        if busy:
            raise trio.BusyResourceError(
                f"{self.topic}[{self.partition}] already has a subscriber; a partition "
                "consumer serves one subscriber at a time"
            )
        config = self.config.replace(**options) if options else self.config
        begin = begin_for(config.begin_offset, "begin_offset" in options, self._handed_on)
        send, receive = trio.open_memory_channel[MessageSet | Failure](math.inf)
        serving = Serving(config, send, begin, observe.hooks_of(self._pool))
        subscription = Subscription(self, serving, receive)
        if not self._started:  # a partition nobody subscribes to never costs a task
            # (The topic's nursery is open: it closes only after closing every consumer.)
            self._started = True
            name = f"trio_brod consumer {self.topic}[{self.partition}]"
            self._nursery.start_soon(self.run, name=name)
        self._set_serving(serving)
        self._subscription = subscription
        try:
            yield subscription
        finally:
            serving.end()  # also cancels a fetch in flight for this subscriber
            self._handed_on = serving.window.hand_on()
            if self._serving is serving:
                self._set_serving(None)
            if self._subscription is subscription:
                self._subscription = None

    @property
    def subscription(self) -> Subscription | None:
        """The current subscriber's subscription; None while nobody is subscribed.

        For acknowledging by partition (:meth:`Client.consume_ack
        <trio_brod.Client.consume_ack>`) from code that does not hold the subscription.
        """
        return self._subscription

    @property
    def lag(self) -> int | None:
        """The current subscription's :attr:`~Subscription.lag` (None without one)."""
        subscription = self._subscription
        return None if subscription is None else subscription.lag

    def _set_serving(self, serving: Serving | None) -> None:
        self._serving = serving
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------ the worker

    async def run(self) -> None:
        """The worker: fetch and deliver while subscribed, idle in between.

        The first :meth:`subscribe` starts it in the topic's nursery; nothing else should.
        Returns once :meth:`close` was called; cancelling it stops it as well. Either way
        the subscriber's iteration ends.
        """
        self._started = True
        try:
            while not self._closed:
                serving = self._serving
                if serving is None or not serving.active:
                    await self._changed.wait()
                    continue
                await self._serve(serving)
                # The serving failed: wait for that subscriber to leave before serving another.
                while self._serving is serving and not self._closed:
                    await self._changed.wait()
        finally:
            self._close_connection()
            self._finished = True
            if self._serving is not None:
                self._serving.end()  # the subscriber's iteration ends

    def close(self) -> None:
        """Stop the worker: the subscription ends, :meth:`run` returns (or never starts)."""
        self._closed = True
        if self._serving is not None:
            self._serving.end()
        self._changed.set()

    async def _serve(self, serving: Serving) -> None:
        with trio.CancelScope() as scope:
            serving.scope = scope
            try:
                await self._consume(serving)
            except Exception as exc:
                # Whatever the worker cannot recover from goes to the subscriber: it must
                # neither hang there nor take the client down with it.
                serving.fail(exc)
        serving.scope = None
        if scope.cancelled_caught:
            # A fetch may still be in flight on the connection, and the broker answers a
            # connection's requests in order: the next subscriber gets a fresh one.
            self._close_connection()

    async def _consume(self, serving: Serving) -> None:
        config = serving.config
        window = serving.window
        backoff = serving.backoff
        refresh = False
        while True:
            try:
                if window.offset is None:
                    window.start_at(await self._resolve_begin(serving))
                    serving.last_epoch = -1
                if config.connection_mode == "broker" and self._fetchers is not None:
                    use_refresh, refresh = refresh, False
                    await self._fetch_by_broker(serving, self._fetchers, use_refresh)
                    continue  # to another fetcher (a read replica, or the leader again)
                connection = await self._leader_connection(refresh, config)
                refresh = False
                await self._fetch_loop(serving, connection)
            except OffsetOutOfRangeError:
                policy = config.offset_reset_policy
                if policy == "reset_by_subscriber":
                    raise
                delay = backoff.next_delay()
                if backoff.failures > 1:  # reset again at once: the log is changing under us
                    await trio.sleep(delay)
                timestamp = EARLIEST if policy == "reset_to_earliest" else LATEST
                was = window.offset
                window.reset_to(await self._list_offset(timestamp, config))
                serving.last_epoch = -1
                consumer_log.warning(
                    "%s[%d]: offset %s is out of range; reset to %d (%s)",
                    self.topic,
                    self.partition,
                    was,
                    window.offset,
                    policy,
                )
            except LogTruncated as exc:
                if config.offset_reset_policy == "reset_by_subscriber":
                    raise
                # As the Java consumer: go on where the new leader's log diverges from what
                # was fetched; what follows there was never seen.
                consumer_log.warning("%s; going on from there", exc)
                window.reset_to(exc.offset)
                serving.last_epoch = exc.epoch
            except (BrokerConnectionError, NoLeader, KafkaError) as exc:
                if not exc.retriable:
                    raise
                # Leader moved, broker gone, topic metadata stale: ask again where the leader
                # is, then go on from the exact same offset. Other retriable errors (a broker
                # time-out) are just tried again.
                if (
                    not isinstance(exc, KafkaError)
                    or exc.invalid_metadata
                    or isinstance(exc, UnknownLeaderEpochError)
                ):
                    self._close_connection()
                    refresh = True
                delay = backoff.next_delay()
                serving.retrying = True
                hooks = observe.hooks_of(self._pool)
                if hooks.hooks:
                    observe.retried(hooks, "receive", self.topic, self.partition, exc)
                self._pool.repeats.warning(
                    consumer_log,
                    ("fetch", self.topic, self.partition),
                    "%s[%d]: %s; fetching again in %.2f s",
                    self.topic,
                    self.partition,
                    exc,
                    delay,
                )
                await trio.sleep(delay)

    async def _resolve_begin(self, serving: Serving) -> int:
        """Where serving the subscriber starts (ListOffsets for anything but an offset)."""
        begin = serving.window.begin
        if isinstance(begin, int):
            return begin
        return await self._list_offset(offset_time_ms(begin), serving.config)

    async def _list_offset(self, timestamp: int, config: ConsumerConfig) -> int:
        isolation = isolation_code(config.isolation_level)
        return await list_offset(self._metadata, self.topic, self.partition, timestamp, isolation)

    async def _leader_connection(self, refresh: bool, config: ConsumerConfig) -> Connection:
        """A connection to the partition's leader, in the subscription's mode."""
        mode = config.connection_mode
        if mode == "broker":  # without fetchers (a worker made on its own)
            mode = "partition"
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
            connection = await self._pool.open_private(leader.host, leader.port, self._nursery)
        self._connection = connection
        self._mode = mode
        return connection

    def _close_connection(self) -> None:
        """Forget the connection; close it if it is the worker's own."""
        if self._connection is not None and self._mode == "partition":
            self._connection.close()
        self._connection = None

    async def _fetch_loop(self, serving: Serving, connection: Connection) -> None:
        """Fetch and deliver, for as long as the connection serves."""
        config = serving.config
        window = serving.window
        version = connection.best_version(FetchRequest, min_version=FETCH_MIN_VERSION)
        topic_id = None
        if version >= FETCH_TOPIC_ID_VERSION:
            topic_id = await self._metadata.topic_id(self.topic)
            if topic_id is None:
                version = FETCH_TOPIC_ID_VERSION - 1
        isolation = isolation_code(config.isolation_level)
        wait_time = config.effective_max_wait_time
        timeout = wait_time + self._metadata.config.request_timeout
        sleep_timeout = config.effective_sleep_timeout
        topic, partition = self.topic, self.partition
        while True:
            # Deliver what the window allows, and wait for acks while fetched data is left.
            # Once all of it is delivered, fetch the next response at once, even with a full
            # window: the subscriber has work, and the fetch overlaps with it.
            serving.deliver(topic, partition)
            while window.undelivered:
                await serving.wait()
                serving.deliver(topic, partition)
            offset = window.offset
            assert offset is not None
            request = fetch_request(
                topic,
                topic_id,
                partition,
                offset,
                serving.fetch_size.current,
                config,
                isolation,
            )
            polled_at = trio.current_time()
            # The response is not given a name here: this loop sleeps (for acks, for the next
            # long poll), and an idle worker must not keep its last answer alive meanwhile.
            nothing_new = self._take_answer(
                serving,
                offset,
                isolation,
                await connection.request(request, version, timeout=timeout),
            )
            if nothing_new:
                # Nothing new, after a fetch that could wait. Merged with others, it may
                # have been answered early because another partition got data: it counts
                # as a long poll all the same, so poll again no sooner than a lone long
                # poll would have ended. Otherwise every message to one partition would
                # send every idle partition of the request round again (and on a busy
                # topic, keep them all busy).
                await trio.sleep_until(polled_at + wait_time)
                if sleep_timeout:
                    await trio.sleep(sleep_timeout)  # brod: sleep after an empty answer

    async def _fetch_by_broker(self, serving: Serving, fetchers: Fetchers, refresh: bool) -> None:
        """Have the leader's fetcher (or the read replica's) fetch for the subscriber, and
        deliver as acks make room.

        Raises the error the fetcher dropped the partition for (a moved leader, a lost
        connection, an offset out of range), which :meth:`_consume` handles as for a fetch
        of its own, and then hands the partition to a fetcher again. Returns when the
        partition is to move to another fetcher at once: the leader named a preferred read
        replica (KIP-392), or the read replica failed and the leader takes over again.
        """
        config = serving.config
        metadata = self._metadata
        leader = await metadata.leader(self.topic, self.partition, refresh=refresh)
        topic_id = await metadata.topic_id(self.topic)
        found = (await metadata.topic(self.topic, auto_create=False)).partitions.get(self.partition)
        leader_epoch = found.leader_epoch if found is not None else -1
        if refresh and serving.last_epoch >= 0:
            await self._validate_position(serving, leader_epoch)
        broker = leader
        if serving.read_replica >= 0:
            replica = metadata.brokers.get(serving.read_replica)
            if replica is None and not refresh:
                # A broker our metadata does not know yet: look again, not in a busy loop.
                await trio.sleep(serving.backoff.next_delay())
                await metadata.fetch([self.topic], auto_create=False)
                replica = metadata.brokers.get(serving.read_replica)
            if refresh or replica is None or trio.current_time() >= serving.read_replica_until:
                serving.read_replica = -1  # back to the leader, which may name another
            else:
                broker = replica
        settings = FetchSettings(
            isolation_code(config.isolation_level),
            config.min_bytes,
            config.effective_max_wait_time,
            config.effective_sleep_timeout,
            metadata.config.client_rack,
        )
        fetcher = fetchers.fetcher(broker.host, broker.port, settings)
        target = _BrokerTarget(self, serving, topic_id, leader_epoch, broker.node_id)
        fetcher.add(target)
        topic, partition = self.topic, self.partition
        try:
            while True:
                serving.deliver(topic, partition)
                error = target.error
                if error is not None:
                    break
                if target.waiting and serving.has_room():
                    fetcher.wake()  # the fetcher left it out for want of room: not any more
                await serving.wait()
        finally:
            fetcher.remove(target)
        if isinstance(error, _ReadReplica):
            return
        if broker.node_id != leader.node_id:
            # A follower failed us (it is behind, or no longer a replica): the leader again.
            serving.read_replica = -1
            if isinstance(error, OffsetOutOfRangeError):
                return
        raise error

    async def _validate_position(self, serving: Serving, leader_epoch: int) -> None:
        """After a leader change, ask the new leader where the epoch of the last batch
        fetched ends (OffsetForLeaderEpoch, KIP-320), for brokers whose Fetch cannot say it
        itself (before v12, which takes ``last_fetched_epoch`` and answers with a diverging
        epoch).

        Raises:
            LogTruncated: The new leader's log ends that epoch below the position.
        """
        connection = await self._metadata.leader_connection(self.topic, self.partition)
        if connection.best_version(FetchRequest) >= FETCH_DIVERGING_VERSION:
            return
        api = OffsetForLeaderEpochRequest
        request = api(
            topics=[
                api.OffsetForLeaderTopic(
                    topic=self.topic,
                    partitions=[
                        api.OffsetForLeaderPartition(
                            partition=self.partition,
                            current_leader_epoch=leader_epoch,
                            leader_epoch=serving.last_epoch,
                        )
                    ],
                )
            ]
        )
        response = await leader_request(
            self._metadata, self.topic, self.partition, request, min_version=2
        )
        found = response.topics[0].partitions[0]
        if found.error_code:
            raise for_code(found.error_code)(topic=self.topic, partition=self.partition)
        offset = serving.window.offset
        if offset is not None and 0 <= found.end_offset < offset:
            raise LogTruncated(self.topic, self.partition, found.end_offset, found.leader_epoch)

    def take_fetched(self, target: _BrokerTarget, data: Any, offset: int) -> None:
        """A broker's fetcher brought ``data`` for the target's subscriber (fetched from
        ``offset``): add it to the window, deliver what fits.

        Raises:
            KafkaError: The broker answered with an error for the partition.
            LogTruncated: The log diverged below ``offset`` (KIP-320).
        """
        serving = target.serving
        if not serving.active or serving.window.offset != offset:
            return  # an answer for a position given up meanwhile
        if data.error_code:
            raise for_code(data.error_code)(
                topic=self.topic, partition=self.partition, offset=offset
            )
        diverging = data.diverging_epoch
        if diverging.epoch >= 0 and 0 <= diverging.end_offset < offset:
            raise LogTruncated(self.topic, self.partition, diverging.end_offset, diverging.epoch)
        self._take_data(serving, offset, target.isolation, data)
        serving.deliver(self.topic, self.partition)
        replica = data.preferred_read_replica
        if replica >= 0 and replica != target.node_id:
            # KIP-392: the leader prefers that we fetch from a replica in our rack, for as
            # long as our metadata stays fresh (as the Java consumer does).
            serving.read_replica = replica
            serving.read_replica_until = (
                trio.current_time() + self._metadata.config.metadata_max_age
            )
            raise _ReadReplica(replica)

    def _take_answer(self, serving: Serving, offset: int, isolation: int, response: Any) -> bool:
        """Add a Fetch response's records (from ``offset``) to what waits for delivery.

        Returns True when the answer brought nothing new.

        Raises:
            KafkaError: The broker answered with an error for the partition.
        """
        data = fetched_partition(response, self.topic, self.partition, offset)
        return self._take_data(serving, offset, isolation, data)

    def _take_data(self, serving: Serving, offset: int, isolation: int, data: Any) -> bool:
        """Add one partition's fetched data (from ``offset``, without an error) to what
        waits for delivery. Returns True when it brought nothing new."""
        config = serving.config
        serving.backoff.reset()
        if serving.retrying:
            serving.retrying = False
            self._pool.repeats.recovered(
                consumer_log,
                ("fetch", self.topic, self.partition),
                "%s[%d]: fetching again",
                self.topic,
                self.partition,
            )
        serving.high_watermark = visible_end(data, isolation)
        selected = select_runs(self.topic, self.partition, offset, data, config.isolation_level)
        if selected.needed_bytes is not None:
            # Only the start of a batch came: the next fetch asks for enough to get it whole.
            serving.fetch_size.grow(selected.needed_bytes)
            return False
        serving.fetch_size.follow(selected.batches)
        next_offset = selected.next_offset
        for batch in reversed(selected.batches):
            if batch.last_offset < next_offset:
                serving.last_epoch = batch.partition_leader_epoch
                break
        serving.window.add(selected.runs, selected.next_offset)
        return not selected.runs and selected.next_offset == offset


class _ReadReplica(Exception):
    """The leader named a preferred read replica: the partition moves to its fetcher."""

    def __init__(self, node_id: int) -> None:
        super().__init__(f"fetch from broker {node_id}, the preferred read replica")
        self.node_id = node_id


class _BrokerTarget:
    """A subscribed partition in its leader's fetcher (a
    :class:`~trio_brod.consumer.fetcher.FetchTarget`), for one stay with that fetcher."""

    __slots__ = (
        "consumer",
        "error",
        "isolation",
        "leader_epoch",
        "node_id",
        "serving",
        "topic_id",
        "waiting",
    )

    def __init__(
        self,
        consumer: PartitionConsumer,
        serving: Serving,
        topic_id: Any,
        leader_epoch: int,
        node_id: int,
    ) -> None:
        self.consumer = consumer
        self.serving = serving
        self.topic_id = topic_id
        self.leader_epoch = leader_epoch
        #: The broker fetched from.
        self.node_id = node_id
        self.isolation = isolation_code(serving.config.isolation_level)
        #: Why the fetcher dropped the partition; None while it fetches for it.
        self.error: BaseException | None = None
        #: Whether the fetcher last found no room (it must be woken once there is).
        self.waiting = False

    @property
    def topic(self) -> str:
        return self.consumer.topic

    @property
    def partition(self) -> int:
        return self.consumer.partition

    def state(self) -> PartitionState | None:
        serving = self.serving
        offset = serving.window.offset
        if self.error is not None or not serving.active or offset is None:
            return None
        if not serving.has_room():
            self.waiting = True
            return None
        self.waiting = False
        return PartitionState(
            offset, serving.fetch_size.current, self.leader_epoch, serving.last_epoch
        )

    def take(self, data: Any, offset: int) -> None:
        self.consumer.take_fetched(self, data, offset)

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.serving.poke()
