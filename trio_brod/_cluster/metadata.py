"""The metadata cache: topics, partitions, leaders, topic ids and coordinators.

Workers ask it where a partition's leader is and how many partitions a topic has; it answers
from cache while the answer is fresh (``metadata_max_age``) and asks the cluster otherwise.
A worker that saw a stale answer (NOT_LEADER_OR_FOLLOWER, a lost connection) asks again with
``refresh=True`` and gets metadata fetched after that moment. Concurrent refreshes of one
topic are folded into one request by a lock: a thousand partition workers losing the same
broker cost one Metadata request, not a thousand.

Every retry here (a leader being elected, a topic being created, a coordinator loading) goes
through :class:`~trio_brod._backoff.Retry` on Trio's clock, bounded by
``get_metadata_timeout`` (``request_timeout`` for coordinators).
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import trio

from trio_brod._backoff import Retry, now
from trio_brod._cluster.pool import ConnectionPool
from trio_brod._config import ClientConfig
from trio_brod._exceptions import BrokerConnectionError, NoLeader
from trio_brod._log import metadata_log
from trio_brod._metadata import BrokerMetadata, ClusterMetadata, TopicMetadata
from trio_brod._net import Connection
from trio_brod.protocol import FindCoordinatorRequest, MetadataRequest
from trio_brod.protocol.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    UnknownTopicOrPartitionError,
    for_code,
)

__all__ = ["CoordinatorType", "MetadataCache"]

#: Errors after which a coordinator lookup is simply tried again.
_COORDINATOR_RETRY = (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    NotCoordinatorError,
)


class CoordinatorType:
    """FindCoordinator's key types."""

    GROUP = 0
    TRANSACTION = 1


class _CachedTopic:
    __slots__ = ("fetched_at", "metadata")

    def __init__(self, metadata: TopicMetadata, fetched_at: float) -> None:
        self.metadata = metadata
        self.fetched_at = fetched_at


