"""The broker the benchmark runs against: launched here, or given with ``--bootstrap``.

Topics are created and checked with trio-brod's protocol layer directly (one CreateTopics
request for all of them, ListOffsets to check what was written), which takes milliseconds;
Kafka's TopicCommand would take a JVM start (about a second) per topic.

The launched broker keeps its data in memory (``/dev/shm``) when there is room: the
benchmark measures clients, not the disk. On a virtual disk the broker's first writes to a
new partition's index files can stall for tens of milliseconds each while the kernel writes
back dirty pages, which made producing to 100 new partitions ten times slower (23,000
instead of 230,000 msg/s) for every client, and by chance more for one than another.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

import trio_brod
from bench.groups import HEARTBEAT_S
from trio_brod import admin
from trio_brod.protocol import CreateTopicsRequest, ListOffsetsRequest
from trio_brod.testing import KafkaCluster, resolve_kafka_jars

_TOPIC_ALREADY_EXISTS = 36
#: Where the launched broker keeps its data when it fits (see the module docstring).
MEMORY_DIR = "/dev/shm"
#: Free space that ``MEMORY_DIR`` needs for it to be used: a full run keeps about 2 GiB
#: at a time, as each produce case's topics are deleted once counted.
MEMORY_DIR_MIN_FREE = 6 * 1024**3
#: NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION: not ready yet.
_NOT_READY_CODES = frozenset({6, 5, 3})


class _NotReady(Exception):
    pass


@dataclass
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


class Broker:
    """A running broker: its bootstrap address, topics, Java tools and CPU counter."""

    def __init__(
        self, bootstrap: str, cluster: KafkaCluster | None, data_dir: str | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.cluster = cluster
        #: Where the launched broker keeps its data (None: the system temporary directory).
        self.data_dir = data_dir
        self._process = _find_broker_process(bootstrap)
        self.kafka_version = cluster.kafka_version if cluster is not None else "unknown"

    # ---------------------------------------------------------------- topics

    def create_topics(self, topics: Sequence[TopicSpec]) -> None:
        """Create topics (all in one request) and wait until every partition has a leader."""
        if topics:
            trio.run(self._create_topics, list(topics))

    async def _create_topics(self, topics: list[TopicSpec]) -> None:
        host, port = self.bootstrap.rsplit(":", 1)
        async with trio_brod.open_client([self.bootstrap], client_id="bench-admin") as client:
            connection = await client.get_connection(host, int(port))
            request = CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name=topic.name,
                        num_partitions=topic.partitions,
                        replication_factor=-1,  # the broker's default.replication.factor
                        configs=[
                            CreateTopicsRequest.CreatableTopicConfig(name=k, value=v)
                            for k, v in topic.config.items()
                        ],
                    )
                    for topic in topics
                ],
                timeout_ms=120_000,
            )
            response = await connection.request(request, timeout=150)
            for result in response.topics:
                if result.error_code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(
                        f"creating topic {result.name}: error {result.error_code} "
                        f"{result.error_message}"
                    )
            with trio.fail_after(120):
                for topic in topics:
                    while True:
                        metadata = await client.get_metadata([topic.name])
                        found = metadata.topics.get(topic.name)
                        if (
                            found is not None
                            and found.error_code == 0
                            and found.partition_count == topic.partitions
                            and all(p.leader >= 0 for p in found.partitions.values())
                        ):
                            break
                        await trio.sleep(0.1)
                    # Metadata names a leader before that broker is ready to serve the
                    # partition; until then produce and fetch get NOT_LEADER_OR_FOLLOWER.
                    while True:
                        try:
                            await self._offsets(client, topic.name)
                            break
                        except _NotReady:
                            await trio.sleep(0.1)

    def delete_topics(self, names: Sequence[str]) -> None:
        """Delete topics that are no longer needed, so that their data does not pile up."""
        if names:
            trio.run(self._delete_topics, list(names))

    async def _delete_topics(self, names: list[str]) -> None:
        async with trio_brod.open_client([self.bootstrap], client_id="bench-admin") as client:
            await admin.delete_topics(client, names)

    def log_size(self, topic: str) -> int:
        """How many records the topic holds: the sum over partitions of end - start."""
        return trio.run(self._log_size, topic)

    async def _log_size(self, topic: str) -> int:
        async with trio_brod.open_client([self.bootstrap], client_id="bench-admin") as client:
            return await self._offsets(client, topic)

    async def _offsets(self, client: trio_brod.Client, topic: str) -> int:
        """Sum of (latest - earliest) over the topic's partitions, asking each leader."""
        cluster = await client.get_metadata([topic])
        metadata = cluster.topics[topic]
        by_leader: dict[int, list[int]] = {}
        for partition in metadata.partitions.values():
            by_leader.setdefault(partition.leader, []).append(partition.partition)
        total = 0
        for leader, partitions in by_leader.items():
            broker = cluster.brokers[leader]
            connection = await client.get_connection(broker.host, broker.port)
            offsets = {}
            for timestamp in (-2, -1):  # earliest, latest
                request = ListOffsetsRequest(
                    replica_id=-1,
                    isolation_level=0,
                    topics=[
                        ListOffsetsRequest.ListOffsetsTopic(
                            name=topic,
                            partitions=[
                                ListOffsetsRequest.ListOffsetsPartition(
                                    partition_index=p, timestamp=timestamp
                                )
                                for p in partitions
                            ],
                        )
                    ],
                )
                response = await connection.request(
                    request, connection.best_version(ListOffsetsRequest, min_version=1)
                )
                for answer in response.topics[0].partitions:
                    if answer.error_code in _NOT_READY_CODES:
                        raise _NotReady(topic)
                    if answer.error_code:
                        raise RuntimeError(
                            f"ListOffsets {topic}[{answer.partition_index}]: "
                            f"error {answer.error_code}"
                        )
                offsets[timestamp] = {
                    a.partition_index: a.offset for a in response.topics[0].partitions
                }
            total += sum(offsets[-1][p] - offsets[-2][p] for p in partitions)
        return total

    # ---------------------------------------------------------------- Java tools

    def java_command(self, main_class: str, *args: str, bootstrap: bool = True) -> list[str]:
        """The command line of one of Kafka's Java tools (full JIT: they run for a while)."""
        if self.cluster is not None:
            return self.cluster.tool_command(
                main_class, *args, bootstrap=bootstrap, short_lived=False
            )
        jars = resolve_kafka_jars()
        extra = ["--bootstrap-server", self.bootstrap] if bootstrap else []
        return [
            jars.java.executable,
            "-Xmx512m",
            "-Djava.awt.headless=true",
            "-cp",
            jars.classpath,
            main_class,
            *extra,
            *args,
        ]

    def java_version(self) -> str:
        try:
            jars = resolve_kafka_jars(fetch=False)
            output = subprocess.run(
                [jars.java.executable, "-version"], capture_output=True, text=True, check=False
            ).stderr
            return output.splitlines()[0] if output else "unknown"
        except Exception as exc:  # the report says so instead of failing the run
            return f"unknown ({exc})"

    # ---------------------------------------------------------------- CPU

    def cpu_seconds(self) -> float | None:
        """CPU time the broker JVM has used so far, if we found its process."""
        if self._process is None:
            return None
        try:
            times = self._process.cpu_times()
        except Exception:
            return None
        return float(times.user + times.system)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)


