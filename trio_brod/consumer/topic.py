"""A topic's consumers: one worker per partition.

:class:`TopicConsumer` is what :meth:`Client.start_consumer
<trio_brod.Client.start_consumer>` starts: a :class:`~trio_brod._topic_workers.TopicWorkers`
nursery (the one producers use too) with a :class:`~trio_brod.lowlevel.PartitionConsumer`
per partition, which picks up partitions added to the topic later. A worker's task starts
with its partition's first subscriber and lives until the topic's consumers stop: a client
that subscribes to some partitions only (a group member) runs no task for the others.
Stopping it cancels the workers: a consumer holds nothing that must be delivered first.

How workers reach the leader
----------------------------

A broker answers the requests of one connection one at a time, in order, so a fetch that
waits for data (a *long poll*, up to ``max_wait_time``) holds up every request behind it
on its connection.

By default (``fetch_connection="broker"``) workers send no Fetch requests themselves: each
hands its partition to the client's fetcher for the leader
(:mod:`trio_brod.consumer.fetcher`), which fetches for all of that broker's partitions in
one request with an incremental fetch session, as the Java consumer does.

brod gives each partition worker a connection of its own (``share_leader_conn = false``,
here ``fetch_connection="partition"``): nothing waits behind anything, but a topic with
1,000 partitions makes 1,000 connections and 1,000 small Fetch requests.
``"shared"`` (brod's ``share_leader_conn = true``) fetches on the client's own connection
to the leader, where one-partition fetches waiting together are merged into one request
(:mod:`trio_brod._net.merge`), and producing and metadata requests wait behind a long poll.
A subscriber that leaves while its fetch long-polls there cannot take that fetch back from
the broker, but it is the only one: fetches wait in the connection while one is in
flight, and those whose subscriber left are never written. However many subscriptions
come and go, what follows waits behind at most one long poll.

(A fourth mode, ``"topic"``, shared two connections per broker among a topic's workers and
merged their fetches; the fetcher per broker does the same with fewer requests and without
its added latency, and replaced it.)
"""

from __future__ import annotations

import trio

from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod._config import ConsumerConfig
from trio_brod._topic_workers import TopicWorkers
from trio_brod.consumer.fetcher import Fetchers
from trio_brod.consumer.worker import PartitionConsumer

__all__ = ["TopicConsumer"]


class TopicConsumer:
    """The consumers of one topic, in their own nursery; one worker per partition, whose task
    starts with its first subscriber.

    Args:
        pool: Where connections come from.
        metadata: Partition counts, leaders and topic ids.
        topic: The topic.
        config: The consumer config of every worker (subscriptions may override it).
        fetchers: The client's fetchers, one per broker for all topics
            (``fetch_connection="broker"``); without, the topic starts its own.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        metadata: MetadataCache,
        topic: str,
        config: ConsumerConfig,
        fetchers: Fetchers | None = None,
    ) -> None:
        self._pool = pool
        self._metadata = metadata
        self.topic = topic
        self.config = config
        self._nursery: trio.Nursery | None = None
        self._fetchers = fetchers
        self._workers = TopicWorkers(
            metadata,
            topic,
            "consumer",
            self._make,
            auto_create=metadata.config.allow_topic_auto_creation,
            cancel_on_close=True,
            start_tasks=False,
        )

    def __repr__(self) -> str:
        return f"<TopicConsumer {self.topic} partitions={self._workers.partition_count}>"

    @property
    def partitions(self) -> dict[int, PartitionConsumer]:
        """The workers, by partition (a worker's task runs once it was subscribed to)."""
        return self._workers.partitions

    @property
    def finished(self) -> trio.Event:
        """Set once every worker of the topic has ended."""
        return self._workers.finished

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The topic's nursery: a worker per partition (each with a task once subscribed to),
        until closed.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist (before starting).
        """
        await self._workers.run(task_status=task_status)

    def _make(self, partition: int, nursery: trio.Nursery) -> PartitionConsumer:
        self._nursery = nursery
        if self._fetchers is None:
            self._fetchers = Fetchers(self._pool, self._metadata.config.request_timeout, nursery)
        return PartitionConsumer(
            self._pool,
            self._metadata,
            self.topic,
            partition,
            self.config,
            nursery,
            fetchers=self._fetchers,
        )

    async def consumer_for(self, partition: int) -> PartitionConsumer:
        """The worker of a partition; partitions added since start get one.

        Raises:
            ValueError: The topic has no such partition.
            NotFound: The consumers were stopped.
        """
        return await self._workers.worker(partition)

    def close(self) -> None:
        """Stop every worker; subscriptions end."""
        self._workers.close()