class MetadataCache:
    """What the cluster looks like, as far as this client last heard.

    Args:
        pool: Where Metadata and FindCoordinator requests go (any broker can answer).
        config: The client's config: ``metadata_max_age``, ``get_metadata_timeout``,
            ``request_timeout`` and ``allow_topic_auto_creation``.
    """

    def __init__(self, pool: ConnectionPool, config: ClientConfig) -> None:
        self.pool = pool
        self.config = config
        self._brokers: dict[int, BrokerMetadata] = {}
        self._topics: dict[str, _CachedTopic] = {}
        self.cluster_id: str | None = None
        self._lock = trio.Lock()

    @property
    def brokers(self) -> dict[int, BrokerMetadata]:
        """The brokers of the last answer, by node id (a copy)."""
        return dict(self._brokers)

    async def fetch(self, topics: list[str] | None, *, auto_create: bool) -> ClusterMetadata:
        """Ask the cluster (never the cache) about ``topics`` (None: all); cache the answer.

        A broker that goes away while answering is replaced by another, up to three tries.
        """
        last_error: BrokerConnectionError | None = None
        for _attempt in range(3):
            connection = await self.pool.any_connection()
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
                self.pool.repeats.warning(
                    metadata_log, ("metadata", exc.address), "metadata request failed: %s", exc
                )
                last_error = exc
                continue
            metadata = ClusterMetadata.from_response(response)
            self._store(metadata)
            return metadata
        assert last_error is not None
        raise last_error

    def _store(self, metadata: ClusterMetadata) -> None:
        fetched_at = now()
        self._brokers = dict(metadata.brokers)
        self.pool.learn_brokers((b.host, b.port) for b in self._brokers.values())
        self.cluster_id = metadata.cluster_id
        for name, topic in metadata.topics.items():
            if topic.error_code == 0:
                previous = self._topics.get(name)
                if previous is not None:
                    _log_leader_moves(previous.metadata, topic)
                self._topics[name] = _CachedTopic(topic, fetched_at)
            else:
                self._topics.pop(name, None)

    async def topic(
        self, topic: str, *, auto_create: bool, newer_than: float = -math.inf
    ) -> TopicMetadata:
        """The topic's metadata from cache if fresh enough, else from a Metadata request.

        ``newer_than`` is a reading of Trio's clock: callers that saw a stale leader pass the
        time they saw it, and get metadata fetched after that. The answer may carry an error
        (see :meth:`topic_ok` for one that does not).
        """
        entry = self._fresh_entry(topic, newer_than)
        if entry is not None:
            return entry.metadata
        async with self._lock:
            # Another task may have refreshed it while we waited for the lock.
            entry = self._fresh_entry(topic, newer_than)
            if entry is not None:
                return entry.metadata
            metadata = await self.fetch([topic], auto_create=auto_create)
        found = metadata.topics.get(topic)
        if found is None:
            raise UnknownTopicOrPartitionError("topic missing from the metadata", topic=topic)
        return found

    def _fresh_entry(self, topic: str, newer_than: float) -> _CachedTopic | None:
        entry = self._topics.get(topic)
        if entry is None or entry.fetched_at <= newer_than:
            return None
        if now() - entry.fetched_at > self.config.metadata_max_age:
            return None
        return entry

    async def topic_ok(self, topic: str, *, auto_create: bool) -> TopicMetadata:
        """Topic metadata without an error, retrying retriable errors (a topic being
        created) until ``get_metadata_timeout``.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist (and was not created).
            KafkaError: Another topic error, or a retriable one that outlasted the timeout.
        """
        retry = Retry(self.config.get_metadata_timeout)
        newer_than = -math.inf
        while True:
            metadata = await self.topic(topic, auto_create=auto_create, newer_than=newer_than)
            error = metadata.error
            if error is None:
                return metadata
            if not _retry_topic_error(error, auto_create) or retry.expired:
                raise error
            newer_than = now()
            await retry.wait()

    async def partitions_count(self, topic: str, *, auto_create: bool) -> int:
        """How many partitions a topic has (from cache when fresh)."""
        return (await self.topic_ok(topic, auto_create=auto_create)).partition_count

    async def topic_id(self, topic: str) -> uuid.UUID | None:
        """The topic's id (Kafka 2.8+), or None where the cluster gives none."""
        metadata = await self.topic_ok(topic, auto_create=False)
        return None if metadata.topic_id.int == 0 else metadata.topic_id

    async def leader(self, topic: str, partition: int, *, refresh: bool = False) -> BrokerMetadata:
        """The broker leading a partition, refreshing metadata while there is none.

        Args:
            topic: The topic.
            partition: The partition.
            refresh: Re-read metadata first: the caller was told the cached leader is not
                the leader any more.

        Raises:
            NoLeader: No leader appeared within ``get_metadata_timeout``.
            UnknownTopicOrPartitionError: No such topic, or no such partition in it.
        """
        newer_than = now() if refresh else -math.inf
        retry = Retry(self.config.get_metadata_timeout)
        auto_create = self.config.allow_topic_auto_creation
        while True:
            metadata = await self.topic(topic, auto_create=auto_create, newer_than=newer_than)
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
            if retry.expired:
                raise error if error is not None else NoLeader(topic, partition)
            newer_than = now()
            await retry.wait()

    async def leader_connection(
        self, topic: str, partition: int, *, refresh: bool = False
    ) -> Connection:
        """The pool's shared connection to a partition's leader (see :meth:`leader`)."""
        broker = await self.leader(topic, partition, refresh=refresh)
        return await self.pool.get(broker.host, broker.port)

    async def find_coordinator(self, key: str, key_type: int) -> BrokerMetadata:
        """The broker coordinating a group (``CoordinatorType.GROUP``) or a transactional
        id (``CoordinatorType.TRANSACTION``).

        Retries while the coordinator is being elected or loaded (right after a cluster
        starts this takes a few seconds), for up to ``request_timeout``.
        """
        retry = Retry(self.config.request_timeout)
        what = "group_id" if key_type == CoordinatorType.GROUP else "transactional_id"
        while True:
            connection = await self.pool.any_connection()
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
            if not isinstance(error, _COORDINATOR_RETRY) or retry.expired:
                raise error
            await retry.wait()


def _log_leader_moves(before: TopicMetadata, after: TopicMetadata) -> None:
    """INFO for each partition whose leader changed between two answers (-1: none)."""
    if not metadata_log.isEnabledFor(logging.INFO):
        return
    for number, partition in after.partitions.items():
        old = before.partitions.get(number)
        if old is not None and old.leader != partition.leader:
            metadata_log.info(
                "leader of %s[%d] moved from broker %d to %d%s",
                after.name,
                number,
                old.leader,
                partition.leader,
                f" (epoch {partition.leader_epoch})" if partition.leader_epoch >= 0 else "",
            )


def _retry_topic_error(error: KafkaError, auto_create: bool) -> bool:
    """Whether a topic-level metadata error may go away if we ask again shortly.

    An unknown topic is worth waiting for only if our request may have created it (a KRaft
    broker answers UNKNOWN_TOPIC_OR_PARTITION while the creation it started is under way);
    otherwise brod's behaviour is kept: report it at once.
    """
    if isinstance(error, UnknownTopicOrPartitionError):
        return auto_create
    return error.retriable
