"""The fake Kafka a test holds: :func:`fake_kafka` and :class:`FakeKafka`."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import trio

from trio_brod.protocol import ApiVersionsRequest, Message
from trio_brod.protocol.errors import KafkaError
from trio_brod.protocol.records import encode_batch
from trio_brod.testing.fake._admin_apis import install_admin_apis
from trio_brod.testing.fake._consumer_groups import ConsumerGroup
from trio_brod.testing.fake._data_apis import install_data_apis
from trio_brod.testing.fake._faults import Action, Control, Decide, Fail
from trio_brod.testing.fake._group_apis import GroupCoordinator, install_group_apis
from trio_brod.testing.fake._groups import Committed, Group
from trio_brod.testing.fake._log import PartitionLog
from trio_brod.testing.fake._model import ClusterModel, ModelError, Topic
from trio_brod.testing.fake._runtime import FakeCluster
from trio_brod.testing.fake._server import BrokerServer
from trio_brod.testing.fake._transactions import Transaction
from trio_brod.testing.fake._txn_apis import TransactionCoordinator, install_transaction_apis

__all__ = ["FakeKafka", "fake_kafka"]


class FakeKafka:
    """A running in-process Kafka (made by :func:`fake_kafka`): its addresses, its state, and
    the levers a test pulls (faults, leader moves, broker stops).
    """

    def __init__(
        self,
        cluster: FakeCluster,
        nursery: trio.Nursery,
        groups: GroupCoordinator,
        transactions: TransactionCoordinator | None = None,
    ) -> None:
        self.cluster = cluster
        #: The group coordinator (its ``groups`` state, to look at).
        self.groups = groups
        #: The transaction coordinator (its ``transactions`` state, to look at).
        self.transactions = transactions or TransactionCoordinator(cluster, groups)
        self._nursery = nursery
        self._servers: dict[int, BrokerServer] = {}
        self._scopes: dict[int, trio.CancelScope] = {}
        self._stopped: dict[int, trio.Event] = {}

    @property
    def bootstrap_servers(self) -> list[str]:
        """``"host:port"`` of every running broker."""
        return [
            f"{host}:{port}"
            for node, (host, port) in sorted(self.cluster.addresses.items())
            if node in self.cluster.model.live
        ]

    async def connect(self, host: str, port: int) -> trio.abc.Stream:
        """Open a connection to the broker at ``host:port`` inside this Trio run, with no
        socket: for ``open_client(fake.bootstrap_servers, connect=fake.connect)`` (see
        :class:`~trio_brod.ClientConfig`'s ``connect``).

        The client and the broker still exchange the whole wire protocol, byte for byte,
        but with no system calls and no poll: a request that need not wait is answered
        inside the client's own write, so a property test's examples run faster (see
        docs/testing.rst). Everything else behaves as over TCP: requests are answered in
        order, stopping the broker closes its connections, and connecting to a stopped one
        is refused. Other clients (librdkafka, the Java tools) use the TCP listeners.

        Raises:
            ConnectionRefusedError: No running broker of this fake listens at that address.
        """
        await trio.lowlevel.checkpoint()
        for node_id, (_, listening) in self.cluster.addresses.items():
            server = self._servers.get(node_id)
            if listening == port and server is not None and node_id in self._scopes:
                return server.connect_in_process()
        raise ConnectionRefusedError(
            errno.ECONNREFUSED, f"no broker of this fake Kafka is running at {host}:{port}"
        )

    def connections(self, broker: int) -> int:
        """How many connections *broker* has accepted since the fake started (over TCP or
        through :meth:`connect`), across its restarts: to check how many a client opens.
        """
        server = self._servers.get(broker)
        return 0 if server is None else server.accepted

    @property
    def broker_ids(self) -> list[int]:
        """Every broker's node id, running or not."""
        return list(self.cluster.model.broker_ids)

    @property
    def model(self) -> ClusterModel:
        """The cluster's topics, partitions and brokers (read it; change it via methods)."""
        return self.cluster.model

    # -- topics and data -----------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> Topic:
        """Create a topic at once (no request needed).

        Raises:
            KafkaError: The error a CreateTopics would have answered.
        """
        try:
            topic = self.cluster.model.create_topic(
                name, partitions, replication_factor, dict(config or {})
            )
        except ModelError as exc:
            raise exc.error(str(exc)) from None
        self.cluster.data_changed()
        return topic

    def log(self, topic: str, partition: int) -> PartitionLog:
        """A partition's log, to look at (high watermark, batches ...) in assertions."""
        return self.cluster.model.partition(topic, partition).log

    def append(
        self,
        topic: str,
        partition: int,
        values: Sequence[bytes | None],
        *,
        keys: Sequence[bytes | None] | None = None,
        headers: Sequence[Sequence[tuple[str, bytes | None]]] | None = None,
        timestamp: int = 1_000_000,
    ) -> int:
        """Write one batch of records straight into a partition's log, as if a producer had,
        and wake the long polls waiting for it. Returns the batch's base offset.

        This seeds data for a consumer test without a producer, and without a request: no
        fault control sees it. The records' timestamps are *timestamp*, *timestamp* + 1 ...
        (milliseconds), so a test knows which offset a time maps to; *keys* and *headers*
        (one list of ``(name, value)`` per record) are those of each record. To write through the
        protocol instead (idempotence, compression), produce with a client.
        """
        if keys is None:
            keys = [None] * len(values)
        if headers is None:
            headers = [()] * len(values)
        records = [
            (timestamp + i, key, value, tuple(header))
            for i, (key, value, header) in enumerate(zip(keys, values, headers, strict=True))
        ]
        result = self.log(topic, partition).append(encode_batch(records))
        self.cluster.data_changed()
        return result.base_offset

    # -- faults --------------------------------------------------------------------------

    def control(
        self,
        api_key: int | type[Message] | None,
        action: Action | Decide,
        *,
        topic: str | None = None,
        partition: int | None = None,
        broker: int | None = None,
        times: int | None = 1,
    ) -> Control:
        """Intercept requests: the next *times* (None: all, until cancelled) requests of
        *api_key* (None: any API) that name *topic*/*partition* (when given) on *broker*
        (when given) get *action* (see :mod:`trio_brod.testing.fake`).

        *api_key* is a number or a request class: ``fake.control(ProduceRequest, Drop())``.
        """
        key = api_key if api_key is None or isinstance(api_key, int) else api_key.API_KEY
        return self.cluster.faults.add(Control(key, action, topic, partition, broker, times))

    def fail(
        self,
        api_key: int | type[Message],
        error: type[KafkaError],
        *,
        topic: str | None = None,
        partition: int | None = None,
        broker: int | None = None,
        times: int | None = 1,
    ) -> Control:
        """Shorthand for ``control(api_key, Fail(error), ...)``."""
        return self.control(
            api_key, Fail(error), topic=topic, partition=partition, broker=broker, times=times
        )

    def remove_api(self, api_key: int | type[Message]) -> None:
        """Stop serving an API, as a broker of an older Kafka that lacks it would: ApiVersions
        no longer lists it and its requests are answered UNSUPPORTED_VERSION. Clients read
        ApiVersions when they connect, so remove an API before they do (or stop and start
        the brokers: they reconnect). E.g. a Kafka 3.x broker, without KIP-848's
        ConsumerGroupHeartbeat: ``fake.remove_api(ConsumerGroupHeartbeatRequest)``.
        """
        key = api_key if isinstance(api_key, int) else api_key.API_KEY
        if key == ApiVersionsRequest.API_KEY:
            raise ValueError("ApiVersions is how clients learn what a broker serves: keep it")
        self.cluster.apis.pop(key, None)

    def move_leader(self, topic: str, partition: int, broker: int | None = None) -> int:
        """Move a partition's leadership (default: to its next live replica), as a
        reassignment or election would. The old leader answers NOT_LEADER_OR_FOLLOWER from
        now on. Returns the new leader.
        """
        try:
            leader = self.cluster.model.move_leader(topic, partition, broker)
        except ModelError as exc:
            raise exc.error(str(exc)) from None
        self.cluster.data_changed()
        return leader

    def group(self, group_id: str) -> Group | None:
        """A group's state as the coordinator holds it (state, generation, leader, members,
        static members, committed offsets), to look at in assertions; None if unknown.
        """
        return self.groups.groups.get(group_id)

    def transaction(self, transactional_id: str) -> Transaction[Committed] | None:
        """A transactional id's state as its coordinator holds it (producer id, epoch,
        state, partitions, pending offsets), to look at in assertions; None if unknown.
        """
        return self.transactions.transactions.get(transactional_id)

    def consumer_group(self, group_id: str) -> ConsumerGroup | None:
        """A KIP-848 group's state as the coordinator holds it (group epoch, members with
        their epochs and assignments, target assignment), to look at in assertions; None if
        unknown. Classic groups are :meth:`group`'s.
        """
        return self.groups.consumer.groups.get(group_id)

    def expire_member(self, group_id: str, member_id: str) -> bool:
        """Evict a group member at once, as its session timeout would: the group rebalances
        and the member's next request is answered UNKNOWN_MEMBER_ID. False if it is no member.
        """
        return self.groups.expire_member(group_id, member_id)

    def coordinator(self, key: str) -> int:
        """The broker coordinating a group (or transactional id) now."""
        return self.cluster.coordinator_for(key)

    def move_coordinator(self, key: str, broker: int | None = None) -> int:
        """Move a group's (or transactional id's) coordinator (default: to the next live
        broker), as a partition move of ``__consumer_offsets`` would: the old coordinator
        answers NOT_COORDINATOR from now on and clients must FindCoordinator again. The
        group's members, generation and offsets move with it. Returns the new coordinator.
        """
        live = sorted(self.cluster.model.live)
        if broker is None:
            current = self.cluster.coordinator_for(key)
            broker = live[(live.index(current) + 1) % len(live)] if current in live else live[0]
        if broker not in live:
            raise ValueError(f"broker {broker} is not running")
        self.cluster.coordinator_moves[key] = broker
        return broker

    async def stop_broker(self, node_id: int) -> None:
        """Stop a broker: its listener and connections close, its partitions' leadership
        moves to other live replicas (or none: LEADER_NOT_AVAILABLE).
        """
        self.cluster.model.stop_broker(node_id)
        self.cluster.fetch_sessions.pop(node_id, None)
        self.cluster.data_changed()
        scope = self._scopes.pop(node_id, None)
        if scope is not None:
            scope.cancel()
            await self._stopped[node_id].wait()

    async def start_broker(self, node_id: int) -> None:
        """Start a stopped broker again, on the same port."""
        if node_id in self._scopes:
            return
        await self._nursery.start(self._run_broker, node_id)
        self.cluster.model.start_broker(node_id)
        self.cluster.data_changed()

    async def _run_broker(
        self, node_id: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        server = self._servers.setdefault(node_id, BrokerServer(self.cluster, node_id))
        stopped = self._stopped[node_id] = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._scopes[node_id] = scope
                await server.run(task_status=task_status)
        finally:
            stopped.set()


@asynccontextmanager
async def fake_kafka(
    brokers: int = 1,
    *,
    auto_create_topics: bool = True,
    default_partitions: int = 1,
    default_replication_factor: int = 1,
    cluster_id: str = "fake-kafka-cluster",
) -> AsyncIterator[FakeKafka]:
    """Run an in-process Kafka of *brokers* brokers (node ids 1..n) inside this Trio run.

    Each broker listens on a loopback port; ``fake.bootstrap_servers`` lists them. Any Kafka
    client can connect. Timers (long polls, injected delays) run on Trio's clock, so under
    ``trio.testing.MockClock(autojump_threshold=0)`` they take no wall time.

    Example::

        async with fake_kafka(brokers=1) as fake:
            fake.create_topic("orders", partitions=3)
            async with open_client(fake.bootstrap_servers) as client:
                ...

    ``auto_create_topics``, ``default_partitions`` and ``default_replication_factor`` are the
    brokers' ``auto.create.topics.enable``, ``num.partitions`` and
    ``default.replication.factor`` (as the harness's real brokers: true, 1, 1).
    """
    if brokers < 1:
        raise ValueError(f"a fake cluster needs at least one broker, not {brokers}")
    model = ClusterModel(
        broker_ids=list(range(1, brokers + 1)),
        cluster_id=cluster_id,
        default_partitions=default_partitions,
        default_replication_factor=default_replication_factor,
    )
    cluster = FakeCluster(model, auto_create_topics=auto_create_topics)
    install_admin_apis(cluster)
    install_data_apis(cluster)
    groups = install_group_apis(cluster)
    transactions = install_transaction_apis(cluster, groups)
    async with trio.open_nursery() as nursery:
        cluster.nursery = nursery
        fake = FakeKafka(cluster, nursery, groups, transactions)
        for node_id in model.broker_ids:
            await nursery.start(fake._run_broker, node_id)  # noqa: SLF001 - its own helper
        try:
            yield fake
        finally:
            nursery.cancel_scope.cancel()