def _find_broker_process(bootstrap: str) -> Any:
    """The local process listening on the bootstrap port (psutil), or None."""
    try:
        import psutil
    except ImportError:
        return None
    host, port = bootstrap.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    with contextlib.suppress(Exception):
        for connection in psutil.net_connections(kind="tcp"):
            if (
                connection.status == psutil.CONN_LISTEN
                and connection.laddr
                and connection.laddr.port == int(port)
                and connection.pid
            ):
                return psutil.Process(connection.pid)
    return None


def choose_data_dir(requested: str) -> str | None:
    """The directory for the launched broker's data: ``requested``, or for ``"auto"``
    ``MEMORY_DIR`` if it has room and None (the system temporary directory) if not."""
    if requested != "auto":
        return requested
    if os.path.isdir(MEMORY_DIR) and os.access(MEMORY_DIR, os.W_OK):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(MEMORY_DIR).free >= MEMORY_DIR_MIN_FREE:
                return MEMORY_DIR
    return None


@contextlib.contextmanager
def open_broker(
    bootstrap: str | None, heap: str = "1g", data_dir: str = "auto"
) -> Iterator[Broker]:
    """Use the broker at ``bootstrap``, or start one with trio_brod.testing for the run.

    ``data_dir`` is where a launched broker keeps its data (see :func:`choose_data_dir`).
    """
    if bootstrap is not None:
        yield Broker(bootstrap, None)
        return
    os.environ.setdefault("TRIO_BROD_KAFKA_CDS", "1")
    directory = choose_data_dir(data_dir)
    # Deleted topics' files go at once, not a minute later (Kafka's default).
    config = {"log.segment.delete.delay.ms": "0"}
    # KIP-848 consumer-protocol groups heartbeat at the broker's interval (5 s by default,
    # and no less): the classic rows' heartbeat (bench.groups.HEARTBEAT_S), so that members
    # hear of a rebalance as fast whichever protocol they speak. Classic groups ignore it.
    heartbeat_ms = str(int(HEARTBEAT_S * 1000))
    config["group.consumer.heartbeat.interval.ms"] = heartbeat_ms
    config["group.consumer.min.heartbeat.interval.ms"] = heartbeat_ms
    with KafkaCluster(brokers=1, heap=heap, data_dir=directory, broker_config=config) as cluster:
        yield Broker(cluster.bootstrap_servers[0], cluster, directory)
