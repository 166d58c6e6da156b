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
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import trio

from trio_brod._config import ClientConfig
from trio_brod._connection import Connection, ConnectionSlot, mechanism_factory
from trio_brod._exceptions import (
    BrokerConnectionError,
    ClientClosed,
    ConfigError,
    ConnectionFailed,
    NoLeader,
    NotFound,
    ProducerClosed,
)
from trio_brod._metadata import BrokerMetadata, ClusterMetadata, TopicMetadata
from trio_brod._receipt import DeliveryReceipt, raise_callback_errors
from trio_brod._util import unwrap_single_exception
from trio_brod.consumer import (
    FETCH_MIN_VERSION,
    FETCH_TOPIC_ID_VERSION,
    ConsumerConfig,
    IsolationLevel,
    MessageSet,
    PartitionConsumer,
    Subscription,
    Timestamp,
    TopicConsumer,
    fetch_request,
    fetched_partition,
    list_offsets_request,
    select_parts,
    visible_end,
)
from trio_brod.partitioners import Partitioner, PartitionerName
from trio_brod.producer import (
    Message,
    PartitionProducer,
    ProducerConfig,
    ProducerIdentity,
    TopicProducer,
)
from trio_brod.protocol import FindCoordinatorRequest, MetadataRequest
from trio_brod.protocol.errors import KafkaError, UnknownTopicOrPartitionError, for_code

__all__ = ["Client", "open_client"]

#: Error codes after which a coordinator lookup is simply tried again.
_COORDINATOR_RETRY_CODES = frozenset({14, 15, 16})  # LOAD_IN_PROGRESS, NOT_AVAILABLE, NOT_COORD.
#: Backoff between metadata retries while a leader is elected or a topic created.
_RETRY_BACKOFF_START = 0.05
_RETRY_BACKOFF_MAX = 1.0
#: Private connections opened to one broker at a time (see Client._open_private_connection).
_MAX_OPENING = 8


def parse_bootstrap(servers: str | Iterable[str | tuple[str, int]]) -> list[tuple[str, int]]:
    """Turn ``"h1:9092,h2:9092"``, ``["h1:9092"]`` or ``[("h1", 9092)]`` into (host, port)s.

    Raises:
        ConfigError: An entry has no port, a bad port, or the list is empty.
    """
    if isinstance(servers, str):
        servers = [s for s in servers.split(",") if s.strip()]
    result = []
    for entry in servers:
        if isinstance(entry, tuple):
            host, port = entry
        else:
            host, sep, port_text = entry.strip().rpartition(":")
            if not sep or not host:
                raise ConfigError(f"bootstrap server {entry!r}: expected 'host:port'")
            try:
                port = int(port_text)
            except ValueError:
                raise ConfigError(f"bootstrap server {entry!r}: port is not a number") from None
        host = host.strip("[]")  # "[::1]:9092"
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"bootstrap server {entry!r}: port out of range")
        result.append((host, port))
    if not result:
        raise ConfigError("bootstrap_servers is empty")
    return result


class _CachedTopic:
    __slots__ = ("fetched_at", "metadata")

    def __init__(self, metadata: TopicMetadata, fetched_at: float) -> None:
        self.metadata = metadata
        self.fetched_at = fetched_at


