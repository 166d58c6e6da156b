"""The client: one nursery that owns every connection and worker, and the metadata cache.

brod starts a client as a supervised process; trio-brod opens one as an async context manager::

    async with trio_brod.open_client(["localhost:9092"], client_id="app") as client:
        metadata = await client.get_metadata(["orders"])
        connection = await client.get_leader_connection("orders", 0)

The block *is* the client's lifetime. Inside it runs the client nursery: one task per broker
connection (each with its reader and writer children), and, once started, the producer and
consumer nurseries. Leaving the block stops all of them; no task outlives it.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, TypeVar

import trio

from trio_brod._client_calls import close_after, fetch_partition, resolve_offset
from trio_brod._cluster import ConnectionPool, CoordinatorType, MetadataCache
from trio_brod._config import (
    ClientConfig,
    ConsumerConfig,
    IsolationLevel,
    ProducerConfig,
    Timestamp,
)
from trio_brod._config_transaction import TransactionConfig
from trio_brod._exceptions import ClientClosed, ConfigError, NotFound, ProducerClosed
from trio_brod._metadata import BrokerMetadata, ClusterMetadata
from trio_brod._net import Connection
from trio_brod._util import check_topic, parse_bootstrap, topic_list, unwrap_single_exception
from trio_brod.consumer.fetcher import Fetchers
from trio_brod.consumer.fold import FoldFun, FoldResult, fold
from trio_brod.consumer.message_set import MessageSet
from trio_brod.consumer.topic import TopicConsumer
from trio_brod.consumer.worker import PartitionConsumer, Subscription
from trio_brod.observe import Hook
from trio_brod.producer import (
    DeliveryReceipt,
    Message,
    PartitionProducer,
    ProducerIdentity,
    TopicProducer,
)
from trio_brod.producer.message import checked_bytes, checked_headers, checked_timestamp
from trio_brod.producer.partitioners import Partitioner, PartitionerName
from trio_brod.producer.receipt import raise_callback_errors
from trio_brod.transaction import TransactionalProducer, open_transactional_producer

__all__ = ["Client", "open_client", "parse_bootstrap"]

A = TypeVar("A")


class Client:
    """A Kafka cluster as one application sees it: connections, metadata, and the workers.

    Create it with :func:`open_client`; it is only usable inside that ``async with`` block.
    Every method is safe to call from many tasks at once.

    The client composes two parts that the workers (producers, consumers, group members,
    transactions) depend on directly: :attr:`pool`, the connections to brokers, and
    :attr:`metadata`, the cache of topics, leaders and coordinators. It adds the registry
    of running workers, the user-facing calls, and the order in which everything stops.
    """

    def __init__(
        self,
        bootstrap_servers: Sequence[tuple[str, int]],
        config: ClientConfig,
        nursery: trio.Nursery,
        hooks: Iterable[Hook] = (),
    ) -> None:
        self.config = config
        self.bootstrap_servers = list(bootstrap_servers)
        self._nursery = nursery
        #: The client's connections (:class:`~trio_brod._cluster.ConnectionPool`): what
        #: workers and admin calls send through.
        self.pool = ConnectionPool(self.bootstrap_servers, config, nursery, hooks)
        #: The client's event hooks, a :class:`~trio_brod.observe.Hooks`: ``.add(hook)``.
        self.hooks = self.pool.hooks
        #: The client's metadata cache (:class:`~trio_brod._cluster.MetadataCache`).
        self.metadata = MetadataCache(self.pool, config)
        self._topic_producers: dict[str, TopicProducer] = {}
        self._producers_lock = trio.Lock()
        self._producers_scope: trio.CancelScope | None = None
        self._producers_nursery_obj: trio.Nursery | None = None
        self._producers_stopped = trio.Event()
        self._identity: ProducerIdentity | None = None
        # Set when the client starts closing: no new producers from then on, although the
        # running ones may still need connections while they flush.
        self._producers_closing = False
        self._topic_consumers: dict[str, TopicConsumer] = {}
        self._consumers_lock = trio.Lock()
        self._consumers_nursery_obj: trio.Nursery | None = None
        self._fetchers: Fetchers | None = None  # one fetcher per broker, for every topic
        self._consumers_stopped = trio.Event()

    def __repr__(self) -> str:
        state = "closed" if self.pool.closed else f"{len(self.pool)} connections"
        return f"<trio_brod.Client {self.config.client_id!r} {state}>"

    # ------------------------------------------------------------ connections

    async def get_connection(self, host: str, port: int) -> Connection:
        """The connection to a broker, opened on first use and shared afterwards.

        Raises:
            ConnectionFailed: The broker cannot be reached. Within ``reconnect_cool_down``
                seconds of a failure, the same error comes back at once without a new
                attempt, so a dead broker does not slow every caller down.
            ClientClosed: The client is closed.
        """
        return await self.pool.get(host, port)

    # ------------------------------------------------------------ metadata

    async def get_metadata(self, topics: Sequence[str] | None = None) -> ClusterMetadata:
        """Ask the cluster for its brokers and for topics' partitions and leaders.

        Args:
            topics: The topics to describe; None for all of them.

        Returns a fresh answer (never from cache) and refreshes the cache with it. Topics the
        cluster does not know are in the result with their ``error_code`` set (or are
        created, if ``allow_topic_auto_creation`` and the broker allow it).
        """
        auto_create = self.config.allow_topic_auto_creation
        return await self.metadata.fetch(topic_list(topics), auto_create=auto_create)

    async def get_metadata_safe(self, topics: Sequence[str] | None = None) -> ClusterMetadata:
        """Like :meth:`get_metadata`, but never creates a topic (brod's ``get_metadata_safe``).

        Whatever ``allow_topic_auto_creation`` says, a topic the cluster does not know is in
        the result with its ``error_code`` set: for tools and checks that look at a name
        someone typed, where a typo must not leave a new topic behind.
        """
        return await self.metadata.fetch(topic_list(topics), auto_create=False)

    async def get_partitions_count(self, topic: str) -> int:
        """How many partitions a topic has (from cache when fresh).

        With ``allow_topic_auto_creation`` (the default), asking about a topic that does not
        exist creates it if the broker allows that, as brod does.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist.
        """
        return await self.metadata.partitions_count(
            topic, auto_create=self.config.allow_topic_auto_creation
        )

    async def get_partitions_count_safe(self, topic: str) -> int:
        """Like :meth:`get_partitions_count`, but never creates the topic."""
        return await self.metadata.partitions_count(topic, auto_create=False)

    async def get_leader(self, topic: str, partition: int) -> BrokerMetadata:
        """The broker leading a partition, refreshing metadata while there is none.

        Raises:
            NoLeader: No leader appeared within ``get_metadata_timeout``.
            UnknownTopicOrPartitionError: No such topic, or no such partition in it.
        """
        return await self.metadata.leader(topic, partition)

    async def get_leader_connection(
        self, topic: str, partition: int, *, refresh: bool = False
    ) -> Connection:
        """The connection to a partition's leader.

        Args:
            topic: The topic.
            partition: The partition.
            refresh: Re-read metadata first; workers pass True after the broker said
                it is not the leader any more.

        Raises:
            NoLeader, UnknownTopicOrPartitionError: As for :meth:`get_leader`.
            ConnectionFailed: The leader is unreachable.
        """
        return await self.metadata.leader_connection(topic, partition, refresh=refresh)

    # ------------------------------------------------------------ coordinators

    async def get_group_coordinator(self, group_id: str) -> BrokerMetadata:
        """The broker coordinating a consumer group (FindCoordinator).

        Retries while the coordinator is being elected or loaded (right after a cluster
        starts this takes a few seconds), for up to ``request_timeout``.
        """
        return await self.metadata.find_coordinator(group_id, CoordinatorType.GROUP)

    async def get_transactional_coordinator(self, transactional_id: str) -> BrokerMetadata:
        """The broker coordinating a transactional id (FindCoordinator, key type 1)."""
        return await self.metadata.find_coordinator(transactional_id, CoordinatorType.TRANSACTION)

    # ------------------------------------------------------------ producers

    def transactional_producer(
        self, transactional_id: str, config: TransactionConfig | None = None
    ) -> AbstractAsyncContextManager[TransactionalProducer]:
        """A transactional producer (brod's ``brod_transaction``), for an ``async with``
        block: ``async with client.transactional_producer("billing-tx") as tp:`` then
        ``async with tp.transaction() as txn:`` blocks; see
        :func:`~trio_brod.transaction.open_transactional_producer` and :doc:`/transactions`.
        """
        return open_transactional_producer(self.pool, self.metadata, transactional_id, config)

    async def _producers_nursery(self) -> trio.Nursery:
        if self._producers_scope is None:
            self._producers_scope = await self._nursery.start(self._run_producers)
        assert self._producers_nursery_obj is not None
        return self._producers_nursery_obj

    async def _run_producers(self, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        async with trio.open_nursery() as nursery:
            self._producers_nursery_obj = nursery
            task_status.started(nursery.cancel_scope)
            await self._producers_stopped.wait()

    async def start_producer(self, topic: str, config: ProducerConfig | None = None) -> None:
        """Start the producers of a topic: a nursery with one worker per partition.

        A no-op if they are running already. Without a ``config`` the client's
        ``default_producer_config`` is used (brod's ``start_producer``).

        Raises:
            TypeError: ``topic`` is not a str.
            UnknownTopicOrPartitionError: The topic does not exist (and was not created).
            ClientClosed: The client is closing or closed.
        """
        check_topic(topic)
        self._raise_if_producers_closed()
        if topic in self._topic_producers:
            await trio.lowlevel.checkpoint()
            return
        async with self._producers_lock:
            if topic in self._topic_producers:
                return
            self._raise_if_producers_closed()
            if config is None:
                config = self.config.default_producer_config or ProducerConfig()
            identity = None
            if config.idempotent:
                if self._identity is None:
                    self._identity = ProducerIdentity(self.pool)
                identity = self._identity
            nursery = await self._producers_nursery()
            producer = TopicProducer(self.metadata, topic, config, identity)
            await nursery.start(producer.run, name=f"trio_brod producers {topic}")
            self._topic_producers[topic] = producer

    async def stop_producer(self, topic: str) -> None:
        """Stop a topic's producers after they deliver what they hold (brod's stop_producer)."""
        producer = self._topic_producers.pop(topic, None)
        if producer is None:
            await trio.lowlevel.checkpoint()
            return
        producer.close()
        with trio.move_on_after(producer.config.flush_timeout):
            await producer.finished.wait()
        if not producer.finished.is_set():
            try:
                producer.abort(ProducerClosed(f"producer of {topic} stopped before delivery"))
            finally:
                await producer.finished.wait()

    def _raise_if_producers_closed(self) -> None:
        if self._producers_closing:
            raise ClientClosed(f"client {self.config.client_id!r} is closed")

    async def _topic_producer(self, topic: str) -> TopicProducer:
        producer = self._topic_producers.get(topic)
        if producer is not None:
            return producer
        check_topic(topic)  # not a str: say so, not "no producer" or an encoding error
        self._raise_if_producers_closed()
        if not self.config.auto_start_producers:
            raise NotFound(
                f"no producer for topic {topic!r}: call start_producer() first, "
                "or open the client with auto_start_producers=True"
            )
        await self.start_producer(topic)
        return self._topic_producers[topic]

    async def get_producer(self, topic: str, partition: int) -> PartitionProducer:
        """The producer of one partition (brod's ``get_producer``).

        Raises:
            NotFound: No producer was started for the topic (and ``auto_start_producers`` is
                off), or the topic's producers were stopped before this partition got one.
            ValueError: The topic has no such partition.
        """
        producer = await self._topic_producer(topic)
        return await producer.worker(partition)

    def find_producer(self, topic: str, partition: int) -> PartitionProducer:
        """The running producer of a partition, never starting one (brod's ``find_producer``):
        unlike :meth:`get_producer` with ``auto_start_producers``, for code that must not
        start workers (or create topics) as a side effect, such as a health check.

        Raises:
            NotFound: No producers run for the topic, or none for that partition (the
                message says which).
        """
        check_topic(topic)
        producer = self._topic_producers.get(topic)
        if producer is None:
            raise NotFound(f"no producer running for topic {topic!r}")
        worker = producer.partitions.get(partition)
        if worker is None:
            raise NotFound(f"no producer running for {topic}[{partition}] (the topic's are)")
        return worker

    async def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        partitioner: PartitionerName | Partitioner | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
        timestamp: int | None = None,
    ) -> DeliveryReceipt:
        """Hand a message to its partition's producer; return a receipt once it is buffered.

        Args:
            topic: The topic.
            value: The message value (bytes, or None for a tombstone).
            key: The message key; with the default partitioner, messages with the same key
                go to the same partition, in order.
            partition: Send to this partition instead of asking the partitioner.
            partitioner: Override the producer's partitioner for this call.
            headers: ``(name, value)`` tuples, the name a str, the value bytes or None.
            timestamp: The CreateTime in milliseconds since the epoch; None for now.

        Keys, values and header values may also be a ``bytearray`` or ``memoryview``: they
        are copied before this returns, so what is sent is what they held at the call, even
        if the caller reuses the buffer at once (as the Java producer serialises at
        ``send()``).

        ``await receipt`` (or ``receipt.add_done_callback``) gives the offset once the broker
        acknowledges the message. Waits (cancellably) while the partition's buffer is full;
        otherwise it returns without letting other tasks run, so that a loop of calls fills
        the buffer quickly and the worker sends it in big batches.

        Raises:
            NotFound: No producer runs for the topic and ``auto_start_producers`` is off.
            MessageTooLarge: The message cannot fit in the producer's ``max_request_size``.
            ProducerClosed: The producer is closed (the client is closing, or the producer
                was stopped).
            TypeError: key, value, headers, timestamp or partition have the wrong type (the
                message names which); checked before the partitioner is asked.
            ValueError: ``timestamp`` is negative or too large, or ``partition`` is not a
                partition of the topic.
            ConfigError: ``partitioner`` is not a partitioner, or it returned a partition
                the topic does not have.
        """
        # Checked (and copied, if mutable) before anything else: the partitioner sees what
        # is sent, and bad input is named here, not inside the partitioner.
        if key is not None and type(key) is not bytes:
            key = checked_bytes(key, "key")
        if value is not None and type(value) is not bytes:
            value = checked_bytes(value, "value")
        if headers:
            headers = checked_headers(headers)
        if timestamp is not None:
            timestamp = checked_timestamp(timestamp)
        # The common case runs without awaiting anything until the message is handed over.
        producer = self._topic_producers.get(topic)
        if producer is None:
            producer = await self._topic_producer(topic)
        if partition is None:
            partition = producer.choose(key, value, partitioner)
        worker = producer.partitions.get(partition) if type(partition) is int else None
        if worker is None:
            worker = await producer.worker(partition)
        return await worker.produce(value, key, headers=headers, timestamp=timestamp)

    async def produce_sync(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        partitioner: PartitionerName | Partitioner | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
        timestamp: int | None = None,
    ) -> int:
        """Produce a message and wait for its acknowledgement; return its offset."""
        receipt = await self.produce(
            topic,
            value,
            key,
            partition=partition,
            partitioner=partitioner,
            headers=headers,
            timestamp=timestamp,
        )
        return await receipt

    async def produce_no_ack(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        partitioner: PartitionerName | Partitioner | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
        timestamp: int | None = None,
    ) -> None:
        """Produce a message without caring about its outcome (brod's ``produce_no_ack``)."""
        await self.produce(
            topic,
            value,
            key,
            partition=partition,
            partitioner=partitioner,
            headers=headers,
            timestamp=timestamp,
        )

    async def produce_batch(
        self,
        topic: str,
        messages: Iterable[Message | tuple[bytes | None, bytes | None]],
        *,
        key: bytes | None = None,
        partition: int | None = None,
        partitioner: PartitionerName | Partitioner | None = None,
    ) -> DeliveryReceipt:
        """Produce many messages to one partition as one call (brod's batch produce).

        Args:
            topic: The topic.
            messages: :class:`~trio_brod.Message` objects or ``(key, value)`` tuples.
            key: The key that chooses the partition (like brod's ``Key`` argument with a
                batch value); the messages keep their own keys.
            partition: Send to this partition instead.
            partitioner: Override the producer's partitioner for this call.

        The messages stay together and in order, in one record batch; the receipt gives the
        first one's offset. Raises as :meth:`produce` does, and ValueError for no messages.
        """
        if key is not None and type(key) is not bytes:
            key = checked_bytes(key, "key")
        producer = self._topic_producers.get(topic)
        if producer is None:
            producer = await self._topic_producer(topic)
        if partition is None:
            partition = producer.choose(key, None, partitioner)
        worker = producer.partitions.get(partition) if type(partition) is int else None
        if worker is None:
            worker = await producer.worker(partition)
        return await worker.produce_batch(messages)

    # ------------------------------------------------------------ consumers

    async def _consumers_nursery(self) -> trio.Nursery:
        if self._consumers_nursery_obj is None:
            await self._nursery.start(self._run_consumers)
        assert self._consumers_nursery_obj is not None
        return self._consumers_nursery_obj

    async def _run_consumers(self, *, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            self._consumers_nursery_obj = nursery
            self._fetchers = Fetchers(self.pool, self.config.request_timeout, nursery)
            task_status.started()
            await self._consumers_stopped.wait()
            nursery.cancel_scope.cancel()

    async def start_consumer(self, topic: str, config: ConsumerConfig | None = None) -> None:
        """Start the consumers of a topic: a nursery with one (idle) worker per partition.

        A no-op if they are running already (brod's ``start_consumer``). Workers fetch only
        while someone is subscribed to their partition; a worker's task starts with its
        partition's first subscriber, so partitions nobody subscribes to cost no task.
        """
        self._raise_if_closed()
        if topic in self._topic_consumers:
            await trio.lowlevel.checkpoint()
            return
        async with self._consumers_lock:
            if topic in self._topic_consumers:
                return
            nursery = await self._consumers_nursery()
            config = config or ConsumerConfig()
            consumer = TopicConsumer(self.pool, self.metadata, topic, config, self._fetchers)
            await nursery.start(consumer.run, name=f"trio_brod consumers {topic}")
            self._topic_consumers[topic] = consumer

    async def stop_consumer(self, topic: str) -> None:
        """Stop a topic's consumers; their subscriptions end (brod's ``stop_consumer``)."""
        consumer = self._topic_consumers.pop(topic, None)
        if consumer is None:
            await trio.lowlevel.checkpoint()
            return
        consumer.close()
        await consumer.finished.wait()

    async def get_consumer(self, topic: str, partition: int) -> PartitionConsumer:
        """The consumer of one partition (brod's ``get_consumer``).

        Raises:
            NotFound: No consumer was started for the topic.
        """
        self._raise_if_closed()
        consumer = self._topic_consumers.get(topic)
        if consumer is None:
            raise NotFound(f"no consumer for topic {topic!r}; call start_consumer() first")
        return await consumer.consumer_for(partition)

    def find_consumer(self, topic: str, partition: int) -> PartitionConsumer:
        """The running consumer of a partition, never starting one (brod's
        ``find_consumer``), as :meth:`get_consumer` may for a partition added since.

        Raises:
            NotFound: No consumers run for the topic, or none for that partition (the
                message says which).
        """
        check_topic(topic)
        consumer = self._topic_consumers.get(topic)
        if consumer is None:
            raise NotFound(f"no consumer running for topic {topic!r}")
        worker = consumer.partitions.get(partition)
        if worker is None:
            raise NotFound(f"no consumer running for {topic}[{partition}] (the topic's are)")
        return worker

    def consume_ack(self, topic: str, partition: int, offset: int) -> None:
        """Acknowledge ``offset`` for a partition's current subscriber (brod's
        ``consume_ack/4``), for code that holds the client but not the subscription.

        Raises:
            NotFound: No consumer runs for the partition, or it has no subscriber now; the
                message says which.
            ValueError: ``offset`` was not delivered yet.
        """
        subscription = self.find_consumer(topic, partition).subscription
        if subscription is None:
            raise NotFound(f"{topic}[{partition}] has no subscriber to acknowledge for")
        subscription.ack(offset)

    @asynccontextmanager
    async def subscribe(
        self, topic: str, partition: int, **options: Any
    ) -> AsyncIterator[Subscription]:
        """Subscribe to one partition (brod's ``subscribe``): ``async with`` it, then
        ``async for message_set in subscription`` and ``subscription.ack(offset)``.

        Args:
            topic: The topic.
            partition: The partition.
            **options: :class:`~trio_brod.ConsumerConfig` fields for this subscription
                (``begin_offset="earliest"``, ``prefetch_count=100``...). Without
                ``begin_offset``, the subscription continues after the previous subscriber's
                last acknowledged offset, or where that subscriber started if it
                acknowledged nothing (the first subscriber uses the consumer's config); see
                :meth:`trio_brod.lowlevel.PartitionConsumer.subscribe`.

        The topic's consumers are started with the default config if they are not running.
        Leaving the block unsubscribes at once: a fetch in flight is abandoned (with its
        connection, unless ``share_leader_conn``) and the worker idles until the next
        subscriber.

        Raises:
            trio.BusyResourceError: The partition already has a subscriber.
            ConfigError: An unknown option or a bad value.
            ValueError: The topic has no such partition.
        """
        if topic not in self._topic_consumers:
            await self.start_consumer(topic)
        consumer = await self.get_consumer(topic, partition)
        async with consumer.subscribe(**options) as subscription:
            yield subscription

    async def resolve_offset(
        self,
        topic: str,
        partition: int,
        time: Literal["earliest", "latest"] | int | Timestamp | datetime.datetime = "latest",
        *,
        isolation_level: IsolationLevel = "read_uncommitted",
    ) -> int:
        """An offset of a partition (brod's ``resolve_offset``, Kafka's ListOffsets).

        Args:
            topic: The topic.
            partition: The partition.
            time: ``"earliest"`` (the first offset still in the log), ``"latest"`` (the
                offset the next message will get), or a :class:`~trio_brod.Timestamp`,
                aware ``datetime`` or plain int of milliseconds since the epoch: the first
                offset whose message is at or after that time (``"latest"`` if none is). A
                ``datetime`` is rounded up to the next whole millisecond
                (:meth:`Timestamp.from_datetime <trio_brod.Timestamp.from_datetime>`).
                The ints -1 and -2 mean ``"latest"`` and ``"earliest"``, as in brod.
            isolation_level: With ``"read_committed"``, ``"latest"`` is the last stable
                offset (before the first open transaction).

        Leader moves and a leader's not yet settled offsets (OFFSET_NOT_AVAILABLE just
        after an election) are retried for up to ``get_metadata_timeout``.

        Raises:
            TypeError, ValueError: ``time`` is none of those.
            KafkaError: The broker refused (e.g. the topic or partition does not exist).
        """
        return await resolve_offset(self.metadata, topic, partition, time, isolation_level)

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_wait_time: float = 1.0,
        min_bytes: int = 1,
        max_bytes: int = 1024 * 1024,
        isolation_level: IsolationLevel = "read_committed",
    ) -> MessageSet:
        """Fetch once from a partition (brod's ``fetch``), without starting a consumer.

        Args:
            topic: The topic.
            partition: The partition.
            offset: The first offset wanted.
            max_wait_time: Seconds the broker may wait for ``min_bytes`` to arrive.
            min_bytes: The broker answers as soon as it has this many bytes.
            max_bytes: The most bytes to fetch. When the first batch at ``offset`` is
                larger, the limit is raised to fetch it whole.
            isolation_level: As in :class:`~trio_brod.ConsumerConfig`.

        Returns a :class:`~trio_brod.MessageSet` (possibly empty) with the messages from
        ``offset`` on and the partition's high watermark (with read_committed, its last
        stable offset). Its :attr:`~trio_brod.MessageSet.next_offset` is where to fetch next.

        Raises:
            OffsetOutOfRangeError: ``offset`` is before the log start or after its end.
            KafkaError: Another error the broker answered.
        """
        return await fetch_partition(
            self.metadata,
            topic,
            partition,
            offset,
            isolation_level,
            max_wait_time=max_wait_time,
            min_bytes=min_bytes,
            max_bytes=max_bytes,
        )

    async def fold(
        self,
        topic: str,
        partition: int,
        offset: int,
        fun: FoldFun[A],
        acc: A,
        *,
        message_count: int | None = None,
        reach_offset: int | None = None,
        max_wait_time: float = 0.0,
        max_bytes: int = 1024 * 1024,
        isolation_level: IsolationLevel = "read_committed",
    ) -> FoldResult[A]:
        """Fold ``fun(message, acc)`` over a partition from ``offset`` (brod's ``fold/8``).

        For rebuilding state from a topic: no consumer is started, and the result says
        where to go on. Fetches (as :meth:`fetch`; ``max_wait_time`` 0 so that a fold at
        the end returns at once) and folds until ``message_count`` messages, the message
        at ``reach_offset``, or the end of the partition; a failed fetch's error is
        returned, not raised, with what was folded before it. ``fun`` may be sync or
        async; its exceptions propagate. Returns a :class:`~trio_brod.FoldResult`
        (``acc``, ``next_offset``, ``reason``, ``error``); see :class:`~trio_brod.FoldResult`.
        """
        config = ConsumerConfig(
            max_wait_time=max_wait_time, max_bytes=max_bytes, isolation_level=isolation_level
        )
        limits = {"message_count": message_count, "reach_offset": reach_offset}
        return await fold(self.metadata, topic, partition, offset, fun, acc, config, **limits)

    # ------------------------------------------------------------ closing

    def _raise_if_closed(self) -> None:
        self.pool.raise_if_closed()

    async def aclose(self, *, cancelled: bool = False) -> None:
        """Stop everything the client started, in order, then close its connections.

        Leaving the client's block calls this; call it yourself to close the client sooner
        (leaving the block afterwards then has nothing left to do).

        Args:
            cancelled: Fail what producers still hold at once instead of letting them
                deliver it. The block passes True when it was cancelled.

        Producers first deliver what they hold, for up to their ``flush_timeout``, unless
        ``cancelled``: then pending messages fail at once. Safe to call twice (the second
        call can only make things fail sooner).
        """
        # No new producers; but `_closed`, which refuses new connections, waits until the
        # producers are done: while they flush they may need a leader lookup or a reconnect.
        self._producers_closing = True
        # Subscribers and consumers first: nothing more is fetched once closing starts.
        for consumer in self._topic_consumers.values():
            consumer.close()
        self._consumers_stopped.set()
        producers = list(self._topic_producers.values())
        if cancelled:
            errors = self._abort_producers("the client's block was cancelled before delivery")
        else:
            for producer in producers:
                producer.close()
            timeout = max((p.config.flush_timeout for p in producers), default=0.0)
            with trio.move_on_after(timeout):
                for producer in producers:
                    await producer.finished.wait()
            errors = self._abort_producers(
                "not delivered within flush_timeout as the client closed"
            )
        self._producers_stopped.set()
        self.pool.close()
        # Receipts' done-callbacks that raised while their receipts failed: not swallowed.
        raise_callback_errors(errors)

    def _abort_producers(self, reason: str) -> list[Exception]:
        """Fail what the producers still hold; return what done-callbacks raised meanwhile."""
        errors: list[Exception] = []
        for producer in self._topic_producers.values():
            if not producer.finished.is_set():
                try:
                    producer.abort(ProducerClosed(reason))
                except Exception as exc:
                    errors.append(exc)
        return errors


@asynccontextmanager
async def open_client(
    bootstrap_servers: str | Iterable[str | tuple[str, int]],
    config: ClientConfig | None = None,
    *,
    hooks: Iterable[Hook] = (),
    **options: Any,
) -> AsyncIterator[Client]:
    """Open a client, as an async context manager that owns the client's nursery.

    Args:
        bootstrap_servers: Brokers to ask for metadata first, tried in turn:
            ``"h1:9092,h2:9092"``, ``["h1:9092"]`` or ``[("h1", 9092)]``.
        config: A :class:`ClientConfig`.
        **options: The fields of a :class:`ClientConfig` as keyword arguments
            (``client_id="app", request_timeout=10``), instead of ``config``.
        hooks: Event hooks (:class:`~trio_brod.observe.Hook`) for this client's events
            only; more with ``client.hooks.add``, and for every client with ``add_hook``.

    Nothing connects until first use. Leaving the block closes every connection and stops
    every task the client started; exceptions from the block come out as themselves, not
    wrapped in an exception group.
    """
    if config is None:
        config = ClientConfig(**options)
    elif options:
        raise ConfigError("pass either a ClientConfig or keyword options, not both")
    servers = parse_bootstrap(bootstrap_servers)
    with unwrap_single_exception():
        async with trio.open_nursery() as nursery:
            client = Client(servers, config, nursery, hooks)
            try:
                yield client
            except BaseException as exc:
                # Cancelled: nothing may wait any more, so pending messages fail at once.
                await close_after(client.aclose, exc)
                raise
            else:
                await client.aclose(cancelled=False)
            finally:
                nursery.cancel_scope.cancel()
