"""A topic's consumers: one worker per partition, and the fetch connections they share.

:class:`TopicConsumer` is what :meth:`Client.start_consumer
<trio_brod.Client.start_consumer>` starts: a :class:`~trio_brod._topic_workers.TopicWorkers`
nursery (the one producers use too) with a :class:`~trio_brod.lowlevel.PartitionConsumer`
per partition, which picks up partitions added to the topic later. Stopping it cancels the
workers: a consumer holds nothing that must be delivered first.

How workers reach the leader
----------------------------

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

import trio

from trio_brod._cluster import ConnectionPool, ConnectionSlot, MetadataCache
from trio_brod._config import ConsumerConfig
from trio_brod._net import Connection
from trio_brod._topic_workers import TopicWorkers
from trio_brod.consumer.fetcher import Fetchers
from trio_brod.consumer.worker import PartitionConsumer

__all__ = ["TopicConsumer"]


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
    """The consumers of one topic, in their own nursery; one worker per partition.

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
        self._lanes: dict[tuple[str, int], _FetchLanes] = {}
        self._nursery: trio.Nursery | None = None
        self._fetchers = fetchers
        self._workers = TopicWorkers(
            metadata,
            topic,
            "consumer",
            self._make,
            auto_create=metadata.config.allow_topic_auto_creation,
            cancel_on_close=True,
        )

    def __repr__(self) -> str:
        return f"<TopicConsumer {self.topic} partitions={self._workers.partition_count}>"

    @property
    def partitions(self) -> dict[int, PartitionConsumer]:
        """The running workers, by partition."""
        return self._workers.partitions

    @property
    def finished(self) -> trio.Event:
        """Set once every worker of the topic has ended."""
        return self._workers.finished

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The topic's nursery: a worker per partition, until closed.

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
            lanes_to=self.lanes_to,
            fetchers=self._fetchers,
        )

    def lanes_to(self, host: str, port: int) -> _FetchLanes:
        """The topic's fetch connections to a broker (``fetch_connection="topic"``)."""
        lanes = self._lanes.get((host, port))
        if lanes is None:
            assert self._nursery is not None
            lanes = self._lanes[host, port] = _FetchLanes(self._pool, host, port, self._nursery)
        return lanes

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