class Client:
    """A connection pool, metadata cache and worker registry for one Kafka cluster.

    Create it with :func:`open_client`; it is only usable inside that ``async with`` block.
    Every method is safe to call from many tasks at once.
    """

    def __init__(
        self,
        bootstrap_servers: Sequence[tuple[str, int]],
        config: ClientConfig,
        nursery: trio.Nursery,
    ) -> None:
        self.config = config
        self.bootstrap_servers = list(bootstrap_servers)
        self._nursery = nursery
        self._slots: dict[tuple[str, int], ConnectionSlot] = {}
        self._sasl = mechanism_factory(config)
        self._brokers: dict[int, BrokerMetadata] = {}
        self._topics: dict[str, _CachedTopic] = {}
        self._cluster_id: str | None = None
        self._metadata_lock = trio.Lock()
        self._metadata_address: tuple[str, int] | None = None
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
        self._consumers_stopped = trio.Event()
        self._closed = False
        # Private connections being opened to each broker (see _open_private_connection).
        self._opening: dict[tuple[str, int], trio.Semaphore] = {}

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._slots)} connections"
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
        slot = self._slots.get((host, port))
        if slot is None:
            slot = self._slots[host, port] = ConnectionSlot()
        return await self._slot_connection(slot, host, port, self._nursery)

    async def _slot_connection(
        self, slot: ConnectionSlot, host: str, port: int, nursery: trio.Nursery
    ) -> Connection:
        """The slot's connection, opened (in ``nursery``) if it has none that works.

        The rules of :meth:`get_connection`: one caller opens, the others wait for it; within
        ``reconnect_cool_down`` of a failure, the failure comes back at once. Returns
        without a checkpoint when the connection is there.

        Raises:
            ConnectionFailed: The broker cannot be reached (now, or within the cool-down).
            ClientClosed: The client is closed.
        """
        while True:
            self._raise_if_closed()
            connection = slot.connection
            if connection is not None:
                if not connection.closed:
                    return connection
                slot.connection = None
                reason = connection.close_reason
                if reason is not None and reason.retriable:
                    slot.error = reason
                    slot.failed_at = connection.closed_at or time.monotonic()
            if slot.connecting is not None:
                await slot.connecting.wait()
                continue
            age = time.monotonic() - slot.failed_at
            if slot.error is not None and age < self.config.reconnect_cool_down:
                # brod's cool-down: the last error again, at once, without a new attempt
                # (as a ConnectionFailed, or the kind of ConnectionFailed it was: SaslFailed).
                kind = type(slot.error) if isinstance(slot.error, ConnectionFailed) else None
                refusal = (kind or ConnectionFailed)(
                    slot.error.address,
                    f"{slot.error.reason} ({age:.2f}s ago; no new attempt within "
                    f"reconnect_cool_down={self.config.reconnect_cool_down}s)",
                )
                refusal.cool_down_left = self.config.reconnect_cool_down - age
                raise refusal from slot.error
            return await self._connect(slot, host, port, nursery)

    async def _connect(
        self, slot: ConnectionSlot, host: str, port: int, nursery: trio.Nursery
    ) -> Connection:
        slot.connecting = trio.Event()
        try:
            connection = await self._open_private_connection(host, port, nursery)
        except BrokerConnectionError as exc:
            slot.error, slot.failed_at = exc, time.monotonic()
            raise
        finally:
            slot.connecting.set()
            slot.connecting = None
        slot.connection, slot.error = connection, None
        return connection

    async def _run_connection(
        self, connection: Connection, *, task_status: trio.TaskStatus[Connection]
    ) -> None:
        await connection.run(sasl_mechanism=self._sasl, task_status=task_status)

    async def _any_connection(self) -> Connection:
        """A connection to some broker, for requests any broker can answer (metadata).

        The previous choice is reused while it works; otherwise the bootstrap servers are
        tried in turn, then the brokers learnt from metadata.
        """
        candidates = list(self.bootstrap_servers)
        candidates += [(b.host, b.port) for b in self._brokers.values()]
        if self._metadata_address is not None:
            candidates.insert(0, self._metadata_address)
        errors: list[BrokerConnectionError] = []
        seen = set()
        for address in candidates:
            if address in seen:
                continue
            seen.add(address)
            try:
                connection = await self.get_connection(*address)
            except BrokerConnectionError as exc:
                errors.append(exc)
                continue
            self._metadata_address = address
            return connection
        bootstrap = ",".join(f"{h}:{p}" for h, p in self.bootstrap_servers)
        # Of the same kind everywhere (a wrong password on every broker): keep that kind.
        kind = type(errors[0]) if len({type(e) for e in errors}) == 1 else ConnectionFailed
        if not issubclass(kind, ConnectionFailed):
            kind = ConnectionFailed
        reasons = "; ".join(str(e) for e in errors)
        error = kind(bootstrap, f"no broker reachable: {reasons}")
        # Every broker in its cool-down: nothing was tried, and a caller may wait for the
        # first to end rather than count a failed attempt.
        waits = [e.cool_down_left if isinstance(e, ConnectionFailed) else 0.0 for e in errors]
        if waits and min(waits) > 0:
            error.cool_down_left = min(waits)
        raise error from errors[-1]

    # ------------------------------------------------------------ metadata

    async def get_metadata(self, topics: Sequence[str] | None = None) -> ClusterMetadata:
        """Ask the cluster for its brokers and for topics' partitions and leaders.

        Args:
            topics: The topics to describe; None for all of them.

        Returns a fresh answer (never from cache) and refreshes the cache with it. Topics the
        cluster does not know are in the result with their ``error_code`` set (or are
        created, if ``allow_topic_auto_creation`` and the broker allow it).
        """
        if isinstance(topics, str):
            raise TypeError("topics must be a sequence of names, not a str")
        return await self._fetch_metadata(
            None if topics is None else list(topics), self.config.allow_topic_auto_creation
        )

    async def _fetch_metadata(self, topics: list[str] | None, auto_create: bool) -> ClusterMetadata:
        last_error: BrokerConnectionError | None = None
        for _attempt in range(3):
            connection = await self._any_connection()
            version = connection.best_version(MetadataRequest, min_version=1)
            request = MetadataRequest(
                topics=None
                if topics is None
                else [MetadataRequest.MetadataRequestTopic(name=t) for t in topics],
                allow_auto_topic_creation=auto_create,
            )
            try:
                response = await connection.request(request, version)
            except BrokerConnectionError as exc:
                # That broker just went away: another one can answer.
                last_error = exc
                continue
            metadata = ClusterMetadata.from_response(response)
            self._store_metadata(metadata)
            return metadata
        assert last_error is not None
        raise last_error

    def _store_metadata(self, metadata: ClusterMetadata) -> None:
        now = time.monotonic()
        self._brokers = dict(metadata.brokers)
        self._cluster_id = metadata.cluster_id
        for name, topic in metadata.topics.items():
            if topic.error_code == 0:
                self._topics[name] = _CachedTopic(topic, now)
            else:
                self._topics.pop(name, None)

    async def _topic_metadata(
        self, topic: str, *, auto_create: bool, newer_than: float = -math.inf
    ) -> TopicMetadata:
        """The topic's metadata from cache if fresh enough, else from a metadata request.

        ``newer_than`` is a ``time.monotonic()`` reading: callers that saw a stale leader pass
        the time they saw it, and get metadata fetched after that.
        """
        entry = self._fresh_entry(topic, newer_than)
        if entry is not None:
            return entry.metadata
        async with self._metadata_lock:
            # Another task may have refreshed it while we waited for the lock.
            entry = self._fresh_entry(topic, newer_than)
            if entry is not None:
                return entry.metadata
            metadata = await self._fetch_metadata([topic], auto_create)
        found = metadata.topics.get(topic)
        if found is None:
            raise UnknownTopicOrPartitionError("topic missing from the metadata", topic=topic)
        return found

    def _fresh_entry(self, topic: str, newer_than: float) -> _CachedTopic | None:
        entry = self._topics.get(topic)
        if entry is None:
            return None
        if entry.fetched_at <= newer_than:
            return None
        if time.monotonic() - entry.fetched_at > self.config.metadata_max_age:
            return None
        return entry

    async def _retry_topic(self, topic: str, *, auto_create: bool) -> TopicMetadata:
        """Topic metadata without an error, retrying retriable errors (a topic being created)
        until ``get_metadata_timeout``."""
        deadline = time.monotonic() + self.config.get_metadata_timeout
        backoff = _RETRY_BACKOFF_START
        newer_than = -math.inf
        while True:
            metadata = await self._topic_metadata(
                topic, auto_create=auto_create, newer_than=newer_than
            )
            error = metadata.error
            if error is None:
                return metadata
            if not _retry_topic_error(error, auto_create) or time.monotonic() >= deadline:
                raise error
            newer_than = time.monotonic()
            await trio.sleep(backoff)
            backoff = min(backoff * 2, _RETRY_BACKOFF_MAX)

    async def get_partitions_count(self, topic: str) -> int:
        """How many partitions a topic has (from cache when fresh).

        With ``allow_topic_auto_creation`` (the default), asking about a topic that does not
        exist creates it if the broker allows that, as brod does.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist.
        """
        metadata = await self._retry_topic(topic, auto_create=self.config.allow_topic_auto_creation)
        return metadata.partition_count

    async def get_partitions_count_safe(self, topic: str) -> int:
        """Like :meth:`get_partitions_count`, but never creates the topic."""
        metadata = await self._retry_topic(topic, auto_create=False)
        return metadata.partition_count

    async def get_leader(self, topic: str, partition: int) -> BrokerMetadata:
        """The broker leading a partition, refreshing metadata while there is none.

        Raises:
            NoLeader: No leader appeared within ``get_metadata_timeout``.
            UnknownTopicOrPartitionError: No such topic, or no such partition in it.
        """
        return await self._leader(topic, partition, newer_than=-math.inf)

    async def _leader(self, topic: str, partition: int, *, newer_than: float) -> BrokerMetadata:
        deadline = time.monotonic() + self.config.get_metadata_timeout
        backoff = _RETRY_BACKOFF_START
        auto_create = self.config.allow_topic_auto_creation
        while True:
            metadata = await self._topic_metadata(
                topic, auto_create=auto_create, newer_than=newer_than
            )
            error = metadata.error
            if error is not None and not _retry_topic_error(error, auto_create):
                raise error
            if error is None:
                found = metadata.partitions.get(partition)
                if found is None:
                    raise UnknownTopicOrPartitionError(
                        f"the topic has {metadata.partition_count} partitions",
                        topic=topic,
                        partition=partition,
                    )
                broker = self._brokers.get(found.leader)
                if found.leader >= 0 and broker is not None:
                    return broker
            if time.monotonic() >= deadline:
                raise error if error is not None else NoLeader(topic, partition)
            newer_than = time.monotonic()
            await trio.sleep(backoff)
            backoff = min(backoff * 2, _RETRY_BACKOFF_MAX)

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
        newer_than = time.monotonic() if refresh else -math.inf
        broker = await self._leader(topic, partition, newer_than=newer_than)
        return await self.get_connection(broker.host, broker.port)

    # ------------------------------------------------------------ coordinators

    async def get_group_coordinator(self, group_id: str) -> BrokerMetadata:
        """The broker coordinating a consumer group (FindCoordinator).

        Retries while the coordinator is being elected or loaded (right after a cluster
        starts this takes a few seconds), for up to ``request_timeout``.
        """
        return await self._find_coordinator(group_id, key_type=0)

    async def get_transactional_coordinator(self, transactional_id: str) -> BrokerMetadata:
        """The broker coordinating a transactional id (FindCoordinator, key type 1)."""
        return await self._find_coordinator(transactional_id, key_type=1)

    async def _find_coordinator(self, key: str, key_type: int) -> BrokerMetadata:
        deadline = time.monotonic() + self.config.request_timeout
        backoff = _RETRY_BACKOFF_START
        what = "group_id" if key_type == 0 else "transactional_id"
        while True:
            connection = await self._any_connection()
            api = FindCoordinatorRequest
            version = connection.best_version(api, min_version=1 if key_type else 0)
            if version >= 4:
                response = await connection.request(
                    api(key_type=key_type, coordinator_keys=[key]), version
                )
                found: Any = response.coordinators[0]
            else:
                found = await connection.request(api(key=key, key_type=key_type), version)
            if found.error_code == 0:
                return BrokerMetadata(found.node_id, found.host, found.port)
            error = for_code(found.error_code)(found.error_message, **{what: key})
            if found.error_code not in _COORDINATOR_RETRY_CODES or time.monotonic() >= deadline:
                raise error
            await trio.sleep(backoff)
            backoff = min(backoff * 2, _RETRY_BACKOFF_MAX)

    # ------------------------------------------------------------ producers

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
            UnknownTopicOrPartitionError: The topic does not exist (and was not created).
            ClientClosed: The client is closing or closed.
        """
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
                    self._identity = ProducerIdentity(self)
                identity = self._identity
            nursery = await self._producers_nursery()
            producer = TopicProducer(self, topic, config, identity)
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
                off).
        """
        producer = await self._topic_producer(topic)
        return await producer.producer_for(partition)

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
            headers: ``(name, value)`` pairs.
            timestamp: The CreateTime in milliseconds since the epoch; None for now.

        ``await receipt`` (or ``receipt.add_done_callback``) gives the offset once the broker
        acknowledges the message. Waits (cancellably) while the partition's buffer is full;
        otherwise it returns without letting other tasks run, so that a loop of calls fills
        the buffer quickly and the worker sends it in big batches.

        Raises:
            NotFound: No producer runs for the topic and ``auto_start_producers`` is off.
            MessageTooLarge: The message cannot fit in the producer's ``max_request_size``.
            ProducerClosed: The producer is closed (the client is closing, or the producer
                was stopped).
            TypeError: key, value, headers or timestamp have the wrong type.
            ValueError: ``partition`` is not a partition of the topic.
            ConfigError: ``partitioner`` is not a partitioner, or it returned a partition
                the topic does not have.
        """
        # The common case runs without awaiting anything until the message is handed over.
        producer = self._topic_producers.get(topic)
        if producer is None:
            producer = await self._topic_producer(topic)
        if partition is None:
            partition = producer.choose(key, value, partitioner)
        worker = producer.partitions.get(partition) if type(partition) is int else None
        if worker is None:
            worker = await producer.producer_for(partition)
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
        producer = self._topic_producers.get(topic)
        if producer is None:
            producer = await self._topic_producer(topic)
        if partition is None:
            partition = producer.choose(key, None, partitioner)
        worker = producer.partitions.get(partition) if type(partition) is int else None
        if worker is None:
            worker = await producer.producer_for(partition)
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
            task_status.started()
            await self._consumers_stopped.wait()
            nursery.cancel_scope.cancel()

    async def start_consumer(self, topic: str, config: ConsumerConfig | None = None) -> None:
        """Start the consumers of a topic: a nursery with one (idle) worker per partition.

        A no-op if they are running already (brod's ``start_consumer``). Workers fetch only
        while someone is subscribed to their partition.
        """
        self._raise_if_closed()
        if topic in self._topic_consumers:
            await trio.lowlevel.checkpoint()
            return
        async with self._consumers_lock:
            if topic in self._topic_consumers:
                return
            nursery = await self._consumers_nursery()
            consumer = TopicConsumer(self, topic, config or ConsumerConfig())
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
                last acknowledged offset (the first subscriber uses the consumer's config).

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

    async def _leader_for(self, topic: str, partition: int, *, refresh: bool) -> BrokerMetadata:
        newer_than = time.monotonic() if refresh else -math.inf
        return await self._leader(topic, partition, newer_than=newer_than)

    async def _open_private_connection(
        self, host: str, port: int, nursery: trio.Nursery
    ) -> Connection:
        """A new connection, living in ``nursery``, that nothing else shares.

        At most ``_MAX_OPENING`` are opened to one broker at a time. The consumers of a
        topic with hundreds of partitions each open one at once, and a broker's listen
        backlog (Kafka's ``socket.listen.backlog.size``, 50) drops the connection attempts
        that do not fit: the kernel tries them again only a second later, then three.
        """
        self._raise_if_closed()
        limit = self._opening.get((host, port))
        if limit is None:
            limit = self._opening[host, port] = trio.Semaphore(_MAX_OPENING)
        connection = Connection(host, port, self.config)
        async with limit:
            await nursery.start(self._run_connection, connection)
        return connection

    async def _topic_id(self, topic: str) -> uuid.UUID | None:
        metadata = await self._retry_topic(topic, auto_create=False)
        return None if metadata.topic_id.int == 0 else metadata.topic_id

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
                offset whose message is at or after that time (``"latest"`` if none is).
                The ints -1 and -2 mean ``"latest"`` and ``"earliest"``, as in brod.
            isolation_level: With ``"read_committed"``, ``"latest"`` is the last stable
                offset (before the first open transaction).

        Leader moves and a leader's not yet settled offsets (OFFSET_NOT_AVAILABLE just
        after an election) are retried for up to ``get_metadata_timeout``.

        Raises:
            TypeError, ValueError: ``time`` is none of those.
            KafkaError: The broker refused (e.g. the topic or partition does not exist).
        """
        if time == "earliest":
            timestamp = _LIST_OFFSETS_EARLIEST
        elif time == "latest":
            timestamp = _LIST_OFFSETS_LATEST
        elif isinstance(time, Timestamp):
            timestamp = time.ms
        elif isinstance(time, datetime.datetime):
            timestamp = Timestamp.from_datetime(time).ms
        elif isinstance(time, int) and not isinstance(time, bool):
            timestamp = time
        else:
            raise TypeError(f"time must be 'earliest', 'latest' or a timestamp, not {time!r}")
        if timestamp < 0 and timestamp not in (_LIST_OFFSETS_EARLIEST, _LIST_OFFSETS_LATEST):
            raise ValueError(f"time={time!r}: a timestamp must be >= 0 (or -1, -2)")
        isolation = 1 if isolation_level == "read_committed" else 0
        request = list_offsets_request(topic, partition, timestamp, isolation)
        result = await self._leader_request(topic, partition, request, min_version=1)
        answer = result.topics[0].partitions[0]
        if answer.error_code:
            raise for_code(answer.error_code)(topic=topic, partition=partition)
        if answer.offset < 0 and timestamp >= 0:
            # No message at or after that time: the end of the log.
            return await self.resolve_offset(
                topic, partition, "latest", isolation_level=isolation_level
            )
        offset: int = answer.offset
        return offset

    async def _leader_request(
        self,
        topic: str,
        partition: int,
        request: Any,
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (a per-request timeout, not a deadline)
    ) -> Any:
        """Send a one-partition request to the partition's leader; return the response.

        Retriable errors (of the connection, or the partition's error code) are retried
        until ``get_metadata_timeout``, with metadata refreshed first when they mean the
        leader moved. Any other partition error is left in the response for the caller.
        """
        deadline = time.monotonic() + self.config.get_metadata_timeout
        refresh = False
        backoff = _RETRY_BACKOFF_START
        api = type(request)
        highest = api.MAX_STABLE_VERSION if max_version is None else max_version
        while True:
            try:
                connection = await self.get_leader_connection(topic, partition, refresh=refresh)
                version = connection.version_for(
                    api.API_KEY, highest, api.MIN_VERSION if min_version is None else min_version
                )
                response = await connection.request(request, version, timeout=timeout)
                code = _first_partition_error(response)
                if code:
                    error = for_code(code)(topic=topic, partition=partition)
                    if not error.retriable:
                        return response
                    raise error
                return response
            except (BrokerConnectionError, NoLeader, KafkaError) as exc:
                if not exc.retriable or time.monotonic() >= deadline:
                    raise
                refresh = not isinstance(exc, KafkaError) or exc.invalid_metadata
                await trio.sleep(backoff)
                backoff = min(backoff * 2, _RETRY_BACKOFF_MAX)

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
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, not {offset!r}")
        config = ConsumerConfig(
            max_wait_time=max_wait_time,
            min_bytes=min_bytes,
            max_bytes=max_bytes,
            isolation_level=isolation_level,
        )
        isolation = 1 if isolation_level == "read_committed" else 0
        topic_id = await self._topic_id(topic)
        while True:
            request = fetch_request(
                topic, topic_id, partition, offset, max_bytes, config, isolation
            )
            response = await self._leader_request(
                topic,
                partition,
                request,
                min_version=FETCH_MIN_VERSION,
                max_version=None if topic_id is not None else FETCH_TOPIC_ID_VERSION - 1,
                timeout=max_wait_time + self.config.request_timeout,
            )
            data = fetched_partition(response, topic, partition, offset)
            selected = select_parts(topic, partition, offset, data, isolation_level)
            if selected.needed_bytes is not None:
                max_bytes = min(max(selected.needed_bytes, max_bytes * 2), 2**31 - 1)
                continue
            return MessageSet(
                topic,
                partition,
                visible_end(data, isolation),
                selected.parts,
                selected.next_offset,
            )

    # ------------------------------------------------------------ closing

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise ClientClosed(f"client {self.config.client_id!r} is closed")

    async def _aclose(self, *, cancelled: bool) -> None:
        """Stop everything the client started, in order, then close its connections.

        Producers first deliver what they hold, for up to their ``flush_timeout``, unless
        the block was cancelled: then pending messages fail at once. Safe to call twice
        (the second call can only make things fail sooner).
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
        self._closed = True
        for slot in self._slots.values():
            if slot.connection is not None:
                slot.connection.close()
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


#: ListOffsets' special timestamps.
_LIST_OFFSETS_LATEST = -1
_LIST_OFFSETS_EARLIEST = -2


def _first_partition_error(response: Any) -> int:
    """The error code of the first partition of a one-partition response (0 if none)."""
    topics: Any = getattr(response, "topics", None) or getattr(response, "responses", ())
    for topic in topics:
        for partition in topic.partitions:
            code: int = partition.error_code
            return code
    return 0


def _retry_topic_error(error: KafkaError, auto_create: bool) -> bool:
    """Whether a topic-level metadata error may go away if we ask again shortly.

    An unknown topic is worth waiting for only if our request may have created it (a KRaft
    broker answers UNKNOWN_TOPIC_OR_PARTITION while the creation it started is under way);
    otherwise brod's behaviour is kept: report it at once.
    """
    if isinstance(error, UnknownTopicOrPartitionError):
        return auto_create
    return error.retriable


@asynccontextmanager
async def open_client(
    bootstrap_servers: str | Iterable[str | tuple[str, int]],
    config: ClientConfig | None = None,
    **options: Any,
) -> AsyncIterator[Client]:
    """Open a client, as an async context manager that owns the client's nursery.

    Args:
        bootstrap_servers: Brokers to ask for metadata first, tried in turn:
            ``"h1:9092,h2:9092"``, ``["h1:9092"]`` or ``[("h1", 9092)]``.
        config: A :class:`ClientConfig`.
        **options: The fields of a :class:`ClientConfig` as keyword arguments
            (``client_id="app", request_timeout=10``), instead of ``config``.

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
            client = Client(servers, config, nursery)
            try:
                yield client
            except BaseException as exc:
                # Cancelled: nothing may wait any more, so pending messages fail at once.
                await _close_after(client, exc)
                raise
            else:
                await client._aclose(cancelled=False)
            finally:
                nursery.cancel_scope.cancel()


#: Ways out of a block that must not wait for producers to flush: a cancel, Ctrl-C, exit.
_NO_WAITING = (trio.Cancelled, KeyboardInterrupt, SystemExit)


async def _close_after(client: Client, exc: BaseException) -> None:
    cancelled = isinstance(exc, _NO_WAITING) or (
        isinstance(exc, BaseExceptionGroup) and exc.subgroup(_NO_WAITING) is not None
    )
    with trio.CancelScope(shield=True):
        if cancelled:
            await client._aclose(cancelled=True)
            return
    # An error in the block: still deliver what was produced, but let a cancel stop it.
    try:
        await client._aclose(cancelled=False)
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            await client._aclose(cancelled=True)
        raise
